"""The local-Airflow harness: real Airflow processes, a Celery cluster and its servers, from a clone.

Behind ``make cluster`` (scripts/cluster.py), the benchmarks in ``bench/`` and the end-to-end,
reliability, browser and cluster tests. Not part of the wheel: it runs from the repository root
(pytest's rootdir, ``python -m bench.x``, scripts/ put the root on ``sys.path``). See README.md here.
"""
