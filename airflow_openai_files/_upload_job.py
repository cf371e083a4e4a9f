"""What an upload sends (:class:`UploadJob`) and the duplicate lookup of both upload strategies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_openai_files._io import UploadSource
    from airflow_openai_files._transport import Transport

# Clock skew allowed between us and the server when matching ``created_at``.
CLOCK_SKEW = 300


@dataclass
class UploadJob:
    """One file to upload: the checked source, the recorded name, purpose and expiry."""

    source: UploadSource
    name: str
    purpose: str
    expires_after_seconds: int | None = None

    @property
    def what(self) -> str:
        return f"Uploading {self.name}"


def find_uploaded(
    transport: Transport, filename: str, size: int, purpose: str, *, since: float, what: str = "Listing files"
) -> dict[str, Any] | None:
    """The newest file with this name, size and purpose created at or after ``since`` (unix seconds)."""
    horizon = since - CLOCK_SKEW
    params = {"purpose": purpose, "order": "desc", "limit": 100}
    for item in transport.iter_pages("files", params, what):
        if int(item.get("created_at") or 0) < horizon:
            return None
        if item.get("filename") == filename and int(item.get("bytes") or -1) == size:
            return item
    return None
