"""A voice's reference clip, prepared once: upstream's clipping, trimming and loudness rule, at 24 kHz.

`PreparedClip` is what the preparation produces: device-free, so it can be cached on disk and shared by
engines on any device. `Voice` is a clip with its mel computed on one engine's device (`Engine.voice`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ReferenceAudioError
from .options import HOP_LENGTH, SAMPLE_RATE
from .reference import (
    cut_at_pause,
    cut_transcript,
    normalize_ref_text,
    resample,
    to_mono,
    trim_reference,
)

TARGET_RMS = 0.1
"""Quiet references are brought up to this loudness, and the output scaled back down (upstream's rule)."""
MIN_FRAMES = 8
"""The shortest prepared clip the engine accepts, in mel frames (~85 ms)."""


@dataclass(frozen=True, eq=False)
class PreparedClip:
    """A reference clip after preparation: trimmed, loudness-normalized, resampled to 24 kHz, on the CPU."""

    name: str
    ref_text: str
    """Transcript, normalized to end in '. ' or '。' as upstream does."""
    audio: torch.Tensor
    """(1, samples) at 24 kHz, on the CPU, after loudness normalization."""
    rms: float
    """Loudness of the trimmed clip before normalization; output is scaled back to it when it was quiet."""
    source_seconds: float
    """Length of the trimmed clip at its own sample rate (sizes the text chunks, as upstream does)."""

    @property
    def ref_frames(self) -> int:
        return int(self.audio.shape[-1]) // HOP_LENGTH


@dataclass(frozen=True, eq=False)
class Voice(PreparedClip):
    """A prepared clip with its mel on one engine's device: what synthesis reads."""

    mel: torch.Tensor = field(repr=False, kw_only=True)
    """(1, frames, 100) float32 on the engine's device, whatever the model's precision; frames = samples // 256 + 1."""


def tone_clip(
    seconds: float = 3.0, pitch: float = 180.0, level: float = 0.3, rate: int = SAMPLE_RATE
) -> np.ndarray:
    """A speech-like synthetic clip: a tone and its octave, opened and closed at a syllable rate (3 Hz),
    with two short gaps. The engine warms up with it when no voice is given; the tests, the soak run and
    the wheel test speak with it (ishowtts_dev/clips.py writes it as a voice folder)."""
    t = np.arange(int(seconds * rate)) / rate
    audio = level * np.sin(2 * np.pi * pitch * t) + level / 2 * np.sin(2 * np.pi * 2 * pitch * t)
    audio *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    for start in (0.3, 0.65):
        audio[int(start * len(t)) : int((start + 0.05) * len(t))] = 0.0
    return audio.astype(np.float32)


def prepare_clip(
    audio: np.ndarray,
    sample_rate: int,
    text: str,
    name: str = "",
    trim: bool = True,
    max_seconds: float | None = None,
) -> PreparedClip:
    """Upstream's reference preparation: clip to <= 12 s on silences, trim the edges, bring a quiet clip
    up to RMS 0.1 (remembering its loudness), resample to 24 kHz. `trim=False` keeps the clip as given
    (for a clip that was already prepared, and for comparisons with upstream's inner functions).

    `max_seconds` (a voice's ``max_reference_seconds``): then cut the clip at its last pause within that
    many seconds, and the transcript where that cut most likely falls (`cut_transcript`): every step of
    every answer costs time for each reference frame, so a shorter clip answers sooner."""
    normalize_ref_text(text)  # a missing transcript is refused before any audio work
    clip = np.asarray(audio, dtype=np.float32)
    if trim:  # on the file's own channels and rate, before mixing down, as upstream does
        clip = trim_reference(clip, sample_rate).astype(np.float32, copy=False)
    if max_seconds is not None and len(clip) > max_seconds * sample_rate:
        before = len(clip)
        clip = cut_at_pause(clip, sample_rate, max_seconds)
        text = cut_transcript(text, len(clip) / before)
    ref_text = normalize_ref_text(text)
    mono = to_mono(clip)
    seconds = len(mono) / sample_rate  # upstream sizes text chunks by the clip's length at its own rate
    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))
    if not np.isfinite(rms) or rms <= 0:
        raise ReferenceAudioError("reference clip is silent")
    wave = torch.from_numpy(np.ascontiguousarray(mono))[None, :]
    if rms < TARGET_RMS:
        wave = wave * TARGET_RMS / rms
    if sample_rate != SAMPLE_RATE:
        wave = torch.from_numpy(resample(wave[0].numpy(), sample_rate, SAMPLE_RATE).astype(np.float32))[None]
    return PreparedClip(name=name, ref_text=ref_text, audio=wave, rms=rms, source_seconds=seconds)
