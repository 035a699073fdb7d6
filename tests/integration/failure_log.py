"""Record each failed try's exception in a file named by the DAG run's ``failure_log`` param.

``DAG.test()`` hands back states, not exceptions; tests that assert on a failure's message pass
``failure_log=<path>`` and read the file. Used as ``default_args``-style callbacks: ``**RECORD``.
"""

from __future__ import annotations

from typing import Any


def record_failure(context: Any) -> None:
    path = (context.get("params") or {}).get("failure_log")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            exc = context.get("exception")
            log.write(f"{context['ti'].task_id}: {type(exc).__name__}: {exc}\n")


RECORD = {"on_failure_callback": record_failure, "on_retry_callback": record_failure}
