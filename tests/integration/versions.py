"""What the installed Airflow offers, for assertions that differ by version."""

from __future__ import annotations

from importlib.metadata import version

from packaging.version import Version

AIRFLOW_VERSION = Version(version("apache-airflow-core"))
HAS_TASK_STATE_STORE = Version("3.3.0") <= AIRFLOW_VERSION
