"""The MP4s: real H.264 at the requested size and length, deterministic, served like pre-signed links."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import pytest
import requests
from PIL import Image, ImageChops

DONE_NOW = "[[queue:0]] [[run:0]]"
UPSTREAM_MODEL = "doubao-seedance-1-0-pro-250528"


def upstream(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": UPSTREAM_MODEL, "content": [{"type": "text", "text": f"{DONE_NOW} {text}"}], **fields}


def probe(data: bytes) -> tuple[str, str, int, int, int, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        duration = float(stream.duration * stream.time_base) if stream.duration else container.duration / 1e6
        return (
            stream.codec_context.name,
            stream.codec_context.pix_fmt or "",
            stream.width,
            stream.height,
            frames,
            duration,
        )


@pytest.mark.parametrize(
    ("body", "size", "seconds"),
    [
        ({"model": "m", "prompt": f"{DONE_NOW} default"}, (768, 768), 5.0),
        (
            {"model": "m", "prompt": f"{DONE_NOW} tall", "dimension": "768:1280", "duration": "5s"},
            (768, 1280),
            5.0,
        ),
        (
            {"model": "m", "prompt": f"{DONE_NOW} wide", "dimension": "1280:768", "duration": "10s"},
            (1280, 768),
            10.0,
        ),
        (upstream("landscape", ratio="16:9", resolution="480p", duration=2), (864, 480), 2.0),
        (upstream("portrait by frames", ratio="9:16", resolution="480p", frames=29), (480, 864), 29 / 24),
        ({"model": "m", "prompt": f"{DONE_NOW} flags --rt 21:9 --rs 480p --dur 3"}, (960, 416), 3.0),
    ],
)
def test_mp4_decodes_at_the_requested_size_and_length(
    api: Any, body: dict[str, Any], size: tuple[int, int], seconds: float
) -> None:
    task_id = api.create(body).json()["data"]["task_id"]
    response = requests.get(api.video_url(task_id), timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(response.content)
    codec, pix_fmt, width, height, frames, duration = probe(response.content)
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    assert (width, height) == size
    assert abs(duration - seconds) <= 1 / 8 + 1e-6
    assert frames == max(1, round(seconds * 8))


def _video_bytes(api: Any, **fields: Any) -> bytes:
    body = {"model": "m", "prompt": f"{DONE_NOW} deterministic", "duration": 2, **fields}
    task_id = api.create(body).json()["data"]["task_id"]
    return requests.get(api.video_url(task_id), timeout=30).content


def test_same_request_and_seed_give_the_same_bytes_across_processes(
    api: Any, gptproto_emulator_factory: Any, make_api: Any
) -> None:
    other = make_api(gptproto_emulator_factory())  # its own render cache: a real second render
    first = _video_bytes(api, seed=1234)
    second = _video_bytes(other, seed=1234)
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    assert _video_bytes(api, seed=1235) != first
    assert _video_bytes(api, seed=1234, prompt=f"{DONE_NOW} another prompt") != first


def test_frames_carry_the_seed_and_prompt_as_pixels(api: Any) -> None:
    # Same seed (same background) but different prompt text: only the text region differs.
    frames = []
    for prompt in ("AAAA AAAA", "WWWW WWWW"):
        data = _video_bytes(api, seed=77, prompt=f"{DONE_NOW} {prompt}")
        with av.open(io.BytesIO(data)) as container:
            frames.append(next(container.decode(video=0)).to_image())
    left, right = frames
    diff = Image.frombytes(
        "L",
        left.size,
        bytes(
            abs(a - b) for a, b in zip(left.convert("L").tobytes(), right.convert("L").tobytes(), strict=True)
        ),
    )
    box = diff.getbbox()
    assert box is not None and box[1] < left.size[1] // 3  # the prompt is drawn near the top


def test_last_frame_png(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    task_id = api.create(
        upstream("last frame", ratio="1:1", resolution="480p", duration=2, return_last_frame=True)
    ).json()["id"]
    response = requests.get(api.video_url(task_id, "last_frame_url"), timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (640, 640)


def test_range_head_and_full_download_agree(api: Any) -> None:
    task_id = api.new_task(f"{DONE_NOW} ranges", duration=2)
    url = api.video_url(task_id)
    full = requests.get(url, timeout=30).content
    size = len(full)
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == size and head.headers["accept-ranges"] == "bytes"

    part = requests.get(url, headers={"Range": "bytes=10-109"}, timeout=10)
    assert part.status_code == 206 and part.content == full[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{size}" and part.headers["content-length"] == "100"
    tail = requests.get(url, headers={"Range": "bytes=-50"}, timeout=10)
    assert tail.status_code == 206 and tail.content == full[-50:]
    rest = requests.get(url, headers={"Range": f"bytes={size - 7}-"}, timeout=10)
    assert rest.status_code == 206 and rest.content == full[-7:]
    clipped = requests.get(url, headers={"Range": f"bytes=0-{size * 2}"}, timeout=10)
    assert clipped.status_code == 206 and clipped.content == full
    beyond = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=10)
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    multi = requests.get(url, headers={"Range": "bytes=0-1,5-6"}, timeout=10)
    assert multi.status_code == 200 and multi.content == full  # multi-range ignored, as RFC 9110 allows
    resumed = full[:1000] + requests.get(url, headers={"Range": "bytes=1000-"}, timeout=10).content
    assert resumed == full


def test_links_need_no_auth_header_and_log_shows_none_was_sent(api: Any, emu: Any) -> None:
    url = api.video_url(api.new_task(f"{DONE_NOW} no auth", duration=2))
    assert requests.get(url, timeout=10).status_code == 200
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 200
    video_calls = emu.requests_log(endpoint="video")
    assert [entry["auth_present"] for entry in video_calls] == [False, True]
    assert video_calls[1]["auth_scheme"] == "bearer"


def test_expired_and_forged_links_answer_403_xml(api: Any, emu: Any) -> None:
    expiring = api.new_task(f"{DONE_NOW} [[link:expired]] expiring", duration=2)
    url = api.video_url(expiring)
    assert int(parse_qs(urlsplit(url).query)["expires"][0]) < time.time()
    expired = requests.get(url, timeout=10)
    assert expired.status_code == 403 and expired.headers["content-type"] == "application/xml"
    assert "<Code>AccessDenied</Code>" in expired.text and "expired" in expired.text

    emu.configure(url_ttl_seconds=3600)
    task_id = api.new_task(f"{DONE_NOW} lasting", duration=2)
    before = time.time()
    good = api.video_url(task_id)
    expires = int(parse_qs(urlsplit(good).query)["expires"][0])
    assert before - 5 + 3600 <= expires <= time.time() + 3601  # the TTL counts from the task's end
    assert requests.get(good, timeout=10).status_code == 200
    forged = [
        good.replace("sig=", "sig=0"),
        good.split("&sig=")[0],
        good.split("?")[0],
        good.replace(f"expires={parse_qs(urlsplit(good).query)['expires'][0]}", "expires=9999999999"),
        good.replace(f"{task_id}.mp4", f"{task_id}.png"),
    ]
    for link in forged:
        response = requests.get(link, timeout=10)
        assert response.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in response.text, link


def test_link_of_a_deleted_task_answers_404(api: Any) -> None:
    task_id = api.new_task(f"{DONE_NOW} deleted", duration=2)
    url = api.video_url(task_id)
    assert api.delete(task_id).status_code == 200
    response = requests.get(url, timeout=10)
    assert response.status_code == 404 and "<Code>NoSuchKey</Code>" in response.text


def test_video_bytes_pads_with_a_free_box_and_stays_playable(api: Any, emu: Any) -> None:
    task_id = api.new_task(f"{DONE_NOW} padded", duration=2)
    url = api.video_url(task_id)
    plain = requests.get(url, timeout=10).content
    target = 2 * 1024 * 1024
    emu.configure(video_bytes=target)
    response = requests.get(url, timeout=30)
    padded = response.content
    assert int(response.headers["content-length"]) == target == len(padded)
    assert padded[: len(plain)] == plain
    assert padded[len(plain) : len(plain) + 8] == struct.pack(">I4s", target - len(plain), b"free")
    assert set(padded[len(plain) + 8 :]) == {0}
    assert probe(padded)[2:5] == probe(plain)[2:5]
    inside_pad = requests.get(url, headers={"Range": f"bytes={len(plain) + 2}-{len(plain) + 9}"}, timeout=10)
    assert inside_pad.content == padded[len(plain) + 2 : len(plain) + 10]
    emu.configure(video_bytes=len(plain) + 3)  # no room for a box header: served unpadded
    assert len(requests.get(url, timeout=10).content) == len(plain)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the server's RSS")
def test_large_download_is_streamed_not_held_in_memory(api: Any, emu: Any) -> None:
    task_id = api.new_task(f"{DONE_NOW} big", duration=2)
    url = api.video_url(task_id)
    requests.get(url, timeout=10)  # render first
    target = 200 * 1024 * 1024
    emu.configure(video_bytes=target)
    before = _rss_kib(emu.process.pid)
    received = 0
    with requests.get(url, stream=True, timeout=60) as response:
        for chunk in response.iter_content(1024 * 1024):
            received += len(chunk)
    assert received == target
    assert _rss_kib(emu.process.pid) - before < 40 * 1024
    assert emu.stats()["bytes_served"] >= target


def test_video_stats_count_bytes_and_renders(api: Any, emu: Any) -> None:
    url = api.video_url(api.new_task(f"{DONE_NOW} stats", duration=2))
    size = len(requests.get(url, timeout=10).content)
    requests.get(url, headers={"Range": "bytes=0-9"}, timeout=10)
    stats = emu.stats()
    assert stats["bytes_served"] == size + 10
    assert stats["requests"]["video"] == 2 and stats["status_counts"]["video"] == {"200": 1, "206": 1}


def _frames_rgb(data: bytes, count: int) -> list[Image.Image]:
    with av.open(io.BytesIO(data)) as container:
        frames = container.decode(container.streams.video[0])
        return [next(frames).to_image() for _ in range(count)]


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0..255."""
    pixels = list(ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getdata())
    return sum(sum(p) for p in pixels) / (3 * len(pixels))


