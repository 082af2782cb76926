"""The audio of segments said before, kept on disk so that a repeated answer starts in milliseconds.

Home Assistant repeats itself ("Turned on the kitchen light") and, since it streams every answer it can, its
own TTS cache no longer keeps them; without this each repeat is a full synthesis. One entry is the whole
audio of one segment (a plain request's text, or one sentence of a stream), float32 at 24 kHz exactly as
the engine made it, so a hit is the same audio as the miss that stored it, resampled and cut into chunks by
the responder like any answer.

The key (`segment_key`) is a hash of everything that decides the audio: the engine's `audio_identity` (the
model files, the precision, the step setting), the voice's `voice_digest` (its clip's bytes, transcript and
synthesis options: speed, steps, seed policy), and the segment's text as the worker receives it (after the
text front end). Nothing a client sends becomes a path: file names are the key's hex digest.

This module owns the entry file format: a header (`MAGIC`, the key, the voice digest, the sample count, a
CRC-32 of the samples) and the samples. A file that is truncated, corrupt or of another format is a miss,
logged and replaced. Writes go to a temporary file renamed into place, so a crash mid-write leaves no half
entry under a real name (and a temporary file left by a dead process is removed at start-up).

Bounded by bytes, least recently used first out; a hit touches its file's modification time so the order
survives a restart. `retain` drops the entries of voices that are gone or were edited. Used from the
worker's cache thread; `stats` from any thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..voices.cache import process_exists
from ..voices.folder import VoiceInfo

_LOGGER = logging.getLogger(__name__)

FORMAT = 1
"""Of the entry files and their keys: a change of either can never read an old file."""
MAGIC = b"ISTTSAC" + bytes([FORMAT])
SUFFIX = ".pcm"
_HEADER = struct.Struct("<8s32s32sQI")
"""MAGIC, key digest, voice digest, sample count, CRC-32 of the samples."""
MAX_ENTRY_SHARE = 8
"""An entry may take at most this fraction (1/N) of the cache: one long text cannot flush every phrase."""


def cache_folder(cache_dir: Path) -> Path:
    """Where the entries are kept: beside the prepared voices (``CACHE/voices``), in ``CACHE/audio``."""
    return cache_dir / "audio"


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def voice_digest(audio_bytes: bytes, info: VoiceInfo) -> str:
    """What of a voice decides its audio: the clip's bytes, its transcript, its synthesis options and how
    much of the clip it keeps. An edited voice (clip, transcript, speed, seed, max_reference_seconds...)
    gets another digest, so its old entries are never read."""
    options = repr(sorted(dict(info.options).items()))
    if info.max_reference_seconds is not None:  # only when set: other voices' entries stay valid
        options += f" max_reference_seconds={info.max_reference_seconds!r}"
    return _digest(b"voice", audio_bytes, info.transcript.encode(), options.encode())


def segment_key(audio_identity: str, voice: str, text: str) -> str:
    """The entry key of `text` said by the voice with digest `voice` on an engine with `audio_identity`."""
    tag = f"wyoming-ishowtts segment audio v{FORMAT}"
    return _digest(tag.encode(), audio_identity.encode(), voice.encode(), text.encode("utf-8"))


class VoiceDigests:
    """`voice_digest` of each voice, read again only when its clip file changes (size, modification time):
    the cache asks for it on every segment and on every registry scan."""

    def __init__(self) -> None:
        self._known: dict[tuple[Path, str, str], tuple[tuple[int, int], str]] = {}

    def get(self, info: VoiceInfo) -> str | None:
        """None when the clip cannot be read (a built-in clip not downloaded yet): then nothing is cached."""
        path = info.reference_audio
        memo = (path, info.transcript, repr(sorted(dict(info.options).items())))
        try:
            stat = path.stat()
            seen = (stat.st_size, stat.st_mtime_ns)
            known = self._known.get(memo)
            if known is not None and known[0] == seen:
                return known[1]
            digest = voice_digest(path.read_bytes(), info)
        except OSError:
            return None
        if len(self._known) > 256:  # voices come and go; forget them all rather than grow
            self._known.clear()
        self._known[memo] = (seen, digest)
        return digest


@dataclass(frozen=True)
class _Entry:
    size: int
    voice: str


class AudioCache:
    """Segment audio on disk under `folder`, at most `max_bytes` of files."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.folder = folder
        self.max_bytes = max_bytes
        self._index: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._lock = threading.Lock()  # for `stats` from other threads
        self.hits = 0
        self.misses = 0

    # -- start-up ----------------------------------------------------------------------------------

    def load(self) -> None:
        """Index the entries a previous run left (oldest use first), remove half-written files of dead
        writers, and evict down to the bound (it may have been lowered)."""
        if not self.folder.is_dir():
            return
        found: list[tuple[int, str, _Entry]] = []
        for path in self.folder.iterdir():
            name = path.name
            if name.startswith(".") and name.endswith(".tmp"):
                self._remove_stale(path)
                continue
            if not name.endswith(SUFFIX):
                continue
            key = name[: -len(SUFFIX)]
            try:
                with path.open("rb") as file:
                    header = file.read(_HEADER.size)
                stat = path.stat()
                magic, key_bytes, voice, _, _ = _HEADER.unpack(header)
                if magic != MAGIC or key_bytes.hex() != key:
                    raise ValueError("not an entry of this format")
            except (OSError, ValueError, struct.error) as err:
                _LOGGER.warning("Removing unusable audio cache file %s: %s", name, err)
                path.unlink(missing_ok=True)
                continue
            found.append((stat.st_mtime_ns, key, _Entry(stat.st_size, voice.hex())))
        with self._lock:
            for _, key, entry in sorted(found):
                self._index[key] = entry
                self._bytes += entry.size
        self._evict()
        _LOGGER.info(
            "Audio cache: %d entries, %.1f of %.1f MB in %s",
            len(self._index),
            self._bytes / 1e6,
            self.max_bytes / 1e6,
            self.folder,
        )

    def _remove_stale(self, path: Path) -> None:
        """A temporary file is ``.KEY.PID.UUID.tmp``: stale when its writer is gone, or is this process (a
        container restarted with the same pid)."""
        parts = path.name.split(".")
        try:
            pid = int(parts[2])
        except (IndexError, ValueError):
            pid = -1
        if pid > 0 and pid != os.getpid() and process_exists(pid):
            return  # another server sharing this folder is writing it now
        _LOGGER.info("Removing a half-written audio cache file %s", path.name)
        path.unlink(missing_ok=True)

    # -- entries -----------------------------------------------------------------------------------

    def fits(self, samples: int) -> bool:
        """Whether an entry of this many samples may be stored (`MAX_ENTRY_SHARE`)."""
        return _HEADER.size + 4 * samples <= self.max_bytes // MAX_ENTRY_SHARE

    def get(self, key: str) -> np.ndarray | None:
        """The audio stored under `key`, or None (a miss). An unreadable entry is logged, removed, a miss."""
        path = self._path(key)
        with self._lock:
            known = key in self._index
        audio: np.ndarray | None = None
        voice = ""
        if known or path.is_file():  # not indexed: stored by another server sharing the folder
            try:
                audio, voice = _read(path, key)
            except (OSError, ValueError) as err:
                _LOGGER.warning(
                    "Audio cache entry %s is unusable (%s): synthesizing it again", path.name, err
                )
                self._drop(key)
        with self._lock:
            if audio is None:
                self.misses += 1
                return None
            self.hits += 1
            if key not in self._index:
                size = _HEADER.size + 4 * len(audio)
                self._index[key] = _Entry(size, voice)
                self._bytes += size
            self._index.move_to_end(key)
        with contextlib.suppress(OSError):
            os.utime(path)  # the order of use survives a restart
        return audio

    def put(self, key: str, voice: str, audio: np.ndarray) -> bool:
        """Store `audio` (float32, 24 kHz) under `key` atomically; False when it is too long to keep or
        could not be written (logged: the answer was sent anyway)."""
        samples = np.ascontiguousarray(audio, dtype="<f4").reshape(-1)
        if not self.fits(len(samples)):
            return False
        data = samples.tobytes()
        header = _HEADER.pack(MAGIC, bytes.fromhex(key), bytes.fromhex(voice), len(samples), zlib.crc32(data))
        path = self._path(key)
        tmp = path.with_name(f".{key}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as file:
                file.write(header)
                file.write(data)
            os.replace(tmp, path)
        except OSError as err:
            _LOGGER.warning("Could not store audio cache entry %s: %s", path.name, err)
            tmp.unlink(missing_ok=True)
            return False
        with self._lock:
            old = self._index.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._index[key] = _Entry(len(header) + len(data), voice)
            self._bytes += len(header) + len(data)
        self._evict()
        return True

    def retain(self, voices: Iterable[str]) -> int:
        """Drop the entries of every voice whose digest is not in `voices` (deleted or edited voices); how
        many were dropped."""
        keep = set(voices)
        with self._lock:
            gone = [key for key, entry in self._index.items() if entry.voice not in keep]
        for key in gone:
            self._drop(key)
        if gone:
            _LOGGER.info("Audio cache: dropped %d entries of voices removed or changed", len(gone))
        return len(gone)

    def stats(self) -> Mapping[str, Any]:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "entries": len(self._index),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
            }

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError("an audio cache key is a sha256 hex digest")
        return self.folder / f"{key}{SUFFIX}"

    def _drop(self, key: str) -> None:
        with self._lock:
            entry = self._index.pop(key, None)
            if entry is not None:
                self._bytes -= entry.size
        self._path(key).unlink(missing_ok=True)

    def _evict(self) -> None:
        while True:
            with self._lock:
                if self._bytes <= self.max_bytes or not self._index:
                    return
                key = next(iter(self._index))
            _LOGGER.debug("Audio cache: evicting %s", key[:12])
            self._drop(key)


def _read(path: Path, key: str) -> tuple[np.ndarray, str]:
    """The samples of an entry and its voice digest; ValueError when the file is truncated, corrupt or not
    this entry."""
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        raise ValueError("truncated header")
    magic, key_bytes, voice, count, crc = _HEADER.unpack_from(data)
    if magic != MAGIC or key_bytes.hex() != key:
        raise ValueError("not an entry of this format")
    body = memoryview(data)[_HEADER.size :]
    if len(body) != 4 * count:
        raise ValueError(f"{len(body)} bytes of samples, the header says {4 * count}")
    if zlib.crc32(body) != crc:
        raise ValueError("checksum mismatch")
    if count == 0:
        raise ValueError("no samples")
    return np.frombuffer(body, dtype="<f4").astype(np.float32), voice.hex()
