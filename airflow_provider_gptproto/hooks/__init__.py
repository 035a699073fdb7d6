"""GPTProto hooks."""
