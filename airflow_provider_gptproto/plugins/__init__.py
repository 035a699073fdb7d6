"""The GPTProto UI plugin: a Video tab on task instances and a gallery of recent videos."""
