"""Pure core: request validation, response normalisation and error parsing. No I/O lives here."""

from __future__ import annotations

from airflow_provider_gptproto.models.errors import error_from_response, parse_retry_after
from airflow_provider_gptproto.models.request import DEFAULT_MODEL, ImageInput, Logo, VideoGenerationRequest
from airflow_provider_gptproto.models.task import (
    GenerationTask,
    TaskList,
    TaskStatus,
    parse_create,
    parse_task,
    parse_task_list,
)

__all__ = [
    "DEFAULT_MODEL",
    "GenerationTask",
    "ImageInput",
    "Logo",
    "TaskList",
    "TaskStatus",
    "VideoGenerationRequest",
    "error_from_response",
    "parse_create",
    "parse_retry_after",
    "parse_task",
    "parse_task_list",
]
