"""GPTProto sensors."""
