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
from airflow.sdk import ObjectStoragePath
from packaging.version import Version

from airflow_provider_gptproto.exceptions import GPTProtoVideoDownloadError
from airflow_provider_gptproto.hooks.gptproto import GPTProtoHook
from tests.integration.dagrun import run_dag
from tests.integration.versions import AIRFLOW_VERSION
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
    emulator: Any,
    tmp_path: Path,
    kind: str,
    says: str,
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
    video_requests = [r for r in emulator.requests_log() if r["endpoint"] == "video" and r["method"] == "GET"]
    # Each try: the link (3 loopback hops for the redirect chain, whose last Location is refused).
    assert len(video_requests) == (6 if kind == "redirect-metadata" else 2)
    # Airflow 3.1+ hands the failure callbacks the exception (3.0 passes None): each try's names the cause.
    recorded = [line for line in failures.read_text().splitlines() if "NoneType" not in line]
    assert all(line.startswith(f"download: {says}") for line in recorded), recorded
    if Version("3.1") <= AIRFLOW_VERSION:
        assert len(recorded) == 2
    # The same link through the hook, for the message on every Airflow version.
    (task,) = GPTProtoHook().list_tasks().items
    with pytest.raises(GPTProtoVideoDownloadError) as caught:
        GPTProtoHook().download_video(
            str(task.video_url), ObjectStoragePath(f"file://{dest}/v.mp4"), max_bytes=2**20
        )
    assert f"{type(caught.value).__name__}: {caught.value}".startswith(says)
    assert "X-Amz-Signature" not in str(caught.value)  # the refused URL's query is never named
    assert list(dest.iterdir()) == []
    assert emulator.stats()["tasks_created"] == 1
    assert socket_guard.violations == []
