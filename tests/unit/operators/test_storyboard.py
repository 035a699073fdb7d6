"""GPTProtoStoryboardOperator with a fake hook: chaining order, retries, failures, validation."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from airflow_provider_gptproto.exceptions import GPTProtoError, GPTProtoNotFoundError, GPTProtoRequestError
from airflow_provider_gptproto.models import GenerationTask, TaskStatus
from airflow_provider_gptproto.models.batch_plan import next_seed
from airflow_provider_gptproto.operators.storyboard import GPTProtoStoryboardOperator
from airflow_provider_gptproto.storage import DownloadedVideo
from tests.unit.operators.test_batch import FakeHook, _context
from tests.unit.utils.test_batch_journal import DictKV

FRAMES = 4


def _clip() -> bytes:
    """A real 4-frame MP4, so the stitching at the end is the real one."""
    data = io.BytesIO()
    with av.open(data, mode="w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(FRAMES):
            frame = av.VideoFrame(32, 32, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([40 * i]) * plane.buffer_size)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return data.getvalue()


CLIP = _clip()


class StoryHook(FakeHook):
    """Tasks carry a ``last_frame_url``; each create records its request and what was done by then.

    ``fail_once``: prompt words whose first task fails (the retry succeeds).
    """

    def __init__(
        self, outcomes: dict[str, TaskStatus] | None = None, fail_once: tuple[str, ...] = ()
    ) -> None:
        super().__init__(outcomes)
        self.requests: list[Any] = []
        self.done_at_create: list[list[str]] = []
        self.fail_once = set(fail_once)
        self.failing: set[str] = set()

    def create_task(self, request: Any) -> GenerationTask:
        self.done_at_create.append(list(self.downloaded))
        task = super().create_task(request)
        self.requests.append(request)
        for word in list(self.fail_once):
            if word in request.prompt:
                self.fail_once.discard(word)
                self.failing.add(task.task_id)
        return task

    def _task(self, task_id: str) -> GenerationTask:
        task = super()._task(task_id)
        if task_id in self.failing:
            return task.model_copy(
                update={"status": TaskStatus.FAILED, "video_url": None, "error_code": "Boom"}
            )
        if task.status is TaskStatus.SUCCEEDED:
            return task.model_copy(update={"last_frame_url": f"http://frames/{task_id}.png"})
        return task

    def download_video(self, url: str, destination: Any, **kwargs: Any) -> DownloadedVideo:
        self.downloaded.append(url)
        Path(destination.path).write_bytes(CLIP)
        return DownloadedVideo(str(destination), len(CLIP), hashlib.sha256(CLIP).hexdigest(), "video/mp4")


def _operator(hook: FakeHook, tmp_path: Path, **kwargs: Any) -> GPTProtoStoryboardOperator:
    if "storyboard_file" not in kwargs:
        kwargs.setdefault("shots", ["shot zero", "shot one", "shot two"])
    op = GPTProtoStoryboardOperator(
        task_id="storyboard",
        destination=str(tmp_path / "out"),
        poll_interval=0.001,
        **{"deferrable": False, **kwargs},
    )
    op.__dict__["hook"] = hook
    return op


def test_each_shot_starts_from_the_last_frame_of_the_one_before_once_it_is_done(tmp_path: Path) -> None:
    hook, context = StoryHook(), _context(DictKV())
    result = _operator(hook, tmp_path).execute(context)  # type: ignore[arg-type]

    assert hook.created == ["shot zero", "shot one", "shot two"]
    # Shot i was created only once shot i-1's video was stored, starting from its last frame.
    assert [len(done) for done in hook.done_at_create] == [0, 1, 2]
    assert hook.requests[0].images is None
    for i in (1, 2):
        (image,) = hook.requests[i].images
        assert (image.url, image.role) == (f"http://frames/t{i - 1}.png", "first_frame")
    assert all(r.return_last_frame for r in hook.requests)

    out = tmp_path / "out"
    assert result is not None and result["kind"] == "storyboard"
    assert result["uri"] == str(out / "storyboard.mp4") and result["manifest_uri"] == str(
        out / "manifest.jsonl"
    )
    with av.open(result["uri"]) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3 * FRAMES - 2  # shared frames once
    document = json.loads((out / "storyboard.json").read_text())
    assert [(s["index"], s["prompt"], s["task_id"]) for s in document["shots"]] == [
        (0, "shot zero", "t0"),
        (1, "shot one", "t1"),
        (2, "shot two", "t2"),
    ]
    assert document["usage"] == {"total_tokens": 300} == result["usage"]
    assert "shot one" in (out / "chapters.vtt").read_text()
    assert context["outlet_events"].by_name["gptproto_videos"].extra["uri"] == result["uri"]


def test_a_failed_shot_is_retried_with_a_new_seed(tmp_path: Path) -> None:
    hook = StoryHook(fail_once=("one",))
    result = _operator(hook, tmp_path, shot_retries=1).execute(_context(DictKV()))  # type: ignore[arg-type]

    assert hook.created == ["shot zero", "shot one", "shot one", "shot two"]
    assert hook.requests[2].seed == next_seed(7) != hook.requests[1].seed  # 7: the failed task's seed
    assert hook.requests[3].images[0].url == "http://frames/t2.png"  # from the retry's last frame
    document = json.loads(Path(result["storyboard_uri"]).read_text())  # type: ignore[index]
    assert document["shots"][1]["task_id"] == "t2"


def test_a_shot_failing_beyond_its_retries_fails_the_storyboard_naming_shot_prompt_and_reason(
    tmp_path: Path,
) -> None:
    hook = StoryHook({"policy": TaskStatus.FAILED})
    shots = ["shot zero", "a policy shot", "shot two"]
    with pytest.raises(GPTProtoError, match=r"shot 1 \(00001\).*'a policy shot'.*rejected by content policy"):
        _operator(hook, tmp_path, shots=shots).execute(_context(DictKV()))  # type: ignore[arg-type]

    assert hook.created == ["shot zero", "a policy shot"]  # the chain stopped
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [(r["status"], r["error_kind"]) for r in rows] == [
        ("succeeded", None),
        ("failed", "policy"),
        ("not_created", None),
    ]
    assert not (tmp_path / "out" / "storyboard.mp4").exists()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"model": "seedance-1-0-lite-t2v-250428"}, "model"),
        ({"shots": ["one", {"prompt": "two", "images": "http://x/y.png"}]}, "images"),
        ({"shots": ["one", {"prompt": "two", "duration": "7s"}]}, "duration"),
    ],
)
def test_everything_is_validated_before_the_first_create(
    tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    hook = StoryHook()
    with pytest.raises(GPTProtoRequestError) as err:
        _operator(hook, tmp_path, **kwargs).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert err.value.field == field and hook.created == []
    if field == "model":
        assert "continuity" in str(err.value)


def test_without_continuity_shots_run_in_parallel_and_need_no_image_model(tmp_path: Path) -> None:
    hook = StoryHook()
    op = _operator(hook, tmp_path, continuity="none", model="seedance-1-0-lite-t2v-250428")
    result = op.execute(_context(DictKV()))  # type: ignore[arg-type]
    assert [len(done) for done in hook.done_at_create] == [0, 0, 0]  # all created before any finished
    assert all(r.images is None and r.return_last_frame is None for r in hook.requests)
    with av.open(result["uri"]) as container:  # type: ignore[index]
        assert sum(1 for _ in container.decode(video=0)) == 3 * FRAMES


def test_a_journal_of_another_continuity_is_not_resumed(tmp_path: Path) -> None:
    store = DictKV()
    with pytest.raises(GPTProtoError, match="content policy"):
        _operator(StoryHook({"policy": TaskStatus.FAILED}), tmp_path, shots=["a", "policy b"]).execute(
            _context(store)  # type: ignore[arg-type]
        )
    hook = StoryHook()
    op = _operator(hook, tmp_path, shots=["a", "policy b"], continuity="none")
    with pytest.raises(GPTProtoError, match="belongs to different input"):
        op.execute(_context(store))  # type: ignore[arg-type]
    assert hook.created == []


@pytest.mark.parametrize(
    "name, text",
    [
        ("board.yaml", "- shot zero\n- prompt: shot one\n  seed: 5\n"),
        ("board.json", json.dumps({"shots": ["shot zero", {"prompt": "shot one", "seed": 5}]})),
    ],
)
def test_a_storyboard_file_in_yaml_or_json(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    items = _operator(StoryHook(), tmp_path, storyboard_file=str(tmp_path / name)).load_items()
    assert [(i.request.prompt, i.request.seed) for i in items] == [("shot zero", None), ("shot one", 5)]


def test_a_storyboard_file_that_is_not_a_list_of_shots_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "board.yaml").write_text("title: no shots here\n")
    with pytest.raises(GPTProtoRequestError, match="list of shots") as err:
        _operator(StoryHook(), tmp_path, storyboard_file=str(tmp_path / "board.yaml")).load_items()
    assert err.value.field == "storyboard_file"


def test_bad_arguments_fail_when_the_dag_is_parsed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="continuity must be one of 'last_frame', 'none', got 'smooth'"):
        GPTProtoStoryboardOperator(task_id="s", shots=["a"], destination=str(tmp_path), continuity="smooth")
    with pytest.raises(ValueError, match="exactly one of shots or storyboard_file"):
        GPTProtoStoryboardOperator(task_id="s", destination=str(tmp_path))
    with pytest.raises(ValueError, match="shot_retries"):
        GPTProtoStoryboardOperator(task_id="s", shots=["a"], destination=str(tmp_path), shot_retries=-1)


def test_a_previous_shot_whose_task_is_gone_fails_the_next_shot_instead_of_waiting_forever(
    tmp_path: Path,
) -> None:
    class GoneHook(StoryHook):
        def get_task(self, task_id: str) -> GenerationTask:
            raise GPTProtoNotFoundError(f"task {task_id} not found", http_status=404)

    hook = GoneHook()
    with pytest.raises(GPTProtoError, match=r"shot 1 \(00001\).*shot 0's task is gone"):
        _operator(hook, tmp_path).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert hook.created == ["shot zero"]


def test_the_stitched_video_is_the_lineage_output(tmp_path: Path) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    op = _operator(StoryHook(), tmp_path)
    assert op.get_openlineage_facets_on_complete(None).outputs == []  # nothing stitched yet
    result = op.execute(_context(DictKV()))  # type: ignore[arg-type]
    (output,) = op.get_openlineage_facets_on_complete(None).outputs
    assert result is not None and (output.namespace, output.name) == ("file", result["uri"])


class EnvelopeHook(StoryHook):
    """Replies without ``last_frame_url``, as GPTProto's own envelope documents them."""

    def _task(self, task_id: str) -> GenerationTask:
        return super()._task(task_id).model_copy(update={"last_frame_url": None})


