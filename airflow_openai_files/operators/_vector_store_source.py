"""The source of a vector store sync: every file of a folder, an ObjectStoragePath prefix or a list of paths,
with its path relative to the source (the key recorded in the store) and its SHA-256 (streamed, one read)."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from airflow_openai_files.exceptions import OpenAIFilesValidationError

#: Hex digits of the content hash in an uploaded file's name.
TAG_DIGITS = 16
#: An uploaded file's name: the hash prefix, then the source file's name.
TAGGED = re.compile(r"^[0-9a-f]{16}_(.+)$")
_READ_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """One file of the source: its path relative to the source (the record's key), location, size and hash."""

    path: str
    location: Any
    size: int
    sha256: str

    @property
    def upload_name(self) -> str:
        """``<hash prefix>_<name>``: what a retry looks for among the files a killed try uploaded."""
        return f"{self.sha256[:TAG_DIGITS]}_{PurePosixPath(self.path).name}"


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over POSIX relative paths: ``**`` any number of directories, ``*`` and ``?`` within one."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def check_globs(value: str | Sequence[str] | None) -> list[re.Pattern[str]]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) and item for item in items):
        raise OpenAIFilesValidationError(f"include / exclude must be glob strings, got {value!r}")
    return [glob_regex(item) for item in items]


def _hash(location: Any) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with location.open("rb") as stream:
        while block := stream.read(_READ_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _walk(root: Any) -> Iterator[tuple[str, Any]]:
    """``(relative posix path, location)`` of every regular file under a folder or an ObjectStoragePath prefix."""
    from airflow_openai_files.transfer.sources import as_local_path

    local = as_local_path(root)
    if local is not None:
        if not local.is_dir():
            raise OpenAIFilesValidationError(f"Source folder {str(local)!r} does not exist or is not a folder")
        for path in sorted(local.rglob("*")):
            if path.is_file():
                yield path.relative_to(local).as_posix(), path
        return
    base = str(root.path).rstrip("/")
    # fsspec caches listings (and s3fs the ETags it then reads by): a sync must see the store as it is now.
    with contextlib.suppress(Exception):
        root.fs.invalidate_cache()
    found = False
    for path in sorted(root.rglob("*"), key=str):
        if path.is_file():
            found = True
            yield str(path.path)[len(base) :].lstrip("/"), path
    if not found and not root.exists():
        raise OpenAIFilesValidationError(f"Source prefix {root} does not exist")


def scan_source(source: Any, include: Any = "**/*", exclude: Any = None) -> list[SourceFile]:
    """Every file of ``source`` that ``include`` and not ``exclude`` select, hashed (streamed, one read each)."""
    from airflow_openai_files.transfer.sources import as_local_path, as_location

    includes, excludes = check_globs(include), check_globs(exclude)
    if isinstance(source, (list, tuple)):
        pairs = []
        for item in source:
            location = as_location(item)
            local = as_local_path(location)
            location = local if local is not None else location
            if local is not None and not local.is_file():
                raise OpenAIFilesValidationError(f"Source file {str(local)!r} does not exist or is not a file")
            pairs.append((PurePosixPath(str(getattr(location, "path", location))).name, location))
        names = [name for name, _ in pairs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise OpenAIFilesValidationError(f"Source files share a name (the record's key): {duplicates[:5]}")
    else:
        pairs = list(_walk(as_location(source)))
    files = []
    for path, location in pairs:
        if includes and not any(p.match(path) for p in includes):
            continue
        if any(p.match(path) for p in excludes):
            continue
        size, digest = _hash(location)
        files.append(SourceFile(path, location, size, digest))
    return files
