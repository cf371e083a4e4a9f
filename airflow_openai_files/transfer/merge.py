"""Merging the results of many batches into one output and one error file, in the input's order.

Every result line kept (the shards' outputs, and the error lines that were not sent again) is appended to a
spool file and indexed in the job's SQLite file (:class:`~airflow_openai_files.transfer.shards.CustomIdIndex`,
``custom_id`` -> input line); the destinations are then written in input-line order with one sequential pass
over the index. Memory stays bounded whatever the job's size: a few MB of SQLite page cache and one line.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from airflow_openai_files.transfer.shards import IDS_PER_INSERT, READ_BUFFER, estimate_tokens


def iter_result_lines(path: Path) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """``(raw line, parsed object)`` of a result file, blank lines skipped."""
    with open(path, "rb", buffering=READ_BUFFER) as stream:
        for raw in stream:
            if raw.strip():
                yield (raw if raw.endswith(b"\n") else raw + b"\n"), json.loads(raw)


def usage_of(line: dict[str, Any]) -> tuple[int, int, int]:
    """``(input, output, cached)`` tokens of one output line (chat/completions and responses shapes)."""
    response = line.get("response")
    body = response.get("body") if isinstance(response, dict) else None
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return 0, 0, 0
    given = usage.get("input_tokens", usage.get("prompt_tokens"))
    produced = usage.get("output_tokens", usage.get("completion_tokens"))
    details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    return int(given or 0), int(produced or 0), int(cached or 0)


OUTPUT, ERROR = 0, 1


class ResultMerger:
    """
    Collect result lines from many files, then write one output and one error file in the input's order.

    Uses the job's :class:`CustomIdIndex` file (its ``ids`` table) and two tables of its own; the spool holds
    each kept line's bytes once. A ``custom_id`` answered twice (it cannot be, unless a line was sent again
    after it succeeded) keeps the first answer and is counted in :attr:`duplicates`.
    """

    def __init__(self, index_path: Path, spool: Path) -> None:
        self.db = sqlite3.connect(str(index_path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-8000")
        self.db.execute("DROP TABLE IF EXISTS results")
        self.db.execute(
            "CREATE TABLE results (custom_id TEXT PRIMARY KEY, kind INTEGER, offset INTEGER, length INTEGER)"
        )
        self.spool_path = spool
        self.spool = open(spool, "wb", buffering=READ_BUFFER)  # noqa: SIM115 (closed by write_kind / close)
        self.offset = 0
        self.duplicates = 0
        self.usage = [0, 0, 0]
        self.counts = [0, 0]
        self._pending: list[tuple[str, int, int, int]] = []

    def add_file(self, path: Path, kind: int, skip: Any = None) -> int:
        """Add the lines of a result file; ``skip(obj)`` True drops a line (an error that was sent again)."""
        kept = 0
        for raw, obj in iter_result_lines(path):
            if skip is not None and skip(obj):
                continue
            if kind == OUTPUT:
                for i, value in enumerate(usage_of(obj)):
                    self.usage[i] += value
            self.spool.write(raw)
            self._pending.append((str(obj.get("custom_id")), kind, self.offset, len(raw)))
            self.offset += len(raw)
            kept += 1
            if len(self._pending) >= IDS_PER_INSERT:
                self._flush()
        self._flush()
        return kept

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        before = self.db.total_changes
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR IGNORE INTO results (custom_id, kind, offset, length) VALUES (?, ?, ?, ?)", pending
        )
        self.db.execute("COMMIT")
        self.duplicates += len(pending) - (self.db.total_changes - before)

    def missing(self, limit: int = 5) -> tuple[int, list[str]]:
        """How many input requests have no result line, and the first few of their ``custom_id`` values."""
        query = "FROM ids LEFT JOIN results USING (custom_id) WHERE results.custom_id IS NULL"
        count = int(self.db.execute(f"SELECT COUNT(*) {query}").fetchone()[0])
        some = [row[0] for row in self.db.execute(f"SELECT ids.custom_id {query} ORDER BY ids.line LIMIT ?", (limit,))]
        return count, some

    def write_kind(self, kind: int, target: IO[bytes]) -> int:
        """Write the kept lines of one kind (:data:`OUTPUT` or :data:`ERROR`) in input order; return how many."""
        if not self.spool.closed:
            self.spool.close()
        query = (
            "SELECT results.offset, results.length FROM results JOIN ids USING (custom_id)"
            " WHERE results.kind = ? ORDER BY ids.line"
        )
        written = 0
        with open(self.spool_path, "rb", buffering=READ_BUFFER) as spool:
            for offset, length in self.db.execute(query, (kind,)):
                spool.seek(offset)
                target.write(spool.read(length))
                written += 1
        self.counts[kind] = written
        return written

    def count_only(self, kind: int) -> int:
        """How many kept lines of one kind answer a request of the input (when nothing is written)."""
        query = "SELECT COUNT(*) FROM results JOIN ids USING (custom_id) WHERE results.kind = ?"
        self.counts[kind] = int(self.db.execute(query, (kind,)).fetchone()[0])
        return self.counts[kind]

    def close(self) -> None:
        if not self.spool.closed:
            self.spool.close()
        self.db.close()
        self.spool_path.unlink(missing_ok=True)


def write_subset(source: Path, keep: set[str], target: Path) -> tuple[int, int, int]:
    """Copy the request lines of ``source`` whose ``custom_id`` is in ``keep`` to ``target``; return
    ``(lines, bytes, estimated tokens)``. Used to send failed lines again as a new shard."""
    lines = size = tokens = 0
    with open(source, "rb", buffering=READ_BUFFER) as stream, open(target, "wb") as out:
        for raw in stream:
            if not raw.strip():
                continue
            obj = json.loads(raw)
            if obj.get("custom_id") in keep:
                if not raw.endswith(b"\n"):
                    raw += b"\n"
                out.write(raw)
                lines += 1
                size += len(raw)
                tokens += estimate_tokens(obj.get("body"))
    return lines, size, tokens
