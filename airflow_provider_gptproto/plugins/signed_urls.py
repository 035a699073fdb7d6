"""When a pre-signed video URL stops working, read from its query (``expires``, S3's or TOS's
``X-*-Date`` + ``X-*-Expires``), else guessed as the contract's 24 hours after the task finished.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

from airflow_provider_gptproto.models.task import parse_when

CONTRACT_LIFETIME = timedelta(hours=24)


def signed_url_expiry(url: str, finished_at: str | None) -> datetime | None:
    """The moment ``url`` expires (UTC), or None when nothing tells."""
    query = {k.lower(): v[0] for k, v in parse_qs(urlparse(url).query).items() if v}
    if query.get("expires", "").isdigit():
        return datetime.fromtimestamp(int(query["expires"]), tz=timezone.utc)
    for prefix in ("x-amz-", "x-tos-"):
        signed, lifetime = query.get(prefix + "date"), query.get(prefix + "expires", "")
        if signed and lifetime.isdigit():
            try:
                start = datetime.strptime(signed, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
            except ValueError:
                continue
            return start + timedelta(seconds=int(lifetime))
    finished = parse_when(finished_at)
    return finished + CONTRACT_LIFETIME if finished else None


def is_expired(expires: datetime | None, now: datetime | None = None) -> bool:
    """Expired only when the expiry is known and past."""
    return expires is not None and expires <= (now or datetime.now(timezone.utc))
