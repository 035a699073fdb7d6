"""Reading a signed link's expiry from the link itself."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow_provider_gptproto.plugins.signed_urls import is_expired, signed_url_expiry

EPOCH = 1_800_000_000


def test_unix_expires_parameter() -> None:
    url = f"http://127.0.0.1:9/_emulator/videos/cgt-1.mp4?expires={EPOCH}&sig=abc"
    assert signed_url_expiry(url, None) == datetime.fromtimestamp(EPOCH, tz=timezone.utc)


def test_s3_and_tos_style_parameters() -> None:
    s3 = "https://b.s3.amazonaws.com/v.mp4?X-Amz-Date=20260102T030405Z&X-Amz-Expires=3600&X-Amz-Signature=x"
    tos = "https://b.tos-cn-beijing.volces.com/v.mp4?X-Tos-Date=20260102T030405Z&X-Tos-Expires=86400"
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert signed_url_expiry(s3, None) == start + timedelta(hours=1)
    assert signed_url_expiry(tos, None) == start + timedelta(days=1)


def test_contract_lifetime_when_the_link_says_nothing() -> None:
    assert signed_url_expiry("https://cdn.example/v.mp4", "2026-01-02T00:00:00+00:00") == datetime(
        2026, 1, 3, tzinfo=timezone.utc
    )
    assert signed_url_expiry("https://cdn.example/v.mp4", None) is None
    assert (
        signed_url_expiry("https://cdn.example/v.mp4?X-Amz-Date=junk&X-Amz-Expires=5", "not a date") is None
    )


def test_is_expired_only_when_known_and_past() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert is_expired(now - timedelta(seconds=1), now)
    assert not is_expired(now + timedelta(seconds=1), now)
    assert not is_expired(None, now)
