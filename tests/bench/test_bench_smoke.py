"""Every benchmark still runs: a seconds-long smoke pass each, checked for well-formed results only.

No figure is compared with anything here (benchmarks are not tests; `make bench` judges targets).
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from bench import (
    batch,
    client_overhead,
    cluster_triggerers,
    download,
    run,
    stitch,
    trigger_polling,
    triggerer_10k,
    worker_slots,
)
from bench.common import BenchResult

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _check(result: BenchResult, name: str) -> None:
    assert result.name == name
    assert result.mode == "smoke"
    assert result.figures, "no headline figures"
    for key, value in result.figures.items():
        assert isinstance(value, (int, float)) and not isinstance(value, bool), key
        assert math.isfinite(value) and value > 0, f"{key} = {value!r}"
    assert result.tables and all(table.rows for table in result.tables)
    for table in result.tables:
        assert all(len(row) == len(table.columns) for row in table.rows), table.title
    assert result.targets
    assert all(target.value and target.rule for target in result.targets)
    json.dumps(result.to_dict())  # what run.py writes must serialize


BENCHMARKS = {
    "trigger_polling": trigger_polling.run,
    "worker_slots": worker_slots.run,
    "download": download.run,
    "client_overhead": client_overhead.run,
    "cluster_triggerers": cluster_triggerers.run,
    "batch": batch.run,
    "stitch": stitch.run,
    "triggerer_10k": triggerer_10k.run,
}
_RESULTS: dict[str, BenchResult] = {}


def _smoke(name: str) -> BenchResult:
    """One smoke run per benchmark per session, shared by the tests that look at it."""
    if name not in _RESULTS:
        _RESULTS[name] = BENCHMARKS[name](smoke=True)
    return _RESULTS[name]


# Benchmark 6 starts a whole cluster (Postgres, Redis, seven Airflow processes) and waits out a failover;
# benchmark 1's 10,000 row starts two Airflow stacks one after another.
SLOW = {"cluster_triggerers": pytest.mark.timeout(600), "triggerer_10k": pytest.mark.timeout(600)}


@pytest.mark.parametrize("name", [pytest.param(n, marks=SLOW.get(n, ())) for n in sorted(BENCHMARKS)])
def test_benchmark_smoke_run_is_well_formed(name: str) -> None:
    if name == "download" and shutil.which("curl") is None:
        pytest.skip("benchmark 3 compares against curl, which is not installed")
    _check(_smoke(name), name)


def test_polling_smoke_covers_every_variant_without_dead_pollers() -> None:
    result = _smoke("trigger_polling")
    polled = {row[1] for row in result.tables[0].rows}
    assert polled == set(trigger_polling.VARIANTS.values())
    assert not [note for note in result.notes if "died" in note or "events" in note], result.notes


def test_workload_records_are_summed_per_task_instance() -> None:
    """The full worker-slot run reads LocalExecutor records like these from the scheduler log."""
    ti = "01a21072-5260-7984-9137-6148494dbd62"
    log = "\n".join(
        [
            f"2026-11-25T02:04:29Z [info     ] Workload finished   [supervisor] duration=1.25 exit_code=0 "
            f"final_state=deferred loc=supervisor.py:2658 workload_id={ti} workload_type=ExecuteTask",
            "2026-11-25T02:04:30Z [info     ] Process exited   pid=42 exit_code=0",
            f'{{"event": "Workload finished", "duration": 0.5, "workload_id": "{ti}"}}',
        ]
    )
    assert worker_slots.workload_durations(log) == {ti: [1.25, 0.5]}


def test_results_file_renders_every_section() -> None:
    result = BenchResult("x", "Benchmark X", "smoke", method=["m"], figures={"f": 1.0})
    text = run.render(run.common.machine(), [result], ["y:\nboom"], smoke=True)
    assert "## Machine" in text and "## Targets" in text and "## Benchmark X" in text
    assert "## Failed benchmarks" in text and "boom" in text
