"""The timestamp formats IMS, its jobs and IAM use, from epoch seconds (UTC)."""

from __future__ import annotations

from datetime import datetime, timezone


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def image_time(epoch: float) -> str:
    """Image ``created_at``/``updated_at``/``active_at``: ``2018-09-06T14:03:27Z``."""
    return _utc(epoch).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_time(epoch: float) -> str:
    """Job ``begin_time``/``end_time``: ``2024-11-06T06:14:27.168Z``."""
    moment = _utc(epoch)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def token_time(epoch: float) -> str:
    """IAM ``expires_at``/``issued_at``: ``2020-01-04T09:05:22.701000Z``."""
    return _utc(epoch).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_image_time(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
