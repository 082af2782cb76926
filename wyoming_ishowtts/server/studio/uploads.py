"""Uploaded clips: decode whatever libsndfile reads, refuse what cannot be used, store as WAV.

A few kilobytes of FLAC or Ogg can claim hours of audio at an absurd rate with many channels (silence
compresses to almost nothing), so the file's header is judged before anything is decoded, and the samples
are read in small blocks, each mixed down to one channel at once: a clip never costs more memory than
``max_seconds`` of mono audio at `MAX_RATE`, whatever the file claims.

Everything here is blocking (decoding, encoding): the app runs it in a thread, never on the loop.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile

from ...errors import (
    CLIP_TOO_LONG,
    EMPTY_AUDIO,
    RATE_TOO_HIGH,
    TOO_MANY_CHANNELS,
    UNREADABLE_AUDIO,
    StudioError,
)
from ...voices.check import Finding, check_clip

READABLE_FORMATS = "WAV, FLAC, OGG or MP3"
MAX_RATE = 192_000
"""The highest sample rate accepted (studio recorders' highest; the model hears 24 kHz)."""
MAX_CHANNELS = 8
"""The most channels accepted (7.1 surround); a voice clip is mixed down to one."""
_BLOCK_VALUES = 1 << 18
"""Samples (frames x channels) decoded at a time: at most 1 MiB of float32 before the mix-down."""


@dataclass(frozen=True)
class Clip:
    """Decoded audio mixed down to one channel: float32 samples (frames, 1) at the file's own rate, and how
    many channels the file had."""

    samples: np.ndarray
    rate: int
    channels: int = 1

    @property
    def seconds(self) -> float:
        return self.samples.shape[0] / self.rate

    def check(self, transcript: str | None) -> list[Finding]:
        """The clip checker's findings for this clip and transcript."""
        return check_clip(self.samples, self.rate, transcript, channels=self.channels)

    def wav_bytes(self) -> bytes:
        """16-bit mono WAV at the clip's own rate: what a voice folder's reference.wav holds.

        The same bytes serve the preview and the saved voice, so the prepared-voice cache (keyed by
        content) prepares a voice once for both.
        """
        out = io.BytesIO()
        soundfile.write(out, self.samples, self.rate, format="WAV", subtype="PCM_16")
        return out.getvalue()


def decode_clip(data: bytes, max_seconds: float) -> Clip:
    """Decode an uploaded file; a ``StudioError`` says in plain words why it cannot be used."""
    if not data:
        raise StudioError(EMPTY_AUDIO, "The audio file is empty.")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            rate, channels = int(sound.samplerate), int(sound.channels)
            _judge_header(rate, channels, sound.frames, max_seconds)
            limit = int(max_seconds * rate)  # frames; a header may understate the length (MP3)
            block = max(1, _BLOCK_VALUES // channels)
            pieces: list[np.ndarray] = []
            frames = 0
            while True:
                piece = sound.read(block, dtype="float32", always_2d=True)
                if piece.shape[0] == 0:
                    break
                frames += piece.shape[0]
                if frames > limit:
                    raise _too_long(frames / rate, max_seconds, more=True)
                piece = np.clip(np.nan_to_num(piece, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
                pieces.append(piece.mean(axis=1, dtype=np.float32, keepdims=True))
    except StudioError:
        raise
    except Exception as err:  # libsndfile's own error types and RuntimeError
        raise StudioError(
            UNREADABLE_AUDIO,
            f"This file could not be read as audio; use {READABLE_FORMATS}. ({err})",
        ) from None
    if frames == 0:
        raise StudioError(EMPTY_AUDIO, "The audio file contains no sound (0 samples).")
    return Clip(samples=np.concatenate(pieces), rate=rate, channels=channels)


def _judge_header(rate: int, channels: int, frames: int, max_seconds: float) -> None:
    if rate <= 0:
        raise StudioError(UNREADABLE_AUDIO, "The audio file has no valid sample rate.")
    if rate > MAX_RATE:
        raise StudioError(
            RATE_TOO_HIGH,
            f"The clip's sample rate is {rate} Hz; the limit is {MAX_RATE} Hz. Save it at 48000 Hz.",
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise StudioError(
            TOO_MANY_CHANNELS,
            f"The clip has {channels} channels; the limit is {MAX_CHANNELS}. Save it as mono or stereo.",
        )
    if frames > max_seconds * rate:
        raise _too_long(frames / rate, max_seconds)


def _too_long(seconds: float, max_seconds: float, more: bool = False) -> StudioError:
    length = f"longer than {max_seconds:g} s" if more else f"{seconds:.1f} s long"
    return StudioError(
        CLIP_TOO_LONG,
        f"The clip is {length}; the limit is {max_seconds:g} s. Cut it to 5-10 seconds of clear speech.",
    )
