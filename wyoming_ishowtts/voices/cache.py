"""Prepared voices, each prepared once: kept in memory and on disk, keyed by content.

This module owns the cache's one file format: a prepared clip (`PreparedClip`: the trimmed, normalized,
resampled clip and its loudness; not the mel, which depends on the device and is cheap to recompute),
saved with ``torch.save`` and read back with ``weights_only`` so a cache file can never run code. `FORMAT`
versions both the file and the key, so a change of either can never read an old file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

import torch

from ..engine.reference import load_audio
from ..engine.voice import PreparedClip, Voice, prepare_clip
from ..errors import ReferenceAudioError, VoiceUnavailableError
from .builtin import fetch_builtin_voice
from .folder import VoiceInfo

_LOGGER = logging.getLogger(__name__)

FORMAT = 3
"""Of the cache files and their keys (2 and v1 before they had one owner)."""


class VoiceEngine(Protocol):
    """What preparing a voice needs from the engine (`Engine` has it): its identity, part of the cache key,
    and `voice`, a prepared clip's mel on the engine's device."""

    @property
    def identity(self) -> str: ...

    def voice(self, clip: PreparedClip) -> Voice: ...


def prepared_voice_key(
    audio_bytes: bytes, transcript: str, engine_identity: str, max_seconds: float | None = None
) -> str:
    """What a prepared voice depends on: the clip's bytes, its transcript, the model, this format and the
    voice's max_reference_seconds (a part only when set, so the keys of voices without it stay as they were)."""
    digest = hashlib.sha256()
    tag = f"wyoming-ishowtts prepared voice v{FORMAT}".encode()
    parts = [tag, audio_bytes, transcript.encode("utf-8"), engine_identity.encode("utf-8")]
    if max_seconds is not None:
        parts.append(f"max_reference_seconds={max_seconds!r}".encode())
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def cache_file(cache_dir: Path, key: str) -> Path:
    """Where the prepared voice with this key is kept under a cache folder."""
    return cache_dir / "voices" / f"{key}.voice"


class PreparedVoices:
    """Prepare each voice once; keep the result in memory and on disk keyed by content.

    Keying by the clip's bytes, its transcript and the model's identity means editing a clip or switching
    the model can never serve stale tensors, and no invalidation logic is needed.  Used only from the engine
    worker thread.
    """

    def __init__(self, cache_dir: Path, max_in_memory: int = 16) -> None:
        self._cache_dir = cache_dir
        self._dir = cache_file(cache_dir, "key").parent
        self._memory: OrderedDict[str, Voice] = OrderedDict()
        self._max = max_in_memory
        # Temporary files being written right now (see ``_save`` and ``discard_partial``).
        self._writing: set[Path] = set()
        self._writing_lock = threading.Lock()
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        """Delete half-written cache files left by a process that was killed while saving one.

        Their names carry the writer's pid (``.KEY.PID.UUID.tmp.voice``); a file is stale when that
        process is gone, or is this one (a previous container run reusing the same pid, typically 1).
        """
        if not self._dir.is_dir():
            return
        for path in self._dir.glob(".*.tmp.voice"):
            parts = path.name.split(".")
            try:
                pid = int(parts[2])
            except (IndexError, ValueError):
                continue
            if pid != os.getpid() and process_exists(pid):
                continue  # another server sharing this cache is writing it now
            _LOGGER.info("Removing a half-written voice cache file %s", path)
            path.unlink(missing_ok=True)

    def discard_partial(self) -> None:
        """Remove cache files still being written; called at shutdown when the worker did not stop in time.

        The writer may still be running: then its ``os.replace`` fails (logged) and the real name never
        points at a partial file, and the process exits without leaving the temporary one behind.
        """
        with self._writing_lock:
            writing = list(self._writing)
        for tmp in writing:
            _LOGGER.warning("Shutting down while %s was being written: removing it", tmp.name)
            tmp.unlink(missing_ok=True)

    def get(self, engine: VoiceEngine, info: VoiceInfo) -> Voice:
        audio_path = info.reference_audio
        if info.builtin is not None:
            audio_path = fetch_builtin_voice(self._cache_dir, info.builtin)
        try:
            audio_bytes = audio_path.read_bytes()
        except OSError as err:
            raise VoiceUnavailableError(
                f"voice {info.name!r}: cannot read its reference audio: {err}"
            ) from err
        key = prepared_voice_key(audio_bytes, info.transcript, engine.identity, info.max_reference_seconds)
        cached = self._memory.get(key)
        if cached is not None:
            self._memory.move_to_end(key)
            return cached
        path = cache_file(self._cache_dir, key)
        voice: Voice | None = None
        if path.is_file():
            try:
                voice = engine.voice(read_clip(path))
                _LOGGER.debug("Loaded prepared voice %s from %s", info.name, path)
            except Exception as err:  # any unreadable cache file is rebuilt from the clip
                _LOGGER.warning("Rebuilding voice cache for %s (%s is unusable: %s)", info.name, path, err)
                path.unlink(missing_ok=True)
        if voice is None:
            audio, sample_rate = load_audio(audio_path)
            clip = prepare_clip(
                audio, sample_rate, info.transcript, name=info.name, max_seconds=info.max_reference_seconds
            )
            voice = engine.voice(clip)
            if not info.transient:
                self._save(clip, path)
            _LOGGER.info("Prepared voice %s", info.name)
        self._memory[key] = voice
        while len(self._memory) > self._max:
            self._memory.popitem(last=False)
        return voice

    def _save(self, clip: PreparedClip, path: Path) -> None:
        """Write atomically so a crash mid-write never leaves a truncated file under the real name."""
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp{path.suffix}")
        with self._writing_lock:
            self._writing.add(tmp)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_clip(clip, tmp)
            os.replace(tmp, path)
        except OSError as err:
            _LOGGER.warning("Could not cache prepared voice at %s: %s", path, err)
        finally:
            tmp.unlink(missing_ok=True)
            with self._writing_lock:
                self._writing.discard(tmp)


def write_clip(clip: PreparedClip, path: Path) -> None:
    """Write the prepared clip (not the mel: it depends on the device and is cheap to recompute)."""
    torch.save(
        {
            "format": FORMAT,
            "name": clip.name,
            "ref_text": clip.ref_text,
            "audio": clip.audio.cpu(),
            "rms": clip.rms,
            "source_seconds": clip.source_seconds,
        },
        path,
    )


def read_clip(path: Path) -> PreparedClip:
    """Read a file written by `write_clip`; raises ReferenceAudioError when it is corrupt or from another
    format. Never runs code from the file (``weights_only``)."""
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("unknown voice cache format")
        audio = data["audio"]
        if (
            not isinstance(audio, torch.Tensor)
            or audio.ndim != 2
            or audio.shape[0] != 1
            or audio.numel() == 0
        ):
            raise ValueError("bad audio tensor")
        return PreparedClip(
            str(data["name"]),
            str(data["ref_text"]),
            audio.float(),
            float(data["rms"]),
            float(data["source_seconds"]),
        )
    except Exception as err:
        raise ReferenceAudioError(f"voice cache {path.name} is unreadable: {err}") from err


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to another user
        return True
    return True
