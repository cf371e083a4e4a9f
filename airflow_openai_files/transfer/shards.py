"""Splitting a batch job into shard files, and merging the shards' results into one output and one error file.

Everything is streamed: one input line is in memory at a time. What must be remembered per request (its
``custom_id`` and its line number in the input, to refuse duplicates and to restore the input's order) lives
in a SQLite file in the job's working folder, not in the worker's memory: a million ids would cost a Python
set ~100 MB; on disk they cost a few MB of page cache.

**Shards.** Lines are cut into consecutive shards on line boundaries, each a valid batch input: at most
``max_lines`` requests (50,000), ``max_bytes`` bytes (200 MB) and, when given, ``max_tokens`` estimated
tokens (the enqueued-token budget), whichever comes first. Shard *i* holds input lines
``first_line .. first_line + lines - 1`` in order.

**Token estimate** (:func:`estimate_tokens`), per request, before anything is sent: for every string in the
request's input fields (``messages`` - roles, names and contents -, ``input``, ``prompt``, ``instructions``,
``tools``), the larger of its number of whitespace-separated words and ``ceil(UTF-8 bytes / 4)`` (OpenAI's
rule of thumb of about four characters per token), plus 4 per chat message (the format's own tokens), at
least 1 per request. It overestimates on purpose: a shard admitted under ``max_enqueued_tokens`` must not be
refused by the service. Output tokens are not counted: the service's limit is on enqueued input tokens.

**Merge** (:mod:`airflow_openai_files.transfer.merge`): every result line kept (the shards' outputs, and the
error lines that were not sent again) is appended to a spool file and indexed by its input line number; the
output and error destinations are then written in the input's order. So line *n* of the merged output answers the *n*-th
answered request of the input, and the original line of any result is its rank; ``custom_id`` keys every line.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from airflow_openai_files import limits
from airflow_openai_files.exceptions import OpenAIFilesValidationError
from airflow_openai_files.validation.batches import _batch_line_rule, check_batch_endpoint

#: Fields of a request body whose strings are the model's input (what the enqueued-token limit counts).
INPUT_FIELDS = ("messages", "input", "prompt", "instructions", "tools")
#: Tokens a chat message costs beyond its strings (role markers and separators), rounded up.
MESSAGE_OVERHEAD_TOKENS = 4
IDS_PER_INSERT = 5000
READ_BUFFER = 1024 * 1024


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def estimate_tokens(body: Any) -> int:
    """A deliberately high estimate of the input tokens one request enqueues (see the module's docstring)."""
    if not isinstance(body, dict):
        return 1
    tokens = 0
    for name in INPUT_FIELDS:
        value = body.get(name)
        for text in _strings(value):
            tokens += max(len(text.split()), math.ceil(len(text.encode("utf-8", "surrogatepass")) / 4))
        if name == "messages" and isinstance(value, list):
            tokens += MESSAGE_OVERHEAD_TOKENS * len(value)
    return max(1, tokens)


@dataclass(frozen=True)
class ShardLimits:
    """How big one shard may be; the defaults are the service's per-batch limits."""

    max_lines: int = limits.BATCH_MAX_LINES
    max_bytes: int = limits.BATCH_FILE_MAX_BYTES
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_lines <= limits.BATCH_MAX_LINES:
            raise OpenAIFilesValidationError(
                f"max lines per batch must be from 1 to {limits.BATCH_MAX_LINES:,}, got {self.max_lines!r}"
            )
        if not 1 <= self.max_bytes <= limits.BATCH_FILE_MAX_BYTES:
            raise OpenAIFilesValidationError(
                f"max bytes per batch must be from 1 to {limits.BATCH_FILE_MAX_BYTES:,}, got {self.max_bytes!r}"
            )
        if self.max_tokens is not None and self.max_tokens < 1:
            raise OpenAIFilesValidationError(f"the token budget must be at least 1, got {self.max_tokens!r}")


@dataclass
class ShardFile:
    """One shard of the input as written to the working folder."""

    index: int
    path: Path
    first_line: int
    lines: int = 0
    bytes: int = 0
    tokens: int = 0
    sha256: str = ""

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


@dataclass
class SplitResult:
    """What splitting learnt: the shards in order, and the job's totals."""

    shards: list[ShardFile] = field(default_factory=list)
    lines: int = 0
    bytes: int = 0
    tokens: int = 0
    model: str | None = None
    sha256: str = ""

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the input across tries: a retry given other content must not resume this job."""
        return {"lines": self.lines, "bytes": self.bytes, "sha256": self.sha256}


class CustomIdIndex:
    """``custom_id`` -> input line number, in a SQLite file: refuses duplicates, orders merged results."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-8000")  # 8 MB of page cache at most
        self.db.execute("CREATE TABLE IF NOT EXISTS ids (custom_id TEXT PRIMARY KEY, line INTEGER NOT NULL)")
        self._pending: list[tuple[str, int]] = []

    def add(self, custom_id: str, line: int, name: str) -> None:
        self._pending.append((custom_id, line))
        if len(self._pending) >= IDS_PER_INSERT:
            self.flush(name)

    def flush(self, name: str) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        before = self.db.total_changes
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR IGNORE INTO ids (custom_id, line) VALUES (?, ?)", pending)
        self.db.execute("COMMIT")
        if self.db.total_changes - before == len(pending):
            return
        seen: dict[str, int] = {}
        for custom_id, line in pending:
            first = seen.get(custom_id)
            if first is None:
                row = self.db.execute("SELECT line FROM ids WHERE custom_id = ?", (custom_id,)).fetchone()
                first = row[0] if row is not None and row[0] != line else None
            if first is not None and first != line:
                raise OpenAIFilesValidationError(
                    f"{name}, line {line}: 'custom_id' must be unique across the job: {custom_id!r} was first "
                    f"used on line {first}; nothing was sent"
                )
            seen[custom_id] = line

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM ids").fetchone()[0])

    def close(self) -> None:
        self.db.close()


