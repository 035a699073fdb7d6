"""Real OpenLineage events: ``airflow dags test`` with the openlineage provider's file transport.

The real listener writes the events a lineage backend would receive; the test reads them back and
checks the datasets and the ``gptproto`` run facet (against the facet's shipped JSON schema).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

pytest.importorskip("airflow.providers.openlineage")
jsonschema = pytest.importorskip("jsonschema")

import airflow_provider_gptproto.utils as utils_pkg  # noqa: E402
from tests.integration.dagrun import SYNC_BEFORE_TEST, _reserialize  # noqa: E402

pytestmark = pytest.mark.usefixtures("airflow_db")

FACET_SCHEMA = json.loads((Path(utils_pkg.__file__).parent / "gptproto_run_facet.json").read_text())
IMAGE = "https://user:secret@images.example:8443/refs/kite.png?X-Amz-Signature=abc#frag"


def _dags_test(dag_id: str, conf: dict[str, Any], events_file: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "gptproto-tests",
    }
    if SYNC_BEFORE_TEST:  # before 3.2 the CLI runs only serialized DAGs (else: "inactive" outlet assets)
        _reserialize()
    airflow = str(Path(sys.executable).parent / "airflow")
    return subprocess.run(
        [airflow, "dags", "test", dag_id, "--conf", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _events(events_file: Path) -> list[dict[str, Any]]:
    assert events_file.exists(), "the file transport wrote no events"
    return [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]


def _task_event(events: list[dict[str, Any]], task: str, kind: str) -> dict[str, Any]:
    found = [e for e in events if e["eventType"] == kind and e["job"]["name"] == f"it_lineage.{task}"]
    assert len(found) == 1, f"{kind} events of {task}: {[e['job']['name'] for e in events]}"
    return found[0]


def test_download_and_generate_events_name_datasets_and_carry_the_gptproto_facet(
    emulator: Any, tmp_path: Path
) -> None:
    emulator.configure(dialect="ark")  # the upstream task object: the reply that reports usage
    events_file = tmp_path / "events.jsonl"
    dest = tmp_path / "videos" / "kite.mp4"

    done = _dags_test("it_lineage", {"image": IMAGE, "dest": str(dest)}, events_file)

    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert dest.stat().st_size > 0
    events = _events(events_file)
    (remote,) = emulator.tasks()
    reply = requests.get(
        f"{emulator.url}/api/v3/contents/generations/tasks/{remote['id']}",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    ).json()
    assert reply["usage"], reply  # the reply this test needs: one that reports usage

    generate = _task_event(events, "generate", "COMPLETE")
    download = _task_event(events, "download", "COMPLETE")
    for event in (generate, download):
        facet = event["run"]["facets"]["gptproto"]
        jsonschema.validate(facet, FACET_SCHEMA)
        assert facet["taskId"] == remote["id"]
        assert facet["seed"] == 11
        assert facet["resolution"] == "480p"
        assert facet["model"]
        # exactly what the emulator's upstream reply reported
        assert facet["usage"] == reply["usage"]

    # the reference image URL, without credentials, query (signatures) or fragment
    assert [(d["namespace"], d["name"]) for d in generate["inputs"]] == [
        ("https://images.example:8443", "/refs/kite.png")
    ]
    ours = json.dumps([generate["inputs"], generate["run"]["facets"]["gptproto"]])
    assert "secret" not in ours and "Signature" not in ours
    # the stored video, named the OpenLineage way for local files: namespace "file", absolute path
    assert [(d["namespace"], d["name"]) for d in download["outputs"]] == [("file", str(dest))]
    # never the temporary sibling the download writes first
    assert ".part" not in json.dumps(events)
