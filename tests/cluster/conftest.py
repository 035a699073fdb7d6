"""One distributed Airflow for the whole module: Postgres, Redis, Celery (2 workers), 2 triggerers.

Start-up (initdb, migrating Postgres, seven Airflow processes) is most of the cost, so the cluster is
module-scoped. The triggerer health-check threshold is lowered to 10 s so that failover tests are
quick; every other setting is what ``make cluster`` runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.services import open_for_postgres

DAGS = Path(__file__).parent / "dags"
HEALTH_CHECK_THRESHOLD = 10


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    open_for_postgres(root)  # Postgres runs as the postgres user when the tests run as root
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
