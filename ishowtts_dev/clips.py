"""The developer tools' synthetic voices: the one voice-folder writer (`make_voice`), the test voice (the
engine's tone clip, `tone_clip`) with upstream's duration rule for exactly how long a text spoken with it
lasts, and the benchmark's voice-like clip (`reference_clip`). The tests, the soak run and the wheel-install
test speak with the tone voice; the benchmarks and the precision study with `reference_clip`."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import soundfile

from wyoming_ishowtts.engine.chunking import chunk_text, model_ref_text, shorten_first_chunk
from wyoming_ishowtts.engine.options import HOP_LENGTH, SAMPLE_RATE, SynthesisOptions
from wyoming_ishowtts.engine.reference import normalize_ref_text, trim_reference
from wyoming_ishowtts.engine.voice import tone_clip

TONE_TRANSCRIPT = "This is a short test voice."
TONE_SECONDS = 3.0


def reference_clip(seconds: float = 5.0, seed: int = 0) -> np.ndarray:
    """A voice-like float32 clip at 24 kHz: a harmonic series on a gliding pitch, opened and closed at a
    syllable rate (~4 Hz), with two short pauses and a little breath noise.

    Pauses are short (< 0.3 s) and the clip starts and ends voiced, so neither upstream's silence clipping
    (which looks for >= 1 s of silence) nor edge trimming changes its length much: both systems get the
    same reference length and therefore the same frame counts.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    pitch = 140 + 25 * np.sin(2 * np.pi * 0.35 * t) + 10 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voiced = sum((0.9**k) * np.sin(k * phase) / k for k in range(1, 16))
    syllables = 0.5 * (1 - np.cos(2 * np.pi * 4.1 * t))  # open/close about four times a second
    envelope = 0.25 + 0.75 * syllables
    for start in (1.6, 3.3):  # two short pauses between "phrases"
        envelope[(t >= start) & (t < start + 0.25)] *= 0.02
    wave = voiced * envelope + 0.01 * rng.standard_normal(n)
    wave *= 0.3 / np.max(np.abs(wave))
    return wave.astype(np.float32)


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
    audio: np.ndarray | None = None,
) -> Path:
    """A voice folder ``root/name``: ``audio`` (24 kHz; default: the tone clip of ``seconds``) as its
    16-bit reference.wav, ``transcript``, and ``toml`` as its voice.toml."""
    directory = root / name
    if audio is None:
        write_tone_clip(directory / "reference.wav", seconds=seconds)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(directory / "reference.wav"), audio, SAMPLE_RATE, subtype="PCM_16")
    (directory / "reference.txt").write_text(transcript + "\n", encoding="utf-8")
    if toml is not None:
        (directory / "voice.toml").write_text(toml, encoding="utf-8")
    return directory


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


@functools.cache
def _trimmed_reference(seconds: float) -> tuple[int, float]:
    """The tone clip as a voice folder holds it (16-bit WAV), after upstream's trimming: mel frames, seconds."""
    wav = io.BytesIO()
    soundfile.write(wav, tone_clip(seconds, rate=SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    wav.seek(0)
    audio, rate = soundfile.read(wav, dtype="float32")
    samples = len(trim_reference(audio, rate))
    return samples // HOP_LENGTH, samples / rate


def expected_samples(
    *segments: str, transcript: str = TONE_TRANSCRIPT, seconds: float = TONE_SECONDS, speed: float = 1.0
) -> int:
    """Exactly how many 24 kHz samples a voice made by `make_voice` speaks for `segments`, one after the
    other (a plain request is one segment; each sentence of a stream is one).

    Upstream's duration rule, written out here rather than taken from the engine: each text chunk gets
    ``int(ref_frames / ref_bytes * chunk_bytes / speed)`` mel frames (speed 0.3 under 10 bytes; the chunk
    budget scales with the speed too), which the
    vocoder turns into 256 samples a frame, less one frame; a segment's chunks are joined by a 0.15 s
    cross-fade; segments follow one another without one.  Where the chunks fall comes from the engine's
    chunker, which tests/test_chunking.py holds to upstream's.  An answer that loses, repeats or cuts short
    any text misses this number.
    """
    options = SynthesisOptions()
    ref_frames, ref_seconds = _trimmed_reference(seconds)
    ref_text = normalize_ref_text(transcript)
    ref_bytes = utf8_len(model_ref_text(ref_text))
    budget = int(utf8_len(ref_text) / ref_seconds * (22 - ref_seconds) * speed)
    fade = int(options.cross_fade_seconds * SAMPLE_RATE)
    total = 0
    for segment in segments:
        chunks = chunk_text(" ".join(segment.split()), budget)
        if options.first_chunk_max_chars:
            chunks = shorten_first_chunk(chunks, options.first_chunk_max_chars, budget)
        for chunk in chunks:
            pace = 0.3 if utf8_len(chunk) < 10 else speed
            total += HOP_LENGTH * (int(ref_frames / ref_bytes * utf8_len(chunk) / pace) - 1)
        total -= fade * (len(chunks) - 1)
    return total
