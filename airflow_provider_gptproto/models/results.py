"""What the operators, the sensor and the hook's saved video return (JSON-safe: XCom), built through
these types so mypy checks every key. The UI plugin reads a result as the type its ``kind`` names."""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import NotRequired, Required, TypedDict

KIND_KEY = "kind"
Kind = Literal["generate", "saved_video", "download", "batch", "storyboard", "review", "publish"]


class RequestSummary(TypedDict, total=False):
    """The set scalar options of the request sent (``VideoGenerationRequest.summary``); these and more."""

    prompt: str
    model: str
    seed: int
    duration: str | int
    dimension: str
    ratio: str
    resolution: str


class TaskResult(TypedDict, total=False):
    """A remote task (``GenerationTask.to_dict``; trigger events carry it too): every field, None or not."""

    task_id: Required[str]
    status: Required[str]
    video_url: str | None
    last_frame_url: str | None
    error_code: str | None
    error_message: str | None
    model: str | None
    seed: int | None
    usage: dict[str, int] | None
    created_at: str | None  # ISO 8601
    updated_at: str | None


class GenerateResult(TaskResult):
    """What the generate operator and the sensor return: the task (the operator adds the request)."""

    kind: Literal["generate"]
    request: NotRequired[RequestSummary]
    take: NotRequired[int]  # 1-based: which of the operator's ``takes`` (the sensor sets neither)
    takes: NotRequired[int]


class SavedVideoResult(TaskResult):
    """``SavedVideo.to_dict()`` (the hook's ``generate_video`` with a destination); None fields left out."""

    kind: Literal["saved_video"]
    uri: str
    bytes: int
    sha256: str
    request: RequestSummary


class DownloadResult(TypedDict):
    """``GPTProtoDownloadVideoOperator``; also the extra of its ``gptproto_videos`` asset event."""

    kind: Literal["download"]
    task_id: str
    prompt: str | None
    model: str | None
    seed: int | None
    duration: str | int | None
    dimension: str | None
    sha256: str
    bytes: int
    uri: str
    usage: dict[str, int] | None
    poster_uri: NotRequired[str]  # when PyAV could make one


class BatchSummary(TypedDict):
    """``GPTProtoBatchGenerateVideosOperator``; also the extra of its one asset event per batch."""

    kind: Literal["batch"]
    total: int
    succeeded: int
    failed: int
    manifest: str  # URI of manifest.jsonl: one ManifestRow per item
    destination: str


class StoryboardResult(TypedDict):
    """``GPTProtoStoryboardOperator``; also the extra of its one asset event (the stitched video)."""

    kind: Literal["storyboard"]
    uri: str  # the stitched video, <destination>/storyboard.mp4 (or <destination>/take-<k>/...)
    manifest_uri: str  # the shots' manifest.jsonl (ManifestRow per shot)
    storyboard_uri: str  # storyboard.json: each shot's span in the video, the stitch method, usage
    chapters_uri: str  # chapters.vtt: one WebVTT cue per shot
    destination: str
    duration: float  # seconds
    shots: int
    method: str  # "copy" or "reencode"
    usage: dict[str, int] | None  # summed over the shots
    take: int  # 1-based; with takes > 1 the files are under <destination>/take-<k>/
    takes: int


class ManifestRow(TypedDict):
    """One line of a batch's ``manifest.jsonl``: what was asked, what the API did, where the video is."""

    index: int  # unique per row: prompt_index * takes + take - 1
    key: str
    line: int | None
    prompt_index: int  # the input item's index, before it was expanded into its takes
    take: int  # 1-based
    takes: int
    prompt: str | None
    task_id: str | None
    status: str  # "succeeded", or how it failed
    uri: str | None
    bytes: int | None
    sha256: str | None
    seed: int | None
    usage: dict[str, int] | None
    error: str | None
    error_kind: str | None
    request: dict[str, Any]  # the item's request fields, as given


class TakeSource(TypedDict):
    """The task instance whose result holds a take."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int


class ChosenTake(TypedDict):
    """A take the reviewer chose (``ReviewResult.chosen``): enough to publish it and trace it back."""

    group: int  # 1-based group (prompt) number of the review
    prompt: str | None
    take: int
    seed: int | None
    uri: str | None  # the stored video, when one was stored
    video_url: str | None  # the signed URL, when nothing was stored
    sha256: str | None
    gptproto_task_id: str | None
    source: TakeSource


class ReviewResult(TypedDict):
    """``GPTProtoReviewVideosOperator``: the decision, the chosen takes and who made it (Airflow's record)."""

    kind: Literal["review"]
    approved: bool
    chosen: list[ChosenTake]  # one per group with a succeeded take; [] when rejected
    responded_by: dict[str, str] | None  # {"id", "name"} of the Airflow user; None when a timeout chose
    responded_at: str | None  # ISO 8601
    timed_out: bool  # the response_timeout passed and the defaults were taken


class PublishedVideo(TypedDict):
    group: int
    take: int
    prompt: str | None
    uri: str
    bytes: int
    sha256: str
    source_uri: str | None


class PublishResult(TypedDict):
    """``GPTProtoPublishVideosOperator``; also the extra of its asset event on the destination."""

    kind: Literal["publish"]
    destination: str
    published: list[PublishedVideo]
