"""``usage`` in every result: generate XCom, download XCom and the asset event extra (DAG.test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.models.asset import AssetEvent
from airflow.utils.session import create_session

from tests.integration.dagrun import run_dag

pytestmark = pytest.mark.usefixtures("airflow_db")


def _asset_extra(remote_task_id: str) -> dict[str, Any]:
    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_dag_id == "it_download").all()
        (extra,) = [dict(e.extra) for e in events if (e.extra or {}).get("task_id") == remote_task_id]
    return extra


@pytest.mark.parametrize("dialect", ["ark", "envelope"])
def test_usage_as_the_api_reported_it_or_null(emulator: Any, tmp_path: Path, dialect: str) -> None:
    emulator.configure(dialect=dialect)

    result = run_dag("it_download", prompt="a lighthouse", dest=f"{tmp_path}/")

    assert result.state == "success"
    generated, saved = result.xcom("generate"), result.xcom("download")
    reply = requests.get(
        f"{emulator.url}/api/v3/contents/generations/tasks/{generated['task_id']}",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    ).json()
    # the upstream task object reports usage; GPTProto's envelope reports none
    expected = reply.get("usage")
    assert (expected is not None) == (dialect == "ark")
    assert generated["usage"] == saved["usage"] == expected
    assert _asset_extra(generated["task_id"])["usage"] == expected
