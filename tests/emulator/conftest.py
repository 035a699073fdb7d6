"""Shared fixtures for the emulator tests: every test talks HTTP to a real emulator process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

import airflow_provider_gptproto.emulator.pytest_plugin as emulator_plugin
from airflow_provider_gptproto.emulator.harness import EmulatorProcess

TASKS = "/api/v3/contents/generations/tasks"


def pytest_configure(config: pytest.Config) -> None:
    # Installed, the plugin loads through its entry point; from a bare checkout it may not have.
    if not config.pluginmanager.is_registered(emulator_plugin):
        config.pluginmanager.register(emulator_plugin, "gptproto_emulator")


class Api:
    """A deliberately plain client: raw requests, so the tests see exactly what goes over the wire."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self.emulator = emulator
        self.base = emulator.url
        self.session = requests.Session()
        self.headers = {"Authorization": f"Bearer {emulator.api_key}"}

    def create(
        self, body: Any = None, *, headers: dict[str, str] | None = None, **fields: Any
    ) -> requests.Response:
        payload = (
            body if body is not None else {"model": "seedance-1-0-lite-t2v", "prompt": "a cat", **fields}
        )
        return self.session.post(
            self.base + TASKS, json=payload, headers=self.headers if headers is None else headers, timeout=10
        )

    def create_raw(self, data: bytes) -> requests.Response:
        headers = {**self.headers, "Content-Type": "application/json"}
        return self.session.post(self.base + TASKS, data=data, headers=headers, timeout=10)

    def get(self, task_id: str, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.get(
            f"{self.base}{TASKS}/{task_id}", headers=self.headers if headers is None else headers, timeout=10
        )

    def list(self, params: Any = None) -> requests.Response:
        return self.session.get(self.base + TASKS, params=params, headers=self.headers, timeout=10)

    def delete(self, task_id: str) -> requests.Response:
        return self.session.delete(f"{self.base}{TASKS}/{task_id}", headers=self.headers, timeout=10)

    def new_task(self, prompt: str = "a cat", **fields: Any) -> str:
        """Create a task (any dialect, any id location) and return its id."""
        response = self.create(prompt=prompt, **fields)
        assert response.status_code == 200, response.text
        body = response.json()
        data = body.get("data") or {}
        return str(body.get("id") or body.get("task_id") or data.get("task_id") or data.get("id"))

    def task(self, task_id: str) -> dict[str, Any]:
        """The emulator's own view of a task (admin endpoint), independent of the dialect."""
        return next(t for t in self.emulator.tasks() if t["id"] == task_id)

    def wait_status(self, task_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task = self.task(task_id)
            if task["status"] == status:
                return task
            assert time.monotonic() < deadline, f"task {task_id} stuck in {task['status']}, wanted {status}"
            time.sleep(0.05)

    def video_url(self, task_id: str, kind: str = "video_url") -> str:
        """Wait until the task succeeded, then read its link from whichever dialect is active."""
        self.wait_status(task_id, "succeeded")
        body = self.get(task_id).json()
        data = body.get("data") or {}
        if kind == "last_frame_url":
            return str(body["content"]["last_frame_url"])
        return str(
            data.get("video_url") or (data.get("outputs") or [None])[0] or body["content"]["video_url"]
        )


@pytest.fixture
def emu(gptproto_emulator_clean: EmulatorProcess) -> EmulatorProcess:
    """The session emulator, reset (envelope dialect, queue 0.2 s, run 0.5 s)."""
    return gptproto_emulator_clean


@pytest.fixture
def api(emu: EmulatorProcess) -> Api:
    return Api(emu)


@pytest.fixture
def make_api() -> Callable[[EmulatorProcess], Api]:
    return Api
