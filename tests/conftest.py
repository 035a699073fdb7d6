"""Test-wide settings: a throw-away AIRFLOW_HOME so no test ever touches ~/airflow."""

from __future__ import annotations

import os
import tempfile

# Must run before anything imports airflow (conftest files load before test modules).
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="gptproto-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault(
    "AIRFLOW__CORE__DAGS_FOLDER", os.path.join(os.path.dirname(__file__), "integration", "dags")
)
