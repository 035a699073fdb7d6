"""The names before the GPTProto prefix (and ``hooks.download``) still work for one release, and warn."""

from __future__ import annotations

import importlib
import sys

import pytest

from airflow_provider_gptproto import exceptions, storage
from airflow_provider_gptproto.exceptions import (
    GPTProtoError,
    GPTProtoVideoDestinationExistsError,
    GPTProtoVideoDownloadError,
    GPTProtoVideoURLExpiredError,
)

RENAMED = [
    ("VideoDownloadError", GPTProtoVideoDownloadError),
    ("VideoURLExpiredError", GPTProtoVideoURLExpiredError),
    ("VideoDestinationExistsError", GPTProtoVideoDestinationExistsError),
]


@pytest.mark.parametrize(("old", "new"), RENAMED)
def test_an_old_error_name_warns_and_is_the_new_class(old: str, new: type[GPTProtoError]) -> None:
    with pytest.warns(DeprecationWarning, match=rf"exceptions\.{old} is deprecated.*use {new.__name__}"):
        alias = getattr(exceptions, old)
    assert alias is new


def test_the_old_names_import_with_from_and_still_catch_the_new_errors() -> None:
    with pytest.warns(DeprecationWarning, match="VideoDownloadError is deprecated"):
        from airflow_provider_gptproto.exceptions import VideoDownloadError  # type: ignore[attr-defined]

    with pytest.raises(VideoDownloadError):
        raise GPTProtoVideoURLExpiredError("410 from the CDN")


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'VideoUploadError'"):
        exceptions.VideoUploadError  # type: ignore[attr-defined]  # noqa: B018


def test_the_old_download_module_warns_and_re_exports_the_storage_functions() -> None:
    sys.modules.pop("airflow_provider_gptproto.hooks.download", None)
    with pytest.warns(
        DeprecationWarning, match=r"hooks\.download is deprecated.*airflow_provider_gptproto\.storage"
    ):
        old = importlib.import_module("airflow_provider_gptproto.hooks.download")
    assert old.sweep_stale_parts is storage.sweep_stale_parts
    assert old.write_bytes_atomically is storage.write_bytes_atomically
    assert old.DownloadedVideo is storage.DownloadedVideo
