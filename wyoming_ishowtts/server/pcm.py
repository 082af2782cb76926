"""Conversion of engine output to the 16-bit PCM that Wyoming clients expect."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import soxr

SAMPLE_WIDTH = 2  # bytes: 16-bit PCM
CHANNELS = 1


def float_to_int16_bytes(audio: np.ndarray) -> bytes:
    """Clip before scaling: F5-TTS output can overshoot ±1, and wrapping would be a loud click."""
    samples = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return (samples * 32767.0).round().astype("<i2").tobytes()


class StreamResampler:
    """Resample one response piece by piece.

    A single stateful soxr stream per response keeps the filter history across piece boundaries;
    resampling each piece on its own would put small discontinuities at every text-chunk seam.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(in_rate, out_rate, CHANNELS, dtype="float32", quality="HQ")

    def process(self, audio: np.ndarray, last: bool = False) -> np.ndarray:
        samples = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1))
        if self._stream is None:
            return samples
        return np.asarray(self._stream.resample_chunk(samples, last=last), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """Return what the filter still holds; needed so the end of the last word is not cut."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self.process(np.zeros(0, dtype=np.float32), last=True)


def split_pcm(pcm: bytes, samples_per_chunk: int) -> Iterator[bytes]:
    """Split into audio-chunk payloads; the last one may be shorter, none is empty."""
    step = samples_per_chunk * SAMPLE_WIDTH * CHANNELS
    for start in range(0, len(pcm), step):
        yield pcm[start : start + step]
