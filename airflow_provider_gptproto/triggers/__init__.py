"""GPTProto triggers."""
