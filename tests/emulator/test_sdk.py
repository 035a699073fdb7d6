"""The ark dialect against the vendor-upstream's official Python SDK (volcengine-ark-runtime)."""

from __future__ import annotations

import io
from typing import Any

import av
import pytest
import requests

ark_runtime = pytest.importorskip("volcenginesdkarkruntime")

MODEL = "doubao-seedance-1-0-lite-t2v-250428"


@pytest.fixture
def client(emu: Any) -> Any:
    emu.configure(dialect="ark")
    return ark_runtime.Ark(base_url=emu.api_url, api_key=emu.api_key, max_retries=0, timeout=10)


def test_official_sdk_create_get_list_delete(client: Any, api: Any) -> None:
    tasks = client.content_generation.tasks
    created = tasks.create(
        model=MODEL,
        content=[
            {"type": "text", "text": "[[queue:0]] [[run:0.2]] a red kite --rs 480p --rt 1:1"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}, "role": "first_frame"},
        ],
        duration=2,
        seed=11,
        return_last_frame=True,
        camera_fixed=True,
    )
    assert created.id.startswith("cgt-")
    api.wait_status(created.id, "succeeded")
    task = tasks.get(task_id=created.id)
    assert task.status == "succeeded" and task.model == MODEL and task.seed == 11 and task.duration == 2
    assert task.usage.completion_tokens == task.usage.total_tokens == 640 * 640 * 24 * 2 // 1024
    assert task.content.last_frame_url.split("?")[0].endswith(".png")
    video = requests.get(task.content.video_url, timeout=30)
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (640, 640)

    listing = tasks.list(page_num=1, page_size=10, status="succeeded", task_ids=[created.id], model=MODEL)
    assert listing.total == 1 and listing.items[0].id == created.id

    queued = tasks.create(model=MODEL, content=[{"type": "text", "text": "[[queue:60]] waits"}])
    tasks.delete(queued.id)
    assert tasks.get(task_id=queued.id).status == "cancelled"
    tasks.delete(created.id)
    with pytest.raises(ark_runtime._exceptions.ArkNotFoundError):
        tasks.get(task_id=created.id)


def test_official_sdk_maps_error_shapes(client: Any, emu: Any) -> None:
    exceptions = ark_runtime._exceptions
    with pytest.raises(exceptions.ArkBadRequestError) as bad:
        client.content_generation.tasks.create(model=MODEL, content=[{"type": "text", "text": "x"}], seed=0)
    assert bad.value.code == "InvalidParameter" and bad.value.param == "seed"
    wrong_key = ark_runtime.Ark(base_url=emu.api_url, api_key="wrong", max_retries=0, timeout=10)
    with pytest.raises(exceptions.ArkAuthenticationError):
        wrong_key.content_generation.tasks.list()
    emu.add_fault(endpoint="create", action="rate_limit", retry_after=0, count=1)
    with pytest.raises(exceptions.ArkRateLimitError):
        client.content_generation.tasks.create(model=MODEL, content=[{"type": "text", "text": "x"}])
    running = client.content_generation.tasks.create(
        model=MODEL, content=[{"type": "text", "text": "[[queue:0]] [[run:60]] busy"}]
    )
    with pytest.raises(exceptions.ArkBadRequestError):
        client.content_generation.tasks.delete(running.id)
