"""Security: after real runs that include failures, the API key appears nowhere.

Runs last on the shared stack (see conftest.py), after the process-fault tests and the soak, and
adds ``rel_failures``: a content-policy failure, an auth failure whose error body echoes the key (on
the create, and to the triggerer's poll), a connection with a wrong key, transient errors that echo
the key and are retried, and a success with a download. Then it greps everything those runs left:

* every file under the stack's AIRFLOW_HOME: task logs (worker and triggerer parts, exception text
  included), scheduler/triggerer/dag-processor/api-server output, the metadata DB;
* through the REST API: task instances (rendered template fields), XCom values, DAG runs, task logs
  and the audit log, for every run the reliability tests triggered;
* the emulators: request logs (in memory, stderr, ``--log-file``) and the state file.

Positive controls prove the grep finds the key (and its encodings) in each kind of source, and that
each source really holds data of these runs.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.support.reliability_stack import ReliabilityEnv

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(300)]

DAG_ID = "rel_failures"
ECHO = "Incorrect API key provided: {key}. You can find your API key in your account settings."


def needles(secret: str) -> dict[str, bytes]:
    """The key and what a leak of it could look like: encoded, or a long enough piece of it."""
    random_part = secret.rsplit("-", 1)[-1]
    half = len(random_part) // 2
    return {
        "key": secret.encode(),
        "key (url-encoded)": urllib.parse.quote(secret, safe="").encode(),
        "key (base64)": base64.b64encode(secret.encode()).rstrip(b"="),
        "bearer header (base64)": base64.b64encode(f"Bearer {secret}".encode()).rstrip(b"="),
        "first half of the random part": random_part[:half].encode(),
        "second half of the random part": random_part[half:].encode(),
    }


class Scanner:
    """Greps bytes for every needle of every secret; collects where each was found."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.needles: dict[str, bytes] = {}
        for secret in secrets:
            for name, needle in needles(secret).items():
                if needle not in self.needles.values():  # e.g. a url-encoded key equal to the key
                    self.needles[f"{name} of {secret[:14]}…"] = needle
        self.findings: list[str] = []
        self.sources: dict[str, int] = {}  # kind of source -> bytes scanned

    def scan(self, kind: str, where: str, data: bytes | str) -> list[str]:
        raw = data.encode() if isinstance(data, str) else data
        self.sources[kind] = self.sources.get(kind, 0) + len(raw)
        hits = [f"{kind}: {where}: {name}" for name, needle in self.needles.items() if needle in raw]
        self.findings.extend(hits)
        return hits

    def scan_json(self, kind: str, where: str, value: Any) -> list[str]:
        # Raw JSON text catches the key anywhere in the structure, escaped the way JSON escapes it.
        return self.scan(kind, where, json.dumps(value, ensure_ascii=False, default=str))

    def scan_file(self, kind: str, path: Path) -> list[str]:
        return self.scan(kind, str(path), path.read_bytes())


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _rest_sources(env: ReliabilityEnv, scanner: Scanner, runs: list[tuple[str, str]]) -> dict[str, str]:
    """Everything the REST API shows about the runs; returns text per kind for the liveness checks."""
    client = env.stack.client
    seen: dict[str, list[str]] = {"rendered fields": [], "xcom": [], "rest log": []}
    for dag_id, run_id in runs:
        base = f"/dags/{dag_id}/dagRuns/{run_id}"
        scanner.scan_json("dag run", f"{dag_id}/{run_id}", client.get(base))
        for ti in client.task_instances(dag_id, run_id):
            scanner.scan_json("task instance", f"{dag_id}/{ti['task_id']}[{ti['map_index']}]", ti)
            scanner.scan_json("rendered fields", f"{dag_id}/{ti['task_id']}", ti.get("rendered_fields"))
            seen["rendered fields"].append(json.dumps(ti.get("rendered_fields")))
        entries = client._paged(f"{base}/taskInstances/~/xcomEntries", "xcom_entries")
        for entry in entries:
            value = client.get(
                f"{base}/taskInstances/{entry['task_id']}/xcomEntries/{entry['key']}",
                map_index=entry["map_index"],
            )
            where = f"{dag_id}/{entry['task_id']}[{entry['map_index']}]/{entry['key']}"
            scanner.scan_json("xcom", where, value)
            seen["xcom"].append(json.dumps(value, default=str))
        if dag_id == DAG_ID:  # each TI's own page, and the UI's view of its logs (trigger parts too)
            for ti in client.task_instances(dag_id, run_id):
                single = client.get(f"{base}/taskInstances/{ti['task_id']}")
                scanner.scan_json("rendered fields", f"{dag_id}/{ti['task_id']}", single["rendered_fields"])
                for attempt in range(1, (ti["try_number"] or 0) + 1):
                    text = client.task_log(dag_id, run_id, ti["task_id"], attempt, ti["map_index"])
                    scanner.scan("rest log", f"{dag_id}/{ti['task_id']} try {attempt}", text)
                    seen["rest log"].append(text)
    scanner.scan_json("audit log", "/eventLogs", client._paged("/eventLogs", "event_logs"))
    return {kind: "\n".join(texts) for kind, texts in seen.items()}


