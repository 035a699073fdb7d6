"""Benchmarks of the GPTProto provider against baselines measured in the same run (see README.md).

Not part of the installed package: run them from the repository root with ``python -m bench.run``.
"""
