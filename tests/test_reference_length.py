"""Reference length (issue 25): voice.toml's max_reference_seconds cuts the clip at a pause (and its
transcript where the cut most likely falls), and the checker says what each second of reference costs.

Whether a cut clip clones the voice as well cannot be judged with random weights: these tests hold the
mechanics (where the cut falls, what is cached under which key), not the sound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ishowtts_dev.clips import make_voice
from wyoming_ishowtts.engine.options import SAMPLE_RATE
from wyoming_ishowtts.engine.reference import cut_at_pause, cut_transcript, pauses
from wyoming_ishowtts.engine.voice import prepare_clip
from wyoming_ishowtts.server.audio_cache import voice_digest
from wyoming_ishowtts.voices.cache import prepared_voice_key
from wyoming_ishowtts.voices.check import (
    REFERENCE_SECOND_COST,
    TRIM_ADVICE_SECONDS,
    check_clip,
    check_voice_dir,
)
from wyoming_ishowtts.voices.folder import load_voice_dir

RATE = SAMPLE_RATE
GAPS = [(3.0, 3.4), (6.5, 6.8)]
"""Pauses of the test clip, seconds: speech 0-3, 3.4-6.5 and 6.8-10, TRANSCRIPT's three sentences."""
TRANSCRIPT = "One two three four five. Six seven eight nine ten, eleven twelve. Thirteen fourteen fifteen."


def spoken(seconds: float = 10.0, gaps: list[tuple[float, float]] = GAPS, level: float = 0.3) -> np.ndarray:
    """A voiced-like clip (a tone and its octave at a syllable rate) with silent gaps at `gaps`."""
    t = np.arange(int(seconds * RATE)) / RATE
    audio = level * (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t))
    audio *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    for start, end in gaps:
        audio[int(start * RATE) : int(end * RATE)] = 0.0
    return audio.astype(np.float32)


def test_pauses_are_found_at_any_level() -> None:
    for level in (0.3, 0.003):  # a quiet recording's pauses are relative to its own speech
        found = pauses(spoken(level=level), RATE)
        assert [(round(s, 2), round(e, 2)) for s, e in found] == GAPS


def test_cut_falls_in_the_last_pause_within_the_limit() -> None:
    audio = spoken()
    assert len(cut_at_pause(audio, RATE, 8.0)) == int((6.5 + 6.8) / 2 * RATE)
    assert len(cut_at_pause(audio, RATE, 5.0)) == int((3.0 + 3.4) / 2 * RATE)
    assert cut_at_pause(audio, RATE, 12.0) is audio  # not longer: unchanged
    stereo = np.stack([audio, audio], axis=1)
    assert cut_at_pause(stereo, RATE, 8.0).shape == (int(6.65 * RATE), 2)


def test_without_a_pause_the_cut_is_at_the_quietest_moment() -> None:
    audio = spoken(gaps=[])
    dip = int(5.5 * RATE)
    audio[dip : dip + int(0.05 * RATE)] *= 0.01  # too short to be a pause, but the quietest spot
    cut = len(cut_at_pause(audio, RATE, 8.0))
    assert abs(cut - dip) < 0.05 * RATE


def test_transcript_is_cut_at_the_clause_nearest_the_kept_share() -> None:
    assert cut_transcript(TRANSCRIPT, 0.3) == "One two three four five."
    assert cut_transcript(TRANSCRIPT, 0.5) == "One two three four five. Six seven eight nine ten,"
    assert cut_transcript("one two three four five six seven eight nine ten", 0.5).split()[-1] in (
        "five",
        "six",
    )
    assert cut_transcript("今天天气很好我们出去走走吧", 0.5) == "今天天气很好"


def test_prepared_clip_keeps_at_most_max_reference_seconds() -> None:
    full = prepare_clip(spoken(), RATE, TRANSCRIPT)
    cut = prepare_clip(spoken(), RATE, TRANSCRIPT, max_seconds=8.0)
    assert full.source_seconds > 9.5
    assert 6.0 < cut.source_seconds <= 8.0
    # The clip's phrases are the transcript's sentences: the cut after the second keeps two of them.
    assert cut.ref_text == "One two three four five. Six seven eight nine ten, eleven twelve. "
    assert full.ref_text == TRANSCRIPT + " "


@pytest.mark.parametrize(
    ("toml", "expected"),
    [("max_reference_seconds = 8\n", 8.0), ("max_reference_seconds = 6.5\n", 6.5), ("seed = 1\n", None)],
)
def test_voice_toml_max_reference_seconds(tmp_path: Path, toml: str, expected: float | None) -> None:
    info = load_voice_dir(make_voice(tmp_path, "v", toml=toml))
    assert info.max_reference_seconds == expected


@pytest.mark.parametrize("value", ["true", '"8"', "1", "30"])
def test_voice_toml_max_reference_seconds_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="max_reference_seconds"):
        load_voice_dir(make_voice(tmp_path, "v", toml=f"max_reference_seconds = {value}\n"))


def test_the_limit_is_part_of_both_cache_keys(tmp_path: Path) -> None:
    """A voice given max_reference_seconds is prepared again and its old audio never served."""
    plain = load_voice_dir(make_voice(tmp_path, "a"))
    limited = load_voice_dir(make_voice(tmp_path, "b", toml="max_reference_seconds = 8\n"))
    clip = b"the same bytes"
    assert prepared_voice_key(clip, "t", "m") != prepared_voice_key(clip, "t", "m", 8.0)
    assert voice_digest(clip, plain) != voice_digest(clip, limited)


def _finding(findings: list, code: str) -> str:
    found = [f.message for f in findings if f.code == code]
    assert len(found) == 1, [f.code for f in findings]
    return found[0]


def test_checker_says_what_each_second_costs() -> None:
    assert 0 < REFERENCE_SECOND_COST[0] < REFERENCE_SECOND_COST[1]
    short = check_clip(spoken(5.0, gaps=[(3.0, 3.4)]), RATE, "Words.")
    message = _finding(short, "reference-cost")
    low, high = REFERENCE_SECOND_COST
    assert (
        f"{low:.1f} s (with native bf16) to {high:.1f} s" in message and "for the 5.0 s used here" in message
    )
    assert f"about {5 * low:.0f} to {5 * high:.0f} s" in message
    assert not [f for f in short if f.code == "long-reference"]
    long = check_clip(spoken(10.0), RATE, TRANSCRIPT)
    advice = _finding(long, "long-reference")
    assert f"about {TRIM_ADVICE_SECONDS:.0f} s" in advice and "max_reference_seconds" in advice


def test_checker_shows_what_max_reference_seconds_keeps(tmp_path: Path) -> None:
    import soundfile

    folder = make_voice(tmp_path, "v", transcript=TRANSCRIPT, toml="max_reference_seconds = 8\n")
    soundfile.write(folder / "reference.wav", spoken(), RATE, subtype="PCM_16")
    findings = check_voice_dir(folder)
    cut = _finding(findings, "reference-cut")
    assert "cut at a pause at 6.7 s" in cut
    assert '"One two three four five. Six seven eight nine ten, eleven twelve."' in cut
    assert "for the 6.7 s used here" in _finding(findings, "reference-cost")  # the cut clip's cost
    assert not [f for f in findings if f.code == "long-reference"]