@pytest.fixture(scope="module")
def failures(rel_env: ReliabilityEnv) -> dict[str, Any]:
    """One ``rel_failures`` run with key-echoing faults injected; returns its ids and outcome."""
    env = rel_env
    marker = f"leak-{uuid.uuid4().hex[:10]}"
    echo = ECHO.format(key=env.api_key)
    rules = [
        # The server rejects the create and quotes the key back (as some APIs do on 401).
        dict(endpoint="create", action="status", status=401, message=echo, code="invalid_api_key"),
        # The same, on a status poll the triggerer makes (the worker's pre-defer check is skipped).
        dict(endpoint="get", action="status", status=401, message=echo, code="invalid_api_key", skip=1),
        # Transient 503s quoting the key: retried in the worker and in the trigger, and logged.
        dict(endpoint="get", action="status", status=503, message=echo, count=3),
    ]
    targets = ("key_echoed_on_create", "key_echoed_to_trigger", "succeeds")
    for rule, case in zip(rules, targets, strict=True):
        env.emulator.add_fault(prompt_contains=f"{marker} {case}", **rule)
    try:
        run_id = env.trigger(DAG_ID, {"prompt": marker, "output_dir": str(env.output_dir / marker)})
        outcome = env.stack.client.wait_for_run(DAG_ID, run_id, timeout=180, poll=0.5, expect="failed")
        applied = {r["prompt_contains"]: r["applied"] for r in env.emulator.faults()}
    finally:
        env.emulator.clear_faults()  # the rules hold the key; they must not outlive this run
    return {"run_id": run_id, "outcome": outcome, "marker": marker, "applied": applied}


def test_failure_run_failed_for_the_documented_reasons(rel_env: ReliabilityEnv, failures: dict) -> None:
    """The scan below is only meaningful if these failures (and their key echoes) really happened."""
    env, outcome, run_id = rel_env, failures["outcome"], failures["run_id"]
    states = {ti["task_id"]: ti["state"] for ti in outcome.task_instances}
    assert states == {
        "content_policy": "failed",
        "key_echoed_on_create": "failed",
        "key_echoed_to_trigger": "failed",
        "wrong_key": "failed",
        "succeeds": "success",
        "download": "success",
    }, states
    assert all(count >= 1 for count in failures["applied"].values()), failures["applied"]

    def log(task_id: str) -> str:
        return env.stack.client.task_log(DAG_ID, run_id, task_id, 1)

    assert "content policy" in log("content_policy").lower()
    redacted = "Incorrect API key provided: ***"
    assert redacted in log("key_echoed_on_create")
    trigger_log = log("key_echoed_to_trigger")
    assert ".log.trigger." in trigger_log and redacted in trigger_log  # the triggerer's part
    assert "401" in log("wrong_key") or "rejected" in log("wrong_key").lower()
    assert redacted in log("succeeds")  # the retried 503s were logged, redacted


