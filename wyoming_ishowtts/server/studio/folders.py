"""Voice folders the studio writes: created, edited and deleted so no reader sees half a voice.

A new voice is written into a hidden folder beside its final place (the registry skips names that
start with '.') and renamed into place in one step; an edit replaces each file by rename; a delete
renames the folder away before removing it.  Folders are found by listing the voices folder and
comparing names, so a name from a client is only ever a key, never part of a path.

Everything here is blocking file I/O: the app runs it in a thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import BAD_SETTINGS, BAD_VOICE_TOML, NAME_TAKEN, StudioError
from ...voices.folder import REFERENCE_AUDIO, REFERENCE_TEXT, VOICE_TOML, parse_voice_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

_LOGGER = logging.getLogger(__name__)

NEW_PREFIX = ".studio-new-"
GONE_PREFIX = ".studio-deleted-"
STALE_SECONDS = 3600.0


class VoiceFolders:
    """The voices folder the studio manages (the first ``--voices-dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def remove_leftovers(self) -> None:
        """Delete hidden folders an interrupted save or delete left behind (older than an hour,
        so a second server writing into the same folder right now is left alone)."""
        if not self.root.is_dir():
            return
        now = time.time()
        for entry in self.root.iterdir():
            if entry.name.startswith((NEW_PREFIX, GONE_PREFIX)) and entry.is_dir():
                try:
                    if now - entry.stat().st_mtime > STALE_SECONDS:
                        _LOGGER.info("Removing %s, left by an interrupted save or delete", entry)
                        shutil.rmtree(entry, ignore_errors=True)
                except OSError:
                    continue

    def find(self, name: str) -> Path | None:
        """The folder whose name is exactly ``name``, found by listing (never by joining paths)."""
        if not self.root.is_dir():
            return None
        for entry in self.root.iterdir():
            if entry.name == name and not entry.name.startswith(".") and entry.is_dir():
                return entry
        return None

    def names(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {entry.name for entry in self.root.iterdir() if not entry.name.startswith(".")}

    def create(
        self,
        slug: str,
        wav: bytes,
        transcript: str,
        description: str | None,
        languages: tuple[str, ...] | None,
        options: Mapping[str, Any],
    ) -> Path:
        """Write a new voice folder ``slug``; refuse if any entry of that name exists."""
        self.root.mkdir(parents=True, exist_ok=True)
        if any(existing.casefold() == slug.casefold() for existing in self.names()):
            raise _collision(slug)
        staging = self.root / f"{NEW_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            _write(staging / REFERENCE_AUDIO, wav)
            _write(staging / REFERENCE_TEXT, (transcript + "\n").encode("utf-8"))
            toml: dict[str, Any] = {}
            if description:
                toml["description"] = description
            if languages:
                toml["languages"] = list(languages)
            toml.update(options)
            if toml:
                _write(staging / VOICE_TOML, dump_toml(toml).encode("utf-8"))
                parse_voice_toml(staging / VOICE_TOML)  # the server must be able to read what it wrote
            _fsync_dir(staging)
            target = self.root / slug  # slug comes from forms.slugify: letters, digits and '-'
            if target.exists():
                raise _collision(slug)
            try:
                os.rename(staging, target)
            except OSError as err:  # a folder of that name appeared meanwhile
                raise _collision(slug) from err
            _fsync_dir(self.root)
            return target
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def update(
        self,
        folder: Path,
        transcript: str | None,
        toml_changes: Mapping[str, Any | None],
    ) -> None:
        """Replace reference.txt and/or voice.toml; ``None`` in ``toml_changes`` removes a key.

        voice.toml keeps every setting the studio does not manage (nfe, seed, ...).  The new file
        is read back with the server's own parser before it replaces the old one.
        """
        if toml_changes:
            path = folder / VOICE_TOML
            data: dict[str, Any] = {}
            if path.is_file():
                try:
                    data = tomllib.loads(path.read_text(encoding="utf-8"))
                except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                    raise StudioError(
                        BAD_VOICE_TOML,
                        f"{VOICE_TOML} of this voice cannot be read ({err}); fix it by hand.",
                    ) from None
            options = data.get("options")
            for key, value in toml_changes.items():
                # [options] wins over a top-level shorthand when the server reads the file.
                target = options if isinstance(options, dict) and key in options else data
                if key == "languages":
                    data.pop("language", None)
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
            text = dump_toml(data)
            tmp = folder / f".{VOICE_TOML}.{uuid.uuid4().hex}.tmp"
            try:
                _write(tmp, text.encode("utf-8"))
                try:
                    parse_voice_toml(tmp)
                except ValueError as err:
                    raise StudioError(BAD_SETTINGS, f"These settings are not valid: {err}") from None
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        if transcript is not None:
            tmp = folder / f".{REFERENCE_TEXT}.{uuid.uuid4().hex}.tmp"
            try:
                _write(tmp, (transcript + "\n").encode("utf-8"))
                os.replace(tmp, folder / REFERENCE_TEXT)
            finally:
                tmp.unlink(missing_ok=True)
        _fsync_dir(folder)

    def delete(self, folder: Path) -> None:
        """Rename the folder to a hidden name (the voice disappears at once), then remove it."""
        gone = self.root / f"{GONE_PREFIX}{uuid.uuid4().hex}"
        os.rename(folder, gone)
        _fsync_dir(self.root)
        shutil.rmtree(gone, ignore_errors=True)


def _collision(slug: str) -> StudioError:
    return StudioError(
        NAME_TAKEN,
        f"A voice named '{slug}' already exists. Choose another name, or delete that voice first.",
    )


def _write(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- a writer for the small TOML files a voice has -------------------------------------------------


def dump_toml(data: Mapping[str, Any]) -> str:
    """Top-level keys, then one level of tables; values: text, numbers, booleans, lists of those.

    Anything else (a hand-written nested table, a date) is refused rather than rewritten wrongly.
    """
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for name, table in tables:
        lines.append("")
        lines.append(f"[{_key(name)}]")
        for key, value in table.items():
            if isinstance(value, Mapping):
                raise StudioError(
                    BAD_VOICE_TOML,
                    f"{VOICE_TOML} has nested tables the studio cannot rewrite; edit it by hand.",
                )
            lines.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(key: str) -> str:
    if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
        return key
    return _string(key)


def _string(text: str) -> str:
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise StudioError(BAD_SETTINGS, "Settings must be finite numbers.")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise StudioError(
        BAD_VOICE_TOML,
        f"{VOICE_TOML} has a value the studio cannot rewrite ({type(value).__name__}); edit it by hand.",
    )
