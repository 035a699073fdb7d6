"""A DAG using the review operator loads on Airflow 3.1+, and on 3.0 fails naming the version it needs."""

from __future__ import annotations

from pathlib import Path

import airflow
from packaging.version import Version

HAS_HITL = Version(Version(airflow.__version__).base_version) >= Version("3.1")
DAG_FILE = """
from airflow.sdk import DAG
from airflow_provider_gptproto.operators.review import GPTProtoReviewVideosOperator

with DAG("review_versions", schedule=None):
    GPTProtoReviewVideosOperator(task_id="review", videos=[])
"""


def test_a_dag_with_the_review_operator_loads_only_where_hitl_exists(tmp_path: Path) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    (tmp_path / "review_versions.py").write_text(DAG_FILE, encoding="utf-8")
    bag = DagBag(str(tmp_path))  # AIRFLOW__CORE__LOAD_EXAMPLES=False (tests/conftest.py)
    if HAS_HITL:
        assert not bag.import_errors
        assert "review_versions" in bag.dags
    else:
        (message,) = bag.import_errors.values()
        assert "GPTProtoReviewVideosOperator needs Airflow 3.1 or newer" in message
        assert f"this is Airflow {airflow.__version__}" in message
        assert bag.dags == {}
