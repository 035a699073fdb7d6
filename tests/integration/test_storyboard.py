"""The storyboard operator through DAG.test() against the emulator over loopback.

Three 2-second shots; with continuity the shots are chained by their last frame, so each cut is
smooth and the frame a shot shares with the next appears once. The same storyboard without
continuity is the yardstick for "smooth".
"""

from __future__ import annotations

import json
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from tests.integration.dagrun import run_dag

pytestmark = pytest.mark.usefixtures("airflow_db")

# Each shot its own seed (the emulator paints the seed's background): without continuity every cut
# is hard; with it, the next shot starts from the previous one's last frame.
PROMPTS = [
    "[[queue:0]] [[run:0]] a red kettle on a kitchen counter",
    "[[queue:0]] [[run:0]] steam rises from the kettle spout",
    "[[queue:0]] [[run:0]] a cup of tea is poured beside it",
]
SHOTS = [{"prompt": prompt, "seed": 1000 + 111 * i} for i, prompt in enumerate(PROMPTS)]


def _frames(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def _storyboard(continuity: str, out: Path) -> tuple[Any, dict[str, Any], list[Image.Image]]:
    result = run_dag(f"it_storyboard_{continuity}", shots=SHOTS, destination=str(out))
    assert result.state == "success", result.tis
    document = json.loads((out / "storyboard.json").read_text())
    return result, document, _frames(out / "storyboard.mp4")


def test_chained_shots_stitch_into_one_smooth_video(emulator: Any, tmp_path: Path) -> None:
    emulator.configure(dialect="ark")  # the task object that carries last_frame_url
    result, document, frames = _storyboard("last_frame", tmp_path / "chained")

    creates = [t for t in emulator.tasks() if "[[run:0]]" in str(t.get("prompt", ""))]
    assert len(creates) == len(SHOTS)  # one paid create per shot
    shot_frames = [len(_frames(tmp_path / "chained" / f"{s['key']}.mp4")) for s in document["shots"]]
    assert len(frames) == sum(shot_frames) - (len(SHOTS) - 1)  # each shared frame once
    assert document["continuity"] == "last_frame" and document["method"] == "copy"

    spans = [(s["start"], s["end"]) for s in document["shots"]]
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in pairwise(spans))
    assert document["duration"] == pytest.approx(len(frames) / float(Fraction(document["fps"])), abs=1e-3)
    assert [s["prompt"] for s in document["shots"]] == PROMPTS
    assert [s["task_id"] for s in document["shots"]] == [t["id"] for t in creates]
    assert [s["seed"] for s in document["shots"]] == [shot["seed"] for shot in SHOTS]
    assert all(s["usage"] for s in document["shots"])
    assert document["usage"]["total_tokens"] == sum(s["usage"]["total_tokens"] for s in document["shots"])

    vtt = (tmp_path / "chained" / "chapters.vtt").read_text().splitlines()
    assert vtt[0] == "WEBVTT" and vtt.count("") >= len(SHOTS)
    assert [line for line in vtt if "-->" in line] == [
        f"{_vtt(s['start'])} --> {_vtt(s['end'])}" for s in document["shots"]
    ]

    summary = result.xcom("storyboard")
    assert summary["kind"] == "storyboard" and summary["uri"] == str(tmp_path / "chained" / "storyboard.mp4")
    assert summary["manifest_uri"] == str(tmp_path / "chained" / "manifest.jsonl")
    assert summary["shots"] == len(SHOTS)

    # The cuts: with continuity, the frames either side of each cut are nearly the same picture.
    chained_cuts = _cut_differences(frames, shot_frames, shared=True)
    _, _, loose = _storyboard("none", tmp_path / "loose")
    loose_cuts = _cut_differences(loose, shot_frames, shared=False)
    assert len(loose) == sum(shot_frames)
    for smooth, hard in zip(chained_cuts, loose_cuts, strict=True):
        assert smooth * 10 < hard, (chained_cuts, loose_cuts)


