"""Reading a job's ``fine-tune-results`` file as a stream: the CSV's last row, with or without base64.

The service describes the results file as a CSV (``step,train_loss,train_accuracy,valid_loss,...``),
but users of the real API have long reported that ``GET /files/{id}/content`` for these files
answers the CSV **base64-encoded** (community.openai.com threads on "result file base64", and the
cookbook decodes it with ``base64.b64decode``); other OpenAI-shaped services answer plain CSV. So the
decoder looks at the first bytes: a CSV header has a comma and letters only from the header's
alphabet; anything made of base64 characters only is decoded on the fly. Either way the caller gets
the plain CSV bytes, in constant memory, and the last row as a dict.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from typing import Any

_B64_ONLY = re.compile(rb"^[A-Za-z0-9+/=\s]+$")
_WHITESPACE = re.compile(rb"\s+")
_SNIFF_BYTES = 64


class ResultsDecoder:
    """Feed raw content chunks; get plain CSV bytes back; ``header`` and ``last_row`` as you go."""

    def __init__(self) -> None:
        self.encoding: str | None = None  # "csv" or "base64" once decided
        self._sniff = b""
        self._b64_pending = b""
        self._line_pending = b""
        self.header: list[str] | None = None
        self.last_line: bytes | None = None
        self.rows = 0

    def feed(self, chunk: bytes) -> bytes:
        if self.encoding is None:
            self._sniff += chunk
            if len(self._sniff) < _SNIFF_BYTES:
                return b""
            chunk, self._sniff = self._sniff, b""
            self.encoding = _guess(chunk)
        return self._plain(chunk)

    def finish(self) -> bytes:
        out = b""
        if self.encoding is None:
            chunk, self._sniff = self._sniff, b""
            self.encoding = _guess(chunk)
            out = self._plain(chunk)
        if self.encoding == "base64" and self._b64_pending:
            out += self._decode(self._b64_pending, final=True)
            self._b64_pending = b""
        if self._line_pending:
            self._take_line(self._line_pending)
            self._line_pending = b""
        return out

    def _plain(self, chunk: bytes) -> bytes:
        if self.encoding == "base64":
            data = self._b64_pending + _WHITESPACE.sub(b"", chunk)
            whole = len(data) - len(data) % 4
            self._b64_pending = data[whole:]
            chunk = self._decode(data[:whole], final=False)
        self._lines(chunk)
        return chunk

    def _decode(self, data: bytes, *, final: bool) -> bytes:
        try:
            plain = base64.b64decode(data, validate=True)
        except binascii.Error as err:
            raise ValueError(f"results file looked base64-encoded but is not: {err}") from None
        if final:
            self._lines(plain)
        return plain

    def _lines(self, chunk: bytes) -> None:
        data = self._line_pending + chunk
        *complete, self._line_pending = data.split(b"\n")
        for line in complete:
            self._take_line(line)

    def _take_line(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if not line.strip():
            return
        if self.header is None:
            self.header = next(csv.reader([line.decode("utf-8", errors="replace")]))
            return
        self.last_line = line
        self.rows += 1

    def metrics(self) -> dict[str, Any]:
        """The last row as ``{column: number or None or text}``; empty when the file has no rows."""
        if self.header is None or self.last_line is None:
            return {}
        values = next(csv.reader(io.StringIO(self.last_line.decode("utf-8", errors="replace"))))
        return {name.strip(): _number(value) for name, value in zip(self.header, values, strict=False)}


def _guess(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf")
    if b"," in text or not text.strip() or not _B64_ONLY.match(text):
        return "csv"
    return "base64"


def _number(value: str) -> Any:
    text = value.strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
