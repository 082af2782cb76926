"""The benchmark's texts and its synthetic reference voice.

The texts are written for this benchmark: replies a home voice assistant would plausibly give, in three
lengths that exercise one, a few and many text chunks. The reference is synthetic (no recordings can be
downloaded where the project is tested, and random weights do not care what the voice sounds like): what
matters for timing is its length and a transcript whose byte rate matches real speech, because both
decide the frame count of every chunk, and so the cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from wyoming_ishowtts.engine.options import SAMPLE_RATE

TEXTS: dict[str, str] = {
    # One sentence: a typical assistant reply.
    "short": "Okay, the kitchen lights are off and the front door is locked.",
    # Three sentences.
    "medium": (
        "It is nineteen degrees outside with light rain and a gentle wind. "
        "The rain should stop around four this afternoon. "
        "Tomorrow looks mostly sunny, with a high of twenty-three."
    ),
    # Eight sentences.
    "long": (
        "Here is your summary for this morning. "
        "You have three meetings today, and the first one starts at half past nine. "
        "Your package from the hardware store is waiting at the side door. "
        "The washing machine finished its cycle twenty minutes ago. "
        "Traffic on your usual route is light, so the drive should take about twenty minutes. "
        "It will be cloudy until noon, then clear, with a high of eighteen degrees. "
        "Remember that the recycling bins go out tonight. "
        "Have a good day, and let me know if you want your first email read aloud."
    ),
}

REFERENCE_SECONDS = 5.0
REFERENCE_TEXT = "Hello, this is a short recording of my voice, made for the speech system."
"""73 UTF-8 bytes for 5 s: about 15 bytes per second, the rate of ordinary read speech."""


def reference_clip(seconds: float = REFERENCE_SECONDS, seed: int = 0) -> np.ndarray:
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


def write_voice(voices_dir: Path, name: str = "bench", seed: int | None = 0) -> Path:
    """A voice folder for the server (reference.wav, reference.txt, and voice.toml fixing the seed)."""
    folder = voices_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "reference.wav", reference_clip(), SAMPLE_RATE, subtype="PCM_16")
    (folder / "reference.txt").write_text(REFERENCE_TEXT + "\n", encoding="utf-8")
    toml = 'description = "synthetic benchmark voice"\nlanguages = ["en"]\n'
    if seed is not None:
        toml += f"seed = {seed}\n"
    (folder / "voice.toml").write_text(toml, encoding="utf-8")
    return folder
