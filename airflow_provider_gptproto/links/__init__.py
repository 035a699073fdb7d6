"""GPTProto links."""