def test_without_last_frame_url_the_chain_starts_from_the_stored_last_frame(
    emulator: Any, tmp_path: Path
) -> None:
    """GPTProto's own envelope documents no last_frame_url: each shot starts from the previous
    shot's stored video's last frame (sent as a data: URL), and the cuts stay smooth."""
    emulator.configure(dialect="envelope")
    _, document, frames = _storyboard("last_frame", tmp_path / "chained")
    shot_frames = [len(_frames(tmp_path / "chained" / f"{s['key']}.mp4")) for s in document["shots"]]
    assert len(frames) == sum(shot_frames) - (len(SHOTS) - 1)
    _, _, loose = _storyboard("none", tmp_path / "loose")
    chained_cuts = _cut_differences(frames, shot_frames, shared=True)
    loose_cuts = _cut_differences(loose, shot_frames, shared=False)
    assert max(chained_cuts) * 10 < min(loose_cuts), (chained_cuts, loose_cuts)


def _cut_differences(frames: list[Image.Image], shot_frames: list[int], shared: bool) -> list[float]:
    cuts, position = [], 0
    for count in shot_frames[:-1]:
        position += count - 1 if shared else count
        cuts.append(_mean_difference(frames[position - 1], frames[position]))
    return cuts


def _vtt(seconds: float) -> str:
    millis = round(seconds * 1000)
    return (
        f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}.{millis % 1000:03d}"
    )


def test_the_example_dag_makes_a_30_second_video_from_six_chained_shots(
    emulator: Any, tmp_path: Path
) -> None:
    emulator.configure(dialect="ark", queue_seconds=0, run_seconds=0)
    result = run_dag("gptproto_storyboard", output_dir=str(tmp_path))

    assert result.state == "success", result.tis
    summary = result.xcom("storyboard")
    assert summary["shots"] == 6 and len(emulator.tasks()) == 6
    frames = _frames(Path(summary["uri"]))
    document = json.loads(Path(summary["storyboard_uri"]).read_text())
    fps = float(Fraction(document["fps"]))
    # Six 5-second shots, the five shared frames shown once each.
    assert len(frames) == round(30 * fps) - 5
    assert summary["duration"] == pytest.approx(30 - 5 / fps, abs=1e-3)
    assert [s["key"][:3] for s in document["shots"]] == [f"0{i}-" for i in range(1, 7)]  # the file's keys
    assert result.xcom("report") == {"video": summary["uri"], "duration": summary["duration"]}


def test_two_takes_are_two_chained_storyboards_stitched_side_by_side(emulator: Any, tmp_path: Path) -> None:
    emulator.configure(dialect="ark")
    prompts = [{"prompt": p} for p in PROMPTS]  # no seed: drawn per shot and take
    out = tmp_path / "takes"
    result = run_dag("it_storyboard_takes", shots=prompts, destination=str(out))

    assert result.state == "success", result.tis
    assert len(emulator.tasks()) == 2 * len(PROMPTS)  # one paid create per shot and take
    takes = result.xcom("storyboard")
    assert [(t["take"], t["takes"], t["shots"]) for t in takes] == [(1, 2, 3), (2, 2, 3)]
    seeds = []
    for k, take in enumerate(takes, 1):
        assert take["uri"] == str(out / f"take-{k}" / "storyboard.mp4")
        document = json.loads(Path(take["storyboard_uri"]).read_text())
        shot_frames = [len(_frames(Path(s["file"]))) for s in document["shots"]]
        frames = _frames(Path(take["uri"]))
        assert len(frames) == sum(shot_frames) - (len(PROMPTS) - 1)  # chained: shared frames once
        assert [s["prompt"] for s in document["shots"]] == PROMPTS
        assert max(_cut_differences(frames, shot_frames, shared=True)) < 5  # smooth cuts in each take
        seeds.append({s["seed"] for s in document["shots"]})
    assert seeds[0].isdisjoint(seeds[1])  # each take its own seeds
