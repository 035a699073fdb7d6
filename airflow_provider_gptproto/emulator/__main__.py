"""``python -m airflow_provider_gptproto.emulator``: same as the ``gptproto-emulator`` script."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
