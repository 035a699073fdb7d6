"""A local emulator of the GPTProto video-generation task API (see docs/emulator.md).

It is written from the API contract (docs/api-contract.md) alone and imports nothing from the rest of the
package, so that a misreading of the contract on the client side cannot be hidden by
the same misreading here. This ``__init__`` stays import-light on purpose: the pytest
plugin lives in this package and is loaded in every pytest session of anyone who
installs the provider, with or without the ``[emulator]`` extra.
"""

from __future__ import annotations

__all__ = ["API_PREFIX", "TASKS_PATH"]

API_PREFIX = "/api/v3"
TASKS_PATH = f"{API_PREFIX}/contents/generations/tasks"