def _chained(previous_last_frame: str, text: str) -> dict[str, Any]:
    body = upstream(text, ratio="1:1", resolution="480p", duration=2, return_last_frame=True)
    body["content"].append(
        {"type": "image_url", "image_url": {"url": previous_last_frame}, "role": "first_frame"}
    )
    return body


def test_a_first_frame_image_starts_the_clip_and_fades_into_it(api: Any, emu: Any) -> None:
    """A storyboard's chain: shot 2 starts from shot 1's last frame (its own signed link)."""
    emu.configure(dialect="ark")
    first = api.create(
        upstream("shot one", ratio="1:1", resolution="480p", duration=2, return_last_frame=True, seed=1)
    ).json()["id"]
    last_frame_url = api.video_url(first, "last_frame_url")
    last_frame = Image.open(io.BytesIO(requests.get(last_frame_url, timeout=30).content))
    chained = api.create({**_chained(last_frame_url, "shot two"), "seed": 2}).json()["id"]
    alone = api.create(
        upstream("shot two", ratio="1:1", resolution="480p", duration=2, return_last_frame=True, seed=2)
    ).json()["id"]
    start, second = _frames_rgb(requests.get(api.video_url(chained), timeout=30).content, 2)
    unchained = _frames_rgb(requests.get(api.video_url(alone), timeout=30).content, 1)[0]
    assert _difference(start, last_frame) < 3  # the same picture, give or take H.264
    assert _difference(second, last_frame) < _difference(unchained, last_frame) / 2  # still close after it
    assert _difference(unchained, last_frame) > 20  # another seed, another background

    pixel = io.BytesIO()
    Image.new("RGB", (8, 8), (250, 20, 20)).save(pixel, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(pixel.getvalue()).decode()
    red = api.create(_chained(data_url, "from a data URL")).json()["id"]
    start = _frames_rgb(requests.get(api.video_url(red), timeout=30).content, 1)[0]
    assert _difference(start, Image.new("RGB", start.size, (250, 20, 20))) < 6


def test_other_image_urls_are_never_fetched(api: Any, emu: Any) -> None:
    """Only data: URLs and the emulator's own links are read; others render as no first frame."""
    emu.configure(dialect="ark")
    outside = _chained("http://127.0.0.1:9/never-fetched.png", "not fetched")
    outside["seed"] = 5
    plain = upstream(
        "not fetched", ratio="1:1", resolution="480p", duration=2, return_last_frame=True, seed=5
    )
    with_url = requests.get(api.video_url(api.create(outside).json()["id"]), timeout=30).content
    without = requests.get(api.video_url(api.create(plain).json()["id"]), timeout=30).content
    assert _difference(_frames_rgb(with_url, 1)[0], _frames_rgb(without, 1)[0]) < 1


def test_an_undecodable_first_frame_is_accepted_and_ignored(api: Any, emu: Any) -> None:
    emu.configure(dialect="ark")
    broken = api.create({**_chained("data:image/png;base64,bm90IGFuIGltYWdl", "broken"), "seed": 7})
    assert broken.status_code == 200, broken.text
    plain = upstream("broken", ratio="1:1", resolution="480p", duration=2, return_last_frame=True, seed=7)
    with_image = requests.get(api.video_url(broken.json()["id"]), timeout=30).content
    without = requests.get(api.video_url(api.create(plain).json()["id"]), timeout=30).content
    assert _difference(_frames_rgb(with_image, 1)[0], _frames_rgb(without, 1)[0]) < 1
