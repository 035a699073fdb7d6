"""Imports that moved between the Airflow 3.x releases we support."""

from __future__ import annotations

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

__all__ = ["BaseHook", "mask_secret"]
