"""One distributed Airflow for the whole module: Postgres, Redis, Celery (2 workers), 2 triggerers.

Start-up (initdb, migrating Postgres, seven Airflow processes) is most of the cost, so the cluster is
module-scoped. The triggerer health-check threshold is lowered to 10 s so that failover tests are
quick; every other setting is what ``make cluster`` runs.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from dev.cluster import Cluster
from dev.services import open_for_postgres

DAGS = Path(__file__).parent / "dags"
HEALTH_CHECK_THRESHOLD = 10


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's basetemp: every pytest start resets /tmp/pytest-of-<user> to 0700, which
    # would lock the postgres user out of its data directory before a restart.
    root = Path(tempfile.mkdtemp(prefix="gptproto-cluster-"))
    open_for_postgres(root)  # Postgres runs as the postgres user when the tests run as root
    try:
        yield from _run_cluster(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_cluster(root: Path) -> Iterator[Cluster]:
    with Cluster(
        root,
        dags_folder=DAGS,
        health_check_threshold=HEALTH_CHECK_THRESHOLD,
        emulator_options={"queue_seconds": 0.5, "run_seconds": 2.0, "render_fps": 2},
        wait_for_dags=("cluster_videos",),
    ) as running:
        yield running
        leftovers = running.stop()
    assert not leftovers, f"Airflow processes survived the cluster: {leftovers}"


@pytest.fixture(autouse=True)
def healthy(cluster: Cluster) -> None:
    """Each test starts on a whole cluster: a component an earlier test's fault left exited is
    restarted (and reported), and every Job component heartbeats."""
    revived = cluster.ensure_healthy()
    if revived:
        warnings.warn(f"restarted before this test, exited after an earlier one: {revived}", stacklevel=1)
