"""GPTProto operators."""
