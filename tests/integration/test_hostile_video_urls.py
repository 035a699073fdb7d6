"""Video links the client must not trust, served by the emulator ([[video:...]] markers), on real Airflow.

The generate task pays for one video; the download refuses the link (a redirect chain to the cloud
metadata address), stops an endless body at max_bytes, or rejects an HTML page served as the video.
The retry asks for the task again (no second create) and fails the same way; nothing is left at the
destination, and the session's socket guard proves no connection left loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.dagrun import run_dag
from tests.support import socket_guard

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        (
            "redirect-metadata",
            "GPTProtoURLRefusedError: Refusing to fetch from 169.254.169.254: 169.254.169.254 is a cloud "
            "metadata address",
        ),
        ("endless", "GPTProtoVideoDownloadError: Video exceeds max_bytes=1048576"),
        ("html", "GPTProtoVideoDownloadError: Video URL served Content-Type 'video/mp4' but HTML"),
    ],
)
def test_a_hostile_video_link_fails_clearly_leaves_nothing_and_pays_once(
    emulator: Any, tmp_path: Path, kind: str, says: str
) -> None:
    dest, failures = tmp_path / "videos", tmp_path / "failures.log"
    dest.mkdir()
    failures.touch()

    result = run_dag(
        "it_hostile_video",
        prompt=f"a lighthouse [[video:{kind}]]",
        dest=f"{dest}/",
        failure_log=str(failures),
    )

    assert result.state == "failed"
    assert result.ti_state("generate") == "success"
    assert (result.ti_state("download"), result.tries("download")) == ("failed", 2)
    lines = failures.read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"download: {says}") for line in lines), lines
    assert "leak" not in failures.read_text() and "Signature" not in failures.read_text()
    assert list(dest.iterdir()) == []  # no video, no .part leftover
    assert emulator.stats()["tasks_created"] == 1
    assert socket_guard.violations == []
    video_requests = [r for r in emulator.requests_log() if r["endpoint"] == "video" and r["method"] == "GET"]
    # Each try: the link (3 loopback hops for the redirect chain, whose last Location is refused).
    assert len(video_requests) == (6 if kind == "redirect-metadata" else 2)
