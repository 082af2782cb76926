"""Uploaded clips: decode whatever libsndfile reads, refuse what cannot be used, store as WAV.

Everything here is blocking (decoding, encoding): the app runs it in a thread, never on the loop.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile

from .errors import StudioError

READABLE_FORMATS = "WAV, FLAC, OGG or MP3"


@dataclass(frozen=True)
class Clip:
    """Decoded audio as the file had it: float32 samples (frames, channels) at the file's own rate."""

    samples: np.ndarray
    rate: int

    @property
    def seconds(self) -> float:
        return self.samples.shape[0] / self.rate

    def wav_bytes(self) -> bytes:
        """16-bit WAV at the clip's own rate: what a voice folder's reference.wav holds.

        The same bytes serve the preview and the saved voice, so the prepared-voice cache (keyed by
        content) prepares a voice once for both.
        """
        out = io.BytesIO()
        soundfile.write(out, self.samples, self.rate, format="WAV", subtype="PCM_16")
        return out.getvalue()


def decode_clip(data: bytes, max_seconds: float) -> Clip:
    """Decode an uploaded file; a ``StudioError`` says in plain words why it cannot be used."""
    if not data:
        raise StudioError(400, "empty-audio", "The audio file is empty.")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            rate = int(sound.samplerate)
            frames = sound.frames
            if rate <= 0:
                raise StudioError(400, "unreadable-audio", "The audio file has no valid sample rate.")
            if frames > max_seconds * rate:
                raise StudioError(
                    400,
                    "clip-too-long",
                    f"The clip is {frames / rate:.1f} s long; the limit is {max_seconds:g} s. "
                    "Cut it to 5-10 seconds of clear speech.",
                )
            samples = sound.read(dtype="float32", always_2d=True)
    except StudioError:
        raise
    except Exception as err:  # libsndfile's own error types and RuntimeError
        raise StudioError(
            400,
            "unreadable-audio",
            f"This file could not be read as audio; use {READABLE_FORMATS}. ({err})",
        ) from None
    if samples.shape[0] == 0:
        raise StudioError(400, "empty-audio", "The audio file contains no sound (0 samples).")
    if samples.shape[0] > max_seconds * rate:  # a header may understate the length (MP3)
        raise StudioError(
            400,
            "clip-too-long",
            f"The clip is {samples.shape[0] / rate:.1f} s long; the limit is {max_seconds:g} s. "
            "Cut it to 5-10 seconds of clear speech.",
        )
    samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    return Clip(samples=np.clip(samples, -1.0, 1.0), rate=rate)