def test_without_a_last_frame_url_a_shot_starts_from_the_stored_last_frame(tmp_path: Path) -> None:
    hook = EnvelopeHook()
    result = _operator(hook, tmp_path).execute(_context(DictKV()))  # type: ignore[arg-type]

    assert result is not None and len(hook.created) == 3
    with av.open(io.BytesIO(CLIP)) as container:
        last = list(container.decode(video=0))[-1].to_image().convert("RGB")
    for request in hook.requests[1:]:
        (image,) = request.images
        assert image.role == "first_frame" and image.url.startswith("data:image/jpeg;base64,")
        sent = Image.open(io.BytesIO(base64.b64decode(image.url.partition(",")[2]))).convert("RGB")
        difference = ImageStat.Stat(ImageChops.difference(sent, last)).mean
        assert sent.size == last.size and max(difference) < 4  # the same picture, give or take JPEG


def test_takes_are_whole_storyboards_each_its_own_chain_rendering_side_by_side(tmp_path: Path) -> None:
    hook, context = StoryHook(), _context(DictKV())
    results = _operator(hook, tmp_path, takes=2, seed=40).execute(context)  # type: ignore[arg-type]

    # Both takes' first shots at once; each later shot from its own take's previous shot.
    assert hook.created == ["shot zero"] * 2 + ["shot one"] * 2 + ["shot two"] * 2
    assert [len(done) for done in hook.done_at_create] == [0, 0, 2, 2, 4, 4]
    assert [r.images[0].url for r in hook.requests[2:]] == [f"http://frames/t{i}.png" for i in range(4)]
    assert [r.seed for r in hook.requests] == [40, next_seed(40)] * 3  # take 1's seed, take 2's derived

    out = tmp_path / "out"
    assert isinstance(results, list) and [(r["take"], r["takes"]) for r in results] == [(1, 2), (2, 2)]
    for take, result in enumerate(results, 1):
        assert result["uri"] == str(out / f"take-{take}" / "storyboard.mp4")
        assert result["manifest_uri"] == str(out / "manifest.jsonl") and result["shots"] == 3
        with av.open(result["uri"]) as container:
            assert sum(1 for _ in container.decode(video=0)) == 3 * FRAMES - 2
        document = json.loads(Path(result["storyboard_uri"]).read_text())
        assert [(s["index"], s["key"], s["task_id"]) for s in document["shots"]] == [
            (i, f"0000{i}-take-{take}", f"t{2 * i + take - 1}") for i in range(3)
        ]
        assert Path(result["chapters_uri"]).parent == out / f"take-{take}"
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(r["prompt_index"], r["take"]) for r in rows] == [(i, k) for i in range(3) for k in (1, 2)]
    extra = context["outlet_events"].by_name["gptproto_videos"].extra
    assert extra["take_uris"] == [r["uri"] for r in results]


def test_with_one_take_the_layout_is_as_before_and_the_result_says_take_1_of_1(tmp_path: Path) -> None:
    result = _operator(StoryHook(), tmp_path).execute(_context(DictKV()))  # type: ignore[arg-type]
    assert isinstance(result, dict) and (result["take"], result["takes"]) == (1, 1)
    assert result["uri"] == str(tmp_path / "out" / "storyboard.mp4")


def test_bad_takes_fail_when_the_dag_is_parsed(tmp_path: Path) -> None:
    with pytest.raises(GPTProtoRequestError, match="takes must be an integer >= 1") as caught:
        GPTProtoStoryboardOperator(task_id="s", shots=["a"], destination=str(tmp_path), takes=-1)
    assert caught.value.field == "takes"
