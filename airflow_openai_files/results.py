"""Read the results a job leaves: a batch's output and error files (and their join to the input), and a
fine-tuning job's ``fine-tune-results`` CSV (:class:`ResultsDecoder`).

Locations are what the operators take: a local path, an ``ObjectStoragePath``, or a ``scheme://...``
string (``s3://aws_default@bucket/key``), parsed by the same function as every other location.

Memory:

* :func:`iter_results` holds one line at a time (blocks of 1 MiB are read with ``read(n)``, never
  ``readline(size)``, which some object-store files do not take and which could pull a newline-free
  file whole).
* :func:`join_by_custom_id` indexes the smaller side (input, or output + error) as ``custom_id ->
  (file, byte offset)`` - about 100-150 bytes per line, ~7 MiB for a 50,000-line batch - and streams the
  other side, reading each matching line back by its offset. Nothing else is held.

>>> from airflow_openai_files.results import iter_results, join_by_custom_id
>>> for result in iter_results("/data/out.jsonl"):
...     result["custom_id"], result["response"]["status_code"]
>>> for request, result in join_by_custom_id("in.jsonl", "out.jsonl", "errors.jsonl"):
...     ...  # result is None for a request with no line in either file

Fine-tuning results:
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
import contextlib
import csv
import io
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from airflow_openai_files.transfer.sources import as_local_path, as_location

BLOCK = 1024 * 1024


def _open(location: Any) -> contextlib.AbstractContextManager[IO[bytes]]:
    target = as_location(location)
    local = as_local_path(target)
    if local is not None:
        return open(local, "rb")
    return target.open("rb")


def _size(location: Any) -> int:
    target = as_location(location)
    local = as_local_path(target)
    if local is not None:
        return local.stat().st_size
    return int(target.stat().st_size)


def _name(location: Any) -> str:
    return str(location)


def _raw_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(byte offset, line without its newline)`` for every line, read in blocks."""
    pending = b""
    offset = 0  # offset of ``pending``'s first byte
    while True:
        chunk = stream.read(BLOCK)
        if not chunk:
            if pending:
                yield offset, pending
            return
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            yield offset + start, pending[start:end]
            start = end + 1
        offset += start
        pending = pending[start:]


def _objects(location: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open(location) as stream:
        for number, (offset, raw) in enumerate(_raw_lines(stream), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError as err:
                raise ValueError(f"{_name(location)}, line {number}: not valid JSON ({err})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{_name(location)}, line {number}: expected a JSON object")
            yield offset, obj


def iter_results(location: Any) -> Iterator[dict[str, Any]]:
    """
    Yield each line of a batch output or error file (or of an input file) as a dict, in constant memory.

    An output line looks like ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
    "error": null}``; an error line has ``response`` null or a non-200 status and ``error`` set.

    :param location: a local path, an ObjectStoragePath, or a ``scheme://...`` string.
    :raises ValueError: a line that is not a JSON object (the message names the file and the line).
    """
    for _, obj in _objects(location):
        yield obj


def is_success(result: dict[str, Any] | None) -> bool:
    """True for a result line that carries a 2xx answer."""
    response = (result or {}).get("response") or {}
    return not (result or {}).get("error") and 200 <= int(response.get("status_code") or 0) < 300


def _index(locations: list[Any]) -> dict[str, tuple[int, int]]:
    """``custom_id -> (index into locations, byte offset)``; a later file's line wins (errors over outputs)."""
    index: dict[str, tuple[int, int]] = {}
    for which, location in enumerate(locations):
        for offset, obj in _objects(location):
            index[str(obj.get("custom_id"))] = (which, offset)
    return index


class _LineReader:
    """Reads single lines back by offset, one open handle per file."""

    def __init__(self, locations: list[Any]) -> None:
        self._stack = contextlib.ExitStack()
        self._handles = [self._stack.enter_context(_open(location)) for location in locations]

    def read(self, which: int, offset: int) -> dict[str, Any]:
        handle = self._handles[which]
        handle.seek(offset)
        pending = b""
        while True:
            chunk = handle.read(64 * 1024)
            end = chunk.find(b"\n")
            if end >= 0 or not chunk:
                pending += chunk[:end] if end >= 0 else chunk
                obj: dict[str, Any] = json.loads(pending)
                return obj
            pending += chunk

    def close(self) -> None:
        self._stack.close()


def join_by_custom_id(
    input_location: Any, output_location: Any, error_location: Any = None
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """
    Yield ``(request, result)`` for every line of the batch input, matched by ``custom_id``.

    ``result`` is the output line, or the error line (which wins when a request appears in both), or
    None when neither file has the request. The smaller side (by bytes) is indexed by offset and the
    other streamed (see the module docstring for memory): pairs come in input order when the results
    are the smaller side, else in result order followed by the unanswered requests.
    Result lines whose ``custom_id`` is not in the input are skipped.

    :param input_location: the batch input JSONL.
    :param output_location: the output file, or None when the batch produced none.
    :param error_location: the error file, or None.
    """
    results = [location for location in (output_location, error_location) if location is not None]
    if sum(_size(location) for location in results) <= _size(input_location):
        yield from _join_streaming_input(input_location, results)
    else:
        yield from _join_streaming_results(input_location, results)


def _join_streaming_input(
    input_location: Any, results: list[Any]
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    index = _index(results)
    reader = _LineReader(results)
    try:
        for _, request in _objects(input_location):
            found = index.get(str(request.get("custom_id")))
            yield request, (reader.read(*found) if found is not None else None)
    finally:
        reader.close()


def _join_streaming_results(
    input_location: Any, results: list[Any]
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    index = _index([input_location])
    reader = _LineReader([input_location])
    try:
        # An error line wins over an output line for the same request: remember which were answered by
        # the error file, and skip their output lines.
        errors: set[str] = set()
        if len(results) == 2:
            errors = {str(obj.get("custom_id")) for obj in iter_results(results[1])}
        for which, location in enumerate(results):
            for _, result in _objects(location):
                custom_id = str(result.get("custom_id"))
                if which == 0 and custom_id in errors:
                    continue
                found = index.pop(custom_id, None)
                if found is not None:
                    yield reader.read(*found), result
        for found in sorted(index.values(), key=lambda item: item[1]):
            yield reader.read(*found), None
    finally:
        reader.close()


# --- fine-tuning results ------------------------------------------------------------------------

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
