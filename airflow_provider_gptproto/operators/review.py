"""GPTProtoReviewVideosOperator: a person picks one take per prompt (or approves a single video)
before anything is published, through Airflow's human-in-the-loop tasks (Airflow 3.1+): the standard
provider's ``ApprovalOperator`` with a ``pick_<n>`` choice per prompt (docs/review.md). The request
it pushes as XCom ``gptproto_review`` is documented in :mod:`airflow_provider_gptproto.models.review`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow import __version__ as airflow_version
from airflow.providers.common.compat.sdk import (
    AirflowOptionalProviderFeatureException,
    ObjectStoragePath,
    conf,
)

try:
    from airflow.providers.standard.operators.hitl import ApprovalOperator
except (ImportError, AirflowOptionalProviderFeatureException) as _missing:
    raise AirflowOptionalProviderFeatureException(
        f"GPTProtoReviewVideosOperator needs Airflow 3.1 or newer (human-in-the-loop tasks); this is "
        f"Airflow {airflow_version}. Upgrade Airflow, or review the videos outside Airflow."
    ) from _missing

from airflow.sdk import Param
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.definitions.xcom_arg import PlainXComArg

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.models.review import (
    REVIEW_XCOM_KEY,
    ReviewRequest,
    build_review,
    candidate,
    pick_params,
    review_body,
    review_result,
)
from airflow_provider_gptproto.utils.batch_journal import read_manifest

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_gptproto.models.results import ReviewResult, TakeSource


class GPTProtoReviewVideosOperator(ApprovalOperator):
    """Ask a reviewer to choose the takes to publish, and wait for the answer (Airflow 3.1+).

    The reviewer sees one group per prompt, and a ``pick_<n>`` field (default: its first take) for a
    group of several succeeded takes.

    :param videos: what to review (templated): generate, batch or storyboard results, a list of
        them or a mapped task's; or a list of XComArgs of such tasks (docs/review.md).
    :param subject: the headline in "Required actions" (templated).
    :param body: Markdown put before the generated list of takes (templated). Default None.
    :param defaults: what a ``response_timeout`` takes (``"Approve"`` or ``"Reject"``; with
        ``"Approve"`` each group's default pick). Default None: a timeout fails the task.
    :param response_timeout: longest wait for the answer (a ``timedelta``). Default None: no limit.

    Other keyword arguments go to ``ApprovalOperator`` (``assigned_users``, ``fail_on_reject``, ...).
    Returns a :class:`~airflow_provider_gptproto.models.results.ReviewResult`; Reject skips downstream.
    """

    template_fields: Sequence[str] = ("videos", "subject", "body")
    template_fields_renderers = {"videos": "json", "body": "md"}
    ui_color = "#fdf3e1"

    def __init__(
        self,
        *,
        videos: Any,
        subject: str = "Review the generated videos",
        body: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(subject=subject, body=body, **kwargs)
        self.videos = videos
        # Which upstream task each XComArg comes from (its value alone cannot say): the takes' links.
        parts = videos if isinstance(videos, (list, tuple)) else [videos]
        self._origins = [
            (part.operator.task_id, isinstance(part.operator, MappedOperator))
            if isinstance(part, PlainXComArg)
            else (None, False)
            for part in parts
        ]
        self._single = not isinstance(videos, (list, tuple))

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        me: TakeSource = {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": ti.map_index if ti.map_index is not None else -1,
        }
        review = build_review(self._candidates(me))
        self.params = ParamsDict({name: Param(**spec) for name, spec in pick_params(review).items()})
        ui_base = urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
        self.body = "\n\n".join(filter(None, [self.body, review_body(review, ui_base, me)]))
        takes = sum(len(group["takes"]) for group in review["groups"])
        self.log.info(
            "Review: %d prompts, %d succeeded takes (%s)", len(review["groups"]), takes, review["mode"]
        )
        ti.xcom_push(key=REVIEW_XCOM_KEY, value=review)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> ReviewResult:
        if "error" in event:  # a timeout without defaults: the task fails, as Airflow documents
            self.process_trigger_event_error(event)
        self.validate_chosen_options(event["chosen_options"])
        ti = context["ti"]
        review: ReviewRequest = ti.xcom_pull(
            task_ids=ti.task_id, key=REVIEW_XCOM_KEY, map_indexes=ti.map_index
        )
        result = review_result(review, event)
        who = result["responded_by"]
        self.log.info(
            "%s by %s: %s",
            "Approved" if result["approved"] else "Rejected",
            who["name"] if who else "the response timeout (defaults)",
            [(take["group"], take["take"]) for take in result["chosen"]],
        )
        if not result["approved"]:  # skipping downstream ends the task before a return value is kept
            ti.xcom_push(key="return_value", value=result)
        super().execute_complete(context=context, event=event)
        return result

    def _candidates(self, me: TakeSource) -> list[dict[str, Any]]:
        """Every video of the upstream results, with the task instance that holds it."""
        values = [self.videos] if self._single else list(self.videos)
        found = []
        for value, (task_id, mapped) in zip(values, self._origins, strict=True):
            source: TakeSource = {**me, "task_id": task_id or me["task_id"], "map_index": -1}
            per_index = list(value) if mapped else [value]
            for index, results in enumerate(per_index):
                where: TakeSource = {**source, "map_index": index if mapped else -1}
                for result in results if isinstance(results, (list, tuple)) else [results]:
                    found += self._videos_of(result, where)
        return found

    def _videos_of(self, result: Any, source: TakeSource) -> list[dict[str, Any]]:
        if not isinstance(result, dict):
            raise GPTProtoRequestError(
                f"videos must hold GPTProto results (generate, batch, storyboard), not {type(result)}",
                field="videos",
            )
        if result.get("kind") == "batch":
            rows = read_manifest(ObjectStoragePath(result["manifest"]))
            return [candidate(row, source) for row in rows]
        return [candidate(result, source)]
