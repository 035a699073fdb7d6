"""Imports that moved between the Airflow 3.x releases we support, resolved by common-compat."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import BaseHook, mask_secret

__all__ = ["BaseHook", "mask_secret"]
