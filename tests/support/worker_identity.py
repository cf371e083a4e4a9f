"""``[core] hostname_callable`` for the distributed test: each Celery worker stands for one machine."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """The worker's name (``OPENAI_FILES_WORKER_NAME``), so ``TI.hostname`` tells which machine ran a try."""
    return os.environ.get("OPENAI_FILES_WORKER_NAME") or socket.gethostname()
