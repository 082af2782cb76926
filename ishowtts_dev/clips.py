"""The test voice as files: the engine's synthetic tone clip (`tone_clip`) written as a voice folder, and
upstream's duration rule for what a text spoken with it should last. Used by the tests, the soak run and
the wheel-install test, so they all speak with one voice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from wyoming_ishowtts.engine.options import SAMPLE_RATE
from wyoming_ishowtts.engine.voice import tone_clip

TONE_TRANSCRIPT = "This is a short test voice."
TONE_SECONDS = 3.0


def write_tone_clip(
    path: Path, seconds: float = TONE_SECONDS, rate: int = SAMPLE_RATE, silent: bool = False
) -> None:
    """The tone clip as 16-bit WAV (`silent`: all zeros, the same length)."""
    audio = tone_clip(seconds, rate=rate)
    if silent:
        audio[:] = 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio.astype(np.float32), rate, subtype="PCM_16")


def make_voice(
    root: Path,
    name: str,
    transcript: str = TONE_TRANSCRIPT,
    toml: str | None = None,
    seconds: float = TONE_SECONDS,
) -> Path:
    """A voice folder ``root/name`` speaking with the tone clip; ``toml`` becomes its voice.toml."""
    directory = root / name
    write_tone_clip(directory / "reference.wav", seconds=seconds)
    (directory / "reference.txt").write_text(transcript + "\n", encoding="utf-8")
    if toml is not None:
        (directory / "voice.toml").write_text(toml, encoding="utf-8")
    return directory


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def expected_seconds(
    text: str, transcript: str = TONE_TRANSCRIPT, ref_seconds: float = TONE_SECONDS
) -> float:
    """Upstream's duration rule: generated frames = ref_frames * gen_bytes / ref_bytes."""
    return ref_seconds * utf8_len(text) / (utf8_len(transcript) + 2)
