"""The benchmark's texts and its synthetic reference voice (`reference_clip`, from ishowtts_dev/clips.py).

The texts are written for this benchmark: replies a home voice assistant would plausibly give, in three
lengths that exercise one, a few and many text chunks. The reference is synthetic (no recordings can be
downloaded where the project is tested, and random weights do not care what the voice sounds like): what
matters for timing is its length and a transcript whose byte rate matches real speech, because both
decide the frame count of every chunk, and so the cost.
"""

from __future__ import annotations

from pathlib import Path

from wyoming_ishowtts.engine.options import SAMPLE_RATE

from ..clips import make_voice, reference_clip

__all__ = ["REFERENCE_SECONDS", "REFERENCE_TEXT", "SAMPLE_RATE", "TEXTS", "reference_clip", "write_voice"]

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


def write_voice(voices_dir: Path, name: str = "bench", seed: int | None = 0) -> Path:
    """The benchmark's voice folder: `reference_clip` of REFERENCE_SECONDS, REFERENCE_TEXT, and a voice.toml
    fixing the seed."""
    toml = 'description = "synthetic benchmark voice"\nlanguages = ["en"]\n'
    if seed is not None:
        toml += f"seed = {seed}\n"
    return make_voice(voices_dir, name, REFERENCE_TEXT, toml=toml, audio=reference_clip(REFERENCE_SECONDS))
