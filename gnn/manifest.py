"""A model version's manifest: every file of ``models/<version>/`` with its size and sha256.

The manifest is the only thing a reader trusts: a version whose manifest is absent or corrupt,
or whose files are missing, truncated, changed or not listed, is refused with a
``VersionError`` that names the version and the file. Version names are single path
components (letters, digits, ``.``, ``_``, ``-``, not starting with a dot), so a name never
points outside the models directory and a temporary directory (``.tmp-<version>``) is never
a version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MANIFEST = "manifest.json"
FORMAT = "graphrec-version/1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class VersionError(ValueError):
    """A model version that cannot be used: bad name, missing/damaged/unlisted file, bad
    manifest or contents. The message names the version and the file."""


def check_name(name: str) -> str:
    """``name`` if it is a valid version name, else ``VersionError``."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise VersionError(
            f"{name!r} is not a version name (letters, digits, '.', '_', '-'; no path "
            "separators, no '..', not starting with a dot)"
        )
    return name


def version_dir(models_dir: Path, name: str) -> Path:
    """``models_dir/name`` for a valid version name (``VersionError`` otherwise)."""
    return models_dir / check_name(name)


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str


Buffer = npt.NDArray[np.uint8]  # a file's bytes, read into memory of the reader's own


def digest(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(directory: Path, version: str) -> dict[str, FileEntry]:
    """List every file of ``directory`` (flat: a version has no subdirectories) in
    ``manifest.json`` with its size and sha256, and sync the directory to disk."""
    entries: dict[str, FileEntry] = {}
    for path in sorted(directory.iterdir()):
        if path.name == MANIFEST:
            continue
        if not path.is_file():
            raise VersionError(f"{version}: {path.name} is not a regular file")
        data = path.read_bytes()
        entries[path.name] = FileEntry(len(data), digest(data))
    manifest = {
        "format": FORMAT,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {name: {"size": e.size, "sha256": e.sha256} for name, e in entries.items()},
    }
    write_file(directory / MANIFEST, json.dumps(manifest, indent=1).encode())
    sync_dir(directory)
    return entries


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` and flush it to disk."""
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VersionFiles:
    """The files of a version, each read once and checked against its manifest: sizes as
    they are read, sha256 digests on a thread pool (hashlib releases the GIL) while the caller
    deserialises what it read.

    ``read(name)`` returns the buffer (a private, writable copy of the file: what is built
    from it is what was hashed, whatever happens to the file) that is being hashed;
    ``verified(name)`` returns it once its digest matched (for parsers that must only see
    checked bytes); ``confirm()`` waits for every digest. Nothing built from ``read`` may be
    used before ``confirm`` returned: any mismatch raises ``VersionError`` there."""

    def __init__(
        self, version: str, contents: dict[str, Future[Buffer]], digests: dict[str, Future[bool]]
    ) -> None:
        self.version = version
        self._contents = contents
        self._digests = digests

    @property
    def names(self) -> frozenset[str]:
        """The files the manifest lists."""
        return frozenset(self._contents)

    def read(self, name: str) -> Buffer:
        if name not in self._contents:
            raise VersionError(f"{self.version}: {name} is not in the manifest")
        return self._contents[name].result()

    def verified(self, name: str) -> Buffer:
        data = self.read(name)
        if not self._digests[name].result():
            raise VersionError(f"{self.version}: {name} does not match its sha256 in manifest.json")
        return data

    def json(self, name: str) -> object:
        try:
            return json.loads(self.read(name).tobytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VersionError(f"{self.version}: {name} is not valid JSON ({exc})") from None

    def confirm(self) -> None:
        """Return once every file was read whole and matched its sha256; ``VersionError``
        naming the first file that did not."""
        for name in sorted(self._contents):
            self.verified(name)


def read_files(directory: Path, required: Iterable[str]) -> VersionFiles:
    """Start reading ``directory``'s files against its manifest (which must list every file in
    ``required``); ``VersionError`` at once for a bad name, a missing or corrupt manifest, or a
    missing, unlisted or resized file, later (``VersionFiles``) for changed bytes."""
    version = check_name(directory.name)
    if not directory.is_dir():
        raise VersionError(f"{version}: no such version directory {directory}")
    listed = _read_manifest(directory, version)
    for name in required:
        if name not in listed:
            raise VersionError(f"{version}: manifest.json does not list {name}")
    present = {p.name for p in directory.iterdir()} - {MANIFEST}
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise VersionError(f"{version}: {unlisted[0]} is not listed in manifest.json")
    for name, entry in listed.items():
        path = directory / name
        if not path.is_file():
            raise VersionError(f"{version}: {name} is missing")
        _check_size(version, name, path.stat().st_size, entry.size)
    # Every read is queued before any digest (a digest job waits for its file's read, which a
    # worker has then started): the smallest files first, the JSON a loader starts with; the
    # digests largest first, as they take longest.
    by_size = sorted(listed.items(), key=lambda item: item[1].size)
    contents = {
        name: _POOL.submit(_read, directory / name, version, entry.size) for name, entry in by_size
    }
    digests = {
        name: _POOL.submit(_matches, contents[name], entry.sha256)
        for name, entry in reversed(by_size)
    }
    return VersionFiles(version, contents, digests)


def verify(directory: Path, required: Iterable[str]) -> VersionFiles:
    """``read_files`` and wait for every digest: the files of ``directory``, all checked."""
    files = read_files(directory, required)
    files.confirm()
    return files


_POOL = ThreadPoolExecutor(
    max_workers=max(2, min(4, os.cpu_count() or 1)), thread_name_prefix="version-sha256"
)


def _read(path: Path, version: str, size: int) -> Buffer:
    """The file's ``size`` bytes, read into a new buffer (one copy from the page cache, no
    zero fill); ``VersionError`` if the file holds fewer or more."""
    buffer = np.empty(size, np.uint8)
    view = buffer.data
    with path.open("rb", buffering=0) as f:
        got = 0
        while got < size:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
        if got == size and f.read(1):  # grown since the manifest was checked
            got = os.fstat(f.fileno()).st_size
    _check_size(version, path.name, got, size)
    return buffer


def _matches(data: Future[Buffer], sha256: str) -> bool:
    try:
        return digest(data.result().data) == sha256
    except VersionError:
        return False  # the read reports it


def _check_size(version: str, name: str, size: int, listed: int) -> None:
    if size != listed:
        raise VersionError(
            f"{version}: {name} is {size} bytes, the manifest says {listed} "
            "(truncated or overwritten)"
        )


def _read_manifest(directory: Path, version: str) -> dict[str, FileEntry]:
    path = directory / MANIFEST
    if not path.is_file():
        older = (directory / "meta.json").exists()
        raise VersionError(
            f"{version}: manifest.json is missing: "
            + ("written by an older graphrec; retrain" if older else "not a complete version")
        )
    try:
        raw = json.loads(path.read_bytes())
        if raw.get("format") != FORMAT:
            raise VersionError(
                f"{version}: manifest.json has format {raw.get('format')!r}, this graphrec "
                f"reads {FORMAT!r}"
            )
        files = {
            check_name(name): FileEntry(int(e["size"]), str(e["sha256"]))
            for name, e in raw["files"].items()
        }
    except VersionError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VersionError(f"{version}: manifest.json is corrupt ({exc!r})") from None
    if MANIFEST in files:
        raise VersionError(f"{version}: manifest.json lists itself")
    return files