def test_scanner_finds_the_key_where_it_looks(rel_env: ReliabilityEnv, tmp_path: Path) -> None:
    """Positive controls: a planted key (or its encodings) is found in files and in JSON values."""
    key = rel_env.api_key
    planted = rel_env.stack.home / "logs" / "canary" / "attempt=1.log"
    planted.parent.mkdir(parents=True)
    try:
        scanner = Scanner([key])
        assert len(scanner.needles) >= 5  # the key, encodings, and pieces of its random part
        for name, needle in scanner.needles.items():
            planted.write_bytes(b'{"event": "oops ' + needle + b' leaked"}\n')
            hits = Scanner([key]).scan_file("task log", planted)
            assert any(hit.endswith(name) for hit in hits), name
        binary = tmp_path / "blob.db"
        binary.write_bytes(b"\x00SQLite\x00" + key.encode() + b"\xff\x00")
        assert Scanner([key]).scan_file("metadata DB", binary)
        nested = {"a": [{"b": {"rendered_fields": {"prompt": f"x {key} y"}}}]}
        assert Scanner([key]).scan_json("rendered fields", "planted", nested)
        assert Scanner([key]).scan_json("xcom", "planted", {"value": f'{{"k": "{key}"}}'})
        assert not Scanner([key]).scan_json("xcom", "clean", {"value": "Bearer ***", "key": key[:10]})
    finally:
        planted.unlink(missing_ok=True)
        planted.parent.rmdir()


def test_api_key_appears_nowhere(rel_env: ReliabilityEnv, failures: dict) -> None:
    env = rel_env
    scanner = Scanner([env.api_key, env.wrong_key])
    ids = {t["id"] for t in env.remote_tasks(failures["marker"])}
    assert ids, "the failure run created no remote task"

    # 1. Every file under AIRFLOW_HOME: task and trigger logs, component logs, the metadata DB.
    files = _files(env.stack.home)
    task_logs = [p for p in files if "dag_id=" in str(p)]
    trigger_logs = [p for p in task_logs if ".log.trigger." in p.name]
    assert task_logs and trigger_logs and (env.stack.home / "airflow.db") in files
    for path in files:
        kind = "trigger log" if path in trigger_logs else "task log" if path in task_logs else "home file"
        scanner.scan_file(kind, path)
    for component in ("scheduler", "triggerer", "api-server", "dag-processor"):
        assert env.stack.log_path(component) in files

    # 2. The REST API's view of every run the reliability tests triggered.
    rest = _rest_sources(env, scanner, list(env.runs))

    # 3. The emulators: request logs in memory, on stderr and in --log-file, and the state file.
    emulators = [env.emulator, *env.restart.processes]
    for emu in emulators:
        scanner.scan_file("emulator stderr", emu.log_path)
        if emu.process.poll() is None:
            scanner.scan_json("emulator request log", emu.url, emu.requests_log())
            scanner.scan_json("emulator tasks", emu.url, emu.tasks())
    for path in (env.emulator_log_file, env.restart.log_file, env.restart.state_file):
        if path.exists():  # the restart emulator's files exist once it served a request
            scanner.scan_file("emulator file", path)

    assert not scanner.findings, "API key leaked:\n" + "\n".join(scanner.findings[:50])

    # Liveness: each kind of source was non-empty and holds data of the failure run.
    for kind in ("task log", "trigger log", "rest log", "xcom", "rendered fields", "emulator request log"):
        assert scanner.sources.get(kind), f"nothing scanned as {kind}"
    run_logs = "\n".join(p.read_text(errors="replace") for p in task_logs if failures["run_id"] in str(p))
    assert all(task_id in run_logs for task_id in ids)
    assert any(task_id in rest["xcom"] for task_id in ids)
    assert failures["marker"] in rest["rendered fields"]
    emulator_log = [json.loads(line) for line in env.emulator_log_file.read_text().splitlines() if line]
    logged = [entry for entry in emulator_log if entry.get("task_id") in ids]
    api = [e for e in logged if e["endpoint"] in ("create", "get", "list", "delete")]
    assert api and all(e["auth_present"] for e in api)  # the key was sent (and not logged)
    assert not any(e["auth_present"] for e in logged if e["endpoint"] in ("video", "last_frame"))
    print(
        "\nsecret scan: "
        + ", ".join(f"{kind} {size / 1024:.0f} KiB" for kind, size in sorted(scanner.sources.items()))
        + f"; {len(files)} files under AIRFLOW_HOME, {len(env.runs)} runs via REST"
    )
