"""What an Uploads API upload has sent so far, kept for the next try of the same task instance.

An Upload lives one hour on the service and its parts stay there until ``/complete`` names them.
A task try that dies after sending 90 of 100 parts need not send them again: the journal (the
task's :class:`~airflow_openai_files.resume.TaskRecord`, Airflow 3.3+) holds the Upload id and, per
part, its id, offset, length and md5. The next try re-reads the recorded windows of the local
file, keeps the parts whose md5 still matches, sends the others, and completes with the md5 of the
whole file, so the service checks the joined bytes end to end. A part whose window changed is
simply sent again: ``/complete`` lists the part ids in file order and ignores the rest.

Two uploads keep such a journal: :class:`ResumableLocalUpload` (a local file, resumed part by part) and
:class:`RecordedRemoteUpload` (an object-store source, whose parts cannot be re-read cheaply: only its
Upload id is recorded, so the next try cancels what a killed try left pending).
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from airflow_openai_files.exceptions import OpenAIFilesError, OpenAIFilesNotFoundError
from airflow_openai_files.limits import UPLOAD_LIFETIME_SECONDS
from airflow_openai_files.transfer.uploads import MultipartUpload

#: An Upload expires an hour after creation; leave room for the parts still to send and /complete.
RESUME_WINDOW_S = UPLOAD_LIFETIME_SECONDS - 10 * 60
_KEY = "multipart"


def window_md5(path: Path, offset: int, length: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining > 0:
            block = handle.read(min(remaining, 1024 * 1024))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


class PartJournal:
    """Records one Upload's progress in a TaskRecord and answers what a retry can keep."""

    def __init__(self, record: Any, *, filename: str, purpose: str, size: int, part_size: int) -> None:
        self._record = record
        self._identity = {"filename": filename, "purpose": purpose, "bytes": size, "part_size": part_size}
        self._state: dict[str, Any] = {}
        self._lock = threading.Lock()

    def previous(self, path: Path, offsets: list[tuple[int, int]], log: Any) -> tuple[str, dict[int, str]] | None:
        """``(upload_id, {part index: part id})`` an earlier try left that is still usable, or None."""
        earlier = self._record.get(_KEY)
        if not isinstance(earlier, dict) or not earlier.get("upload_id"):
            return None
        if any(earlier.get(key) != value for key, value in self._identity.items()):
            log.info("Upload %s of an earlier try was for other input; starting a new one", earlier["upload_id"])
            self.finished()
            return None
        age = time.time() - float(earlier.get("created") or 0)
        if age > RESUME_WINDOW_S:
            log.info("Upload %s of an earlier try is %.0f min old; starting a new one", earlier["upload_id"], age / 60)
            self.finished()
            return None
        kept: dict[int, str] = {}
        for index_text, part in (earlier.get("parts") or {}).items():
            index = int(index_text)
            if index >= len(offsets) or [part.get("offset"), part.get("length")] != list(offsets[index]):
                continue
            if window_md5(path, *offsets[index]) == part.get("md5"):
                kept[index] = str(part["id"])
        self._state = {**earlier, "parts": {str(i): earlier["parts"][str(i)] for i in kept}}
        return str(earlier["upload_id"]), kept

    def pending(self) -> str | None:
        """The Upload id an earlier try recorded and did not finish, whatever its input."""
        earlier = self._record.get(_KEY)
        return str(earlier["upload_id"]) if isinstance(earlier, dict) and earlier.get("upload_id") else None

    def started(self, upload_id: str) -> None:
        with self._lock:
            self._state = {**self._identity, "upload_id": upload_id, "created": time.time(), "parts": {}}
            self._record.set(_KEY, self._state)

    def part_sent(self, index: int, part_id: str, offset: int, length: int, md5: str) -> None:
        with self._lock:
            if not self._state:
                return
            self._state["parts"][str(index)] = {"id": part_id, "offset": offset, "length": length, "md5": md5}
            self._record.set(_KEY, self._state)

    def finished(self) -> None:
        with self._lock:
            self._state = {}
            self._record.delete(_KEY)


