"""Apache Airflow provider for GPTProto's video-generation task API."""

from __future__ import annotations

__version__ = "0.1.0"
