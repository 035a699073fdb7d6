"""Destination checks: what the download operator verifies before the generate task pays."""

from __future__ import annotations

import json

import pytest

from airflow_provider_gptproto.exceptions import GPTProtoRequestError
from airflow_provider_gptproto.utils import destination as destination_module
from airflow_provider_gptproto.utils.destination import (
    check_destination,
    check_if_exists,
    split_destination,
    static_prefix,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/data/videos/", ("", None)),
        ("videos/out.mp4", ("", None)),
        ("file:///data/v.mp4", ("file", None)),
        ("s3://aws_default@my-bucket/videos/", ("s3", "aws_default")),
        ("S3://my-bucket/videos/", ("s3", None)),
        ("gcs://g@b/x", ("gcs", "g")),
        ("", (None, None)),
        ("s3:", (None, None)),
    ],
)
def test_split_destination(value: str, expected: tuple[str | None, str | None]) -> None:
    assert split_destination(value) == expected


def test_static_prefix_stops_at_the_first_template_marker() -> None:
    assert static_prefix("s3://aws_default@bucket/{{ ds }}/x") == "s3://aws_default@bucket/"
    assert static_prefix("{% if x %}a{% endif %}") == ""
    assert static_prefix("/plain/path") == "/plain/path"


@pytest.mark.parametrize("value", ["/tmp/videos/", "file:///tmp/v.mp4", "relative/dir/"])
def test_local_destinations_pass(value: str) -> None:
    check_destination(value, templated=False)


def test_s3_without_its_provider_names_what_to_install() -> None:
    with pytest.raises(GPTProtoRequestError) as caught:
        check_destination("s3://aws_default@my-bucket/videos/", templated=False)
    message = str(caught.value)
    assert caught.value.field == "destination"
    assert "no Airflow filesystem is registered for s3://" in message
    assert 'pip install "apache-airflow-providers-amazon[s3fs]"' in message


@pytest.mark.parametrize(
    ("value", "package"),
    [
        ("gs://g@bucket/x/", "apache-airflow-providers-google gcsfs"),
        ("abfs://c@container/x/", "apache-airflow-providers-microsoft-azure adlfs"),
    ],
)
def test_other_object_stores_name_their_packages(value: str, package: str) -> None:
    with pytest.raises(GPTProtoRequestError, match=f"pip install {package}"):
        check_destination(value, templated=False)


def test_an_unknown_protocol_names_what_is_missing() -> None:
    with pytest.raises(GPTProtoRequestError, match="registers the 'weird' filesystem"):
        check_destination("weird://bucket/x", templated=False)


def test_a_registered_filesystem_without_its_library_names_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The amazon provider installed without s3fs: Airflow has the scheme, fsspec lacks the library."""
    import importlib.util

    monkeypatch.setattr(destination_module, "filesystem_registered", lambda scheme: True)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "s3fs" else real_find_spec(name)
    )
    with pytest.raises(GPTProtoRequestError, match="needs the Python package 's3fs'") as caught:
        check_destination("s3://my-bucket/videos/", templated=False)
    assert 'pip install "apache-airflow-providers-amazon[s3fs]"' in str(caught.value)


def test_a_templated_destination_is_checked_on_its_static_part() -> None:
    with pytest.raises(GPTProtoRequestError, match="s3://"):
        check_destination("s3://aws_default@bucket/{{ ds }}/", templated=True)
    check_destination("{{ params.out }}/videos/", templated=True)  # nothing known yet
    check_destination("{{ var.value.scheme }}://bucket/x", templated=True)


def test_an_existing_storage_connection_passes_and_the_check_can_be_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(destination_module, "filesystem_registered", lambda scheme: True)
    monkeypatch.setattr("airflow_provider_gptproto.utils.destination._fsspec_library", lambda p: None)
    monkeypatch.setenv("AIRFLOW_CONN_MY_STORE", json.dumps({"conn_type": "aws"}))
    check_destination("s3://my_store@bucket/x/", templated=False)
    monkeypatch.delenv("AIRFLOW_CONN_MY_STORE")
    with pytest.raises(GPTProtoRequestError, match="'my_store'"):
        check_destination("s3://my_store@bucket/x/", templated=False)
    check_destination("s3://my_store@bucket/x/", templated=False, check_connection=False)


def test_if_exists_values() -> None:
    assert [check_if_exists(v) for v in ("overwrite", "skip", "fail")] == ["overwrite", "skip", "fail"]
    with pytest.raises(GPTProtoRequestError, match="if_exists must be one of 'overwrite', 'skip', 'fail'"):
        check_if_exists("replace")