def shard_name(prefix: str, key: str) -> str:
    """The filename a shard is uploaded under: stable across tries, so a retry finds its upload again."""
    return f"{prefix}-shard-{key}.jsonl"


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Each line of ``stream`` with its newline (the last one may lack it), read in blocks of ``READ_BUFFER``.

    Not ``for line in stream``: Airflow 3.1 wraps an ``ObjectStoragePath``'s file in an object without
    ``__iter__``, so Python falls back to ``__getitem__``, which the wrapped S3 file does not have.
    """
    pending = b""
    while chunk := stream.read(READ_BUFFER):
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
    if pending:
        yield pending


def split_input(
    stream: IO[bytes],
    endpoint: str,
    work_dir: Path,
    shard_limits: ShardLimits,
    *,
    name: str = "batch input",
    index: CustomIdIndex | None = None,
) -> SplitResult:
    """
    Check every line and cut the input into shard files ``work_dir/shard-<i>.jsonl``; refuse a bad input.

    Every line is checked as :func:`~airflow_openai_files.validation.check_batch_file` checks one batch file
    (a JSON object, a non-empty string ``custom_id``, ``POST``, ``url`` equal to ``endpoint``, one ``model``,
    no streaming), and ``custom_id`` values are unique across the whole job (``index``); nothing is uploaded
    before the whole input has passed. Blank lines are dropped; the bytes of each line are kept as they are.

    :raises OpenAIFilesValidationError: ``"<name>, line 7: ..."``, or a line that alone breaks a shard limit.
    """
    check_batch_endpoint(endpoint)
    work_dir.mkdir(parents=True, exist_ok=True)
    result = SplitResult()
    digest = hashlib.sha256()
    model: tuple[str, int] | None = None
    current: ShardFile | None = None
    handle: IO[bytes] | None = None
    shard_digest = hashlib.sha256()
    own_index = index is None
    ids = index if index is not None else CustomIdIndex(work_dir / "ids.sqlite")

    def refuse(line: int, rule: str) -> OpenAIFilesValidationError:
        return OpenAIFilesValidationError(f"{name}, line {line}: {rule}")

    def close_shard() -> None:
        nonlocal handle, current
        if handle is not None and current is not None:
            handle.close()
            current.sha256 = shard_digest.hexdigest()
            result.shards.append(current)
        handle, current = None, None

    try:
        for number, raw in enumerate(_lines(stream), start=1):
            digest.update(raw)
            result.bytes += len(raw)
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            if not raw.endswith(b"\n"):
                raw += b"\n"
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                raise refuse(number, f"not valid JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise refuse(number, f"expected a JSON object, got {type(obj).__name__}")
            rule = _batch_line_rule(obj, endpoint, {}, model)
            if rule:
                raise refuse(number, rule)
            if model is None:
                model = (obj["body"]["model"], number)
            ids.add(obj["custom_id"], number, name)
            tokens = estimate_tokens(obj["body"])
            size = len(raw)
            if size > shard_limits.max_bytes:
                raise refuse(number, f"a line of {size:,} bytes cannot fit in a batch of {shard_limits.max_bytes:,}")
            if shard_limits.max_tokens is not None and tokens > shard_limits.max_tokens:
                raise refuse(
                    number,
                    f"a request estimated at {tokens:,} tokens cannot fit under the budget of "
                    f"{shard_limits.max_tokens:,} enqueued tokens",
                )
            if current is not None and (
                current.lines + 1 > shard_limits.max_lines
                or current.bytes + size > shard_limits.max_bytes
                or (shard_limits.max_tokens is not None and current.tokens + tokens > shard_limits.max_tokens)
            ):
                close_shard()
            if current is None:
                index_no = len(result.shards)
                current = ShardFile(index_no, work_dir / f"shard-{index_no}.jsonl", first_line=result.lines)
                handle = open(current.path, "wb", buffering=READ_BUFFER)  # noqa: SIM115 (closed by close_shard)
                shard_digest = hashlib.sha256()
            assert handle is not None
            handle.write(raw)
            shard_digest.update(raw)
            current.lines += 1
            current.bytes += size
            current.tokens += tokens
            result.lines += 1
            result.tokens += tokens
        ids.flush(name)
        close_shard()
    except BaseException:
        if handle is not None:
            handle.close()
        raise
    finally:
        if own_index:
            ids.close()
    if result.lines == 0:
        raise OpenAIFilesValidationError(f"{name}: the file holds no requests")
    result.model = model[0] if model else None
    result.sha256 = digest.hexdigest()
    return result


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(READ_BUFFER):
            digest.update(block)
    return digest.hexdigest()
