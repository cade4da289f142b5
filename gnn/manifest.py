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
from dataclasses import dataclass
from pathlib import Path

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


def digest(data: bytes) -> str:
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


class VerifiedFiles:
    """The files of a version whose manifest checked out: ``read(name)`` returns the bytes
    that were hashed (each file is read once, so what is loaded is what was verified)."""

    def __init__(self, version: str, contents: dict[str, bytes]) -> None:
        self.version = version
        self._contents = contents

    def read(self, name: str) -> bytes:
        if name not in self._contents:
            raise VersionError(f"{self.version}: {name} is not in the manifest")
        return self._contents[name]

    def json(self, name: str) -> object:
        try:
            return json.loads(self.read(name))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VersionError(f"{self.version}: {name} is not valid JSON ({exc})") from None


def verify(directory: Path, required: Iterable[str]) -> VerifiedFiles:
    """Check ``directory`` against its manifest (which must list every file in ``required``)
    and return its files' verified contents; ``VersionError`` for anything amiss."""
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
    contents = {}
    for name, entry in listed.items():
        path = directory / name
        if not path.is_file():
            raise VersionError(f"{version}: {name} is missing")
        data = path.read_bytes()
        if len(data) != entry.size:
            raise VersionError(
                f"{version}: {name} is {len(data)} bytes, the manifest says {entry.size} "
                "(truncated or overwritten)"
            )
        if digest(data) != entry.sha256:
            raise VersionError(f"{version}: {name} does not match its sha256 in manifest.json")
        contents[name] = data
    return VerifiedFiles(version, contents)


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