class ResumableLocalUpload(MultipartUpload):
    """A :class:`MultipartUpload` of a local file whose progress outlives the task try.

    It records the Upload and every stored part in ``record`` (the task's TaskRecord), resumes
    what an earlier try recorded, and on failure leaves the Upload open for the next try instead
    of cancelling it (it expires on its own within the hour; ``on_kill`` still cancels it).
    """

    track_parts = True

    def __init__(self, *args: Any, record: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.journal = PartJournal(
            record, filename=self.name, purpose=self.purpose, size=self.source.size, part_size=self.part_size
        )

    def _upload(self, started: float) -> tuple[dict[str, Any], list[str]]:
        try:
            completed = self._attempt(started, resume=True)
        except OpenAIFilesError as err:
            gone = isinstance(err, OpenAIFilesNotFoundError) or err.http_status == 400  # expired, or cancelled
            if not self._kept or not gone or self._cancel_requested:
                raise
            # The earlier try's Upload expired or was cancelled meanwhile: start a new one.
            self.log.warning("Upload %s cannot be resumed (%s); starting a new one", self.upload_id, err.message)
            self._kept, self.upload_id, self._sent = {}, None, 0
            self._cancelled.clear()  # set by the failed part to stop the others, not by on_kill
            self.journal.finished()
            completed = self._attempt(started, resume=False)
        self.journal.finished()
        return completed

    def _attempt(self, started: float, *, resume: bool) -> tuple[dict[str, Any], list[str]]:
        assert self.source.local_path is not None
        earlier = self.journal.previous(self.source.local_path, self._offsets(), self.log) if resume else None
        if earlier is not None:
            self.upload_id, self._kept = earlier
            self.log.info(
                "Resuming Upload %s of %s from an earlier try: %d of %d part(s) already sent and unchanged",
                self.upload_id,
                self.name,
                len(self._kept),
                len(self._offsets()),
            )
        else:
            self.upload_id = self._create()["id"]
            self.journal.started(str(self.upload_id))
        part_ids, md5 = self._send_parts()
        return self._complete(part_ids, md5, started), part_ids

    def _failed(self, err: BaseException) -> None:
        if self._cancel_requested or self.upload_id is None:
            super()._failed(err)
            self.journal.finished()
            return
        self.log.warning("Upload %s of %s left open for a retry within the hour (%s)", self.upload_id, self.name, err)

    def _part_sent(self, index: int, part_id: str, offset: int, length: int, md5: str | None) -> None:
        if md5 is not None:
            self.journal.part_sent(index, part_id, offset, length, md5)


class RecordedRemoteUpload(MultipartUpload):
    """A :class:`MultipartUpload` of a source with no local path (an object store), whose Upload id
    outlives the task try.

    Its parts cannot be re-read cheaply to check what an earlier try sent, so it is not resumed; but a try
    killed with SIGKILL cannot cancel its own Upload either. The Upload id is recorded as soon as it
    exists, and the next try first cancels what the earlier one left pending, then starts a new Upload:
    nothing is left pending for its hour of life. A failure the try sees still cancels at once.
    """

    def __init__(self, *args: Any, record: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.journal = PartJournal(
            record, filename=self.name, purpose=self.purpose, size=self.source.size, part_size=self.part_size
        )

    def _upload(self, started: float) -> tuple[dict[str, Any], list[str]]:
        earlier = self.journal.pending()
        if earlier:
            try:
                self.transport.send("POST", f"uploads/{earlier}/cancel", what=f"Cancelling {earlier}")
                self.log.warning("Cancelled Upload %s left pending by an earlier try", earlier)
            except Exception as err:  # already completed, cancelled or expired: nothing pending
                self.log.info("Upload %s of an earlier try is not pending (%s)", earlier, err)
            self.journal.finished()
        self.upload_id = self._create()["id"]
        self.journal.started(str(self.upload_id))
        part_ids, md5 = self._send_parts()
        completed = self._complete(part_ids, md5, started)
        self.journal.finished()
        return completed, part_ids

    def _failed(self, err: BaseException) -> None:
        super()._failed(err)  # cancels the Upload
        self.journal.finished()
