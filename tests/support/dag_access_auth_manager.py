"""SimpleAuthManager plus per-DAG read limits, for testing the UI plugin's permission checks.

SimpleAuthManager grants by role only (a viewer reads every DAG), and per-DAG access otherwise
needs the FAB provider (Flask-AppBuilder and its own user DB) or multi-team mode. This subclass
changes one thing: users named in ``GPTPROTO_TEST_DAG_ACCESS`` (``user=dag_a|dag_b;user2=...``) may
touch only those DAGs. Everything else, tokens and login included, is SimpleAuthManager's, and the
plugin reaches it only through the api-server's own dependencies, as it would any auth manager.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

ACCESS_ENV = "GPTPROTO_TEST_DAG_ACCESS"


def dag_limits() -> dict[str, set[str]]:
    limits: dict[str, set[str]] = {}
    for entry in os.environ.get(ACCESS_ENV, "").split(";"):
        user, _, dags = entry.partition("=")
        if user.strip():
            limits[user.strip()] = {d.strip() for d in dags.split("|") if d.strip()}
    return limits


class DagAccessAuthManager(SimpleAuthManager):
    """Role checks as usual, then the per-user DAG list (when the user has one)."""

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        allowed = super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
        limit = dag_limits().get(user.get_name())
        if not allowed or limit is None:
            return allowed
        dag_id = getattr(details, "id", None)
        return dag_id is not None and dag_id in limit
