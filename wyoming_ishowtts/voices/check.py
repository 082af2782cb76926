"""The clip checker: judge a voice's clip and transcript the way the engine will use them, in words a person
who is not an audio expert can act on. Torch-free.

Both front ends use it: ``python -m wyoming_ishowtts.voices check voices/NAME`` (`check_voice_dir`, a folder
on disk) and the voice studio page (`check_clip`, a clip being uploaded or recorded). Each `Finding` has a
stable `code` that programs (the page, the tests) compare, and a `message` that people read; this module is
the one place both are written.

Codes, by level:

- error (the voice cannot be used): ``not-a-folder``, ``transcript-missing``, ``transcript-not-text``,
  ``transcript-empty``, ``settings-invalid``, ``audio-missing``, ``audio-unreadable``, ``rate-too-low``,
  ``too-short``, ``silent``;
- warning (it works, but sounds worse or is slower): ``rate-low``, ``too-long`` (cut at 12 s),
  ``long-reference`` (over 8 s: every answer waits longer),
  ``mostly-silent``, ``edge-silence``, ``clipping``, ``quiet``, ``transcript-too-long``,
  ``transcript-too-short`` (implausible for the clip's length);
- ok (facts worth showing): ``transcript``, ``settings``, ``channels``, ``rate``, ``length``,
  ``reference-cost`` (what each second of the clip costs in speed), ``reference-cut`` (what voice.toml's
  max_reference_seconds keeps of it, and of its transcript).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .folder import REFERENCE_AUDIO, REFERENCE_TEXT, VOICE_TOML, parse_voice_toml

Level = Literal["error", "warning", "ok"]

REFERENCE_SECOND_COST = (1.2, 5.2)
"""Seconds that each second of reference adds before an answer's first audio on a 2-core CPU, from one with
native bf16 to one with AVX2 only (what ``--precision auto`` runs on each): every sampler step of every chunk
runs over the reference's frames too (93.75 a second), and the first chunk takes 7 steps. Measured on the base
model (BENCHMARKS.md, "Reference length"): a 2-core Intel Xeon with AMX-BF16 in bf16, 0.168 s per step for
each second (`python -m ishowtts_dev.bench.cpu frames`, 400-1,200 frames, quiet), 1.2 s over 7 steps; a
2-core AMD EPYC (Zen 3, AVX2) in fp32, 7.9 ms a frame from its quiet step times (6.07 s at 891 frames,
11.39 s at 1,566), 0.74 s per step, 5.2 s over 7 steps. A GPU is far faster; on a CPU this is most of a
short reply's wait."""
TRIM_ADVICE_SECONDS = 8.0
"""Past this, the checker suggests a shorter clip (5 to 8 s clones a voice as well, and answers sooner)."""
MAX_CLIP_SECONDS_WARN = 12.0
"""The engine uses at most about this much of a clip (upstream's rule cuts longer ones on a pause)."""
MIN_CLIP_SECONDS = 1.0
MIN_RATE, GOOD_RATE = 8000, 16000
EDGE_SILENCE_SECONDS = 1.0
SILENCE_DB = -45.0
MAX_CHARS_PER_SECOND, MIN_CHARS_PER_SECOND = 35.0, 1.5


@dataclass(frozen=True)
class Finding:
    level: Level
    code: str
    """Stable, for programs: see the module docstring."""
    message: str
    """One or two plain sentences for a person: what is wrong and what to do."""


def check_clip(
    samples: np.ndarray,
    rate: int,
    transcript: str | None = None,
    *,
    channels: int | None = None,
    cut_seconds: float | None = None,
) -> list[Finding]:
    """Judge a clip (``samples``: frames, or frames x channels, as read from the file) and, when given, its
    transcript. ``transcript`` None: not judged (the caller asks for it in its own words). ``channels``: how
    many the file had, when ``samples`` are already mixed down (the studio mixes while it decodes).
    ``cut_seconds``: what the voice's max_reference_seconds keeps of it (`check_voice_dir`)."""
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    findings: list[Finding] = []
    mono = audio.mean(axis=1) if audio.size else np.zeros(0, dtype=np.float32)
    seconds = len(mono) / rate if rate > 0 else 0.0
    had = audio.shape[1] if channels is None else channels
    if had > 1:
        findings.append(Finding("ok", "channels", f"{had} channels, mixed down to one."))
    findings.append(_judge_rate(rate))
    findings.append(_judge_length(seconds))
    if seconds >= MIN_CLIP_SECONDS:
        findings.append(_judge_cost(seconds, cut=cut_seconds))
    if len(mono) and rate > 0:
        findings.extend(_judge_level(mono, rate))
    if transcript is not None:
        findings.extend(_judge_transcript(" ".join(transcript.split()), seconds))
    return findings


def check_voice_dir(directory: Path) -> list[Finding]:
    """Judge a voice folder: its transcript file, its settings file and its clip."""
    import soundfile

    if not directory.is_dir():
        return [Finding("error", "not-a-folder", f"{directory} is not a folder.")]
    findings: list[Finding] = []
    transcript: str | None = None
    text_path = directory / REFERENCE_TEXT
    if not text_path.is_file():
        findings.append(
            Finding(
                "error",
                "transcript-missing",
                f"There is no transcript ({REFERENCE_TEXT}): write exactly the words spoken in the clip.",
            )
        )
    else:
        try:
            transcript = text_path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            findings.append(
                Finding(
                    "error", "transcript-not-text", f"{REFERENCE_TEXT} is not UTF-8 text; save it as UTF-8."
                )
            )

    max_seconds: float | None = None
    if (directory / VOICE_TOML).is_file():
        try:
            max_seconds = parse_voice_toml(directory / VOICE_TOML).max_reference_seconds
            findings.append(Finding("ok", "settings", f"The settings ({VOICE_TOML}) are valid."))
        except (OSError, ValueError) as err:
            findings.append(Finding("error", "settings-invalid", f"The settings file has a mistake: {err}"))

    audio_path = directory / REFERENCE_AUDIO
    if not audio_path.is_file():
        findings.append(Finding("error", "audio-missing", f"There is no clip ({REFERENCE_AUDIO})."))
        return findings
    try:
        audio, rate = soundfile.read(str(audio_path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises its own LibsndfileError and RuntimeError
        findings.append(
            Finding(
                "error",
                "audio-unreadable",
                f"The clip ({REFERENCE_AUDIO}) cannot be read as audio ({err}); save it as a WAV file.",
            )
        )
        if transcript is not None:
            findings.extend(_judge_transcript(" ".join(transcript.split()), None))
        return findings
    cut = None if max_seconds is None else _judge_cut(audio, int(rate), transcript, max_seconds)
    if cut is not None:
        findings.append(cut[0])
    return findings + check_clip(audio, int(rate), transcript, cut_seconds=None if cut is None else cut[1])


def _judge_rate(rate: int) -> Finding:
    if rate < MIN_RATE:
        return Finding(
            "error",
            "rate-too-low",
            f"The sample rate is {rate} Hz, too low to clone a voice from; record at 24000 Hz or more.",
        )
    if rate < GOOD_RATE:
        return Finding(
            "warning",
            "rate-low",
            f"The sample rate is {rate} Hz, which sounds muffled; 24000 Hz or more sounds better.",
        )
    return Finding("ok", "rate", f"Sample rate {rate} Hz.")


def _judge_length(seconds: float) -> Finding:
    if seconds < MIN_CLIP_SECONDS:
        return Finding(
            "error",
            "too-short",
            f"The clip is {seconds:.2f} s long; it needs at least {MIN_CLIP_SECONDS:.0f} s of speech "
            "(5 to 10 s is best).",
        )
    if seconds > MAX_CLIP_SECONDS_WARN:
        return Finding(
            "warning",
            "too-long",
            f"The clip is {seconds:.1f} s long: only about the first {MAX_CLIP_SECONDS_WARN:.0f} s are used "
            f"(the rest is cut), and a long clip slows every answer. Keep it under "
            f"{MAX_CLIP_SECONDS_WARN:.0f} s.",
        )
    return Finding("ok", "length", f"Length {seconds:.2f} s.")


def _judge_cost(seconds: float, cut: float | None) -> Finding:
    """What the clip costs in speed, and whether to make it shorter (`REFERENCE_SECOND_COST`)."""
    used = min(seconds if cut is None else cut, MAX_CLIP_SECONDS_WARN)
    low, high = REFERENCE_SECOND_COST
    cost = (
        f"On a 2-core CPU each second of reference adds about {low:.1f} s (with native bf16) to {high:.1f} s "
        f"(AVX2 only) before every answer's first audio (about {used * low:.0f} to {used * high:.0f} s for the "
        f"{used:.1f} s used here)"
    )
    if used > TRIM_ADVICE_SECONDS:
        return Finding(
            "warning",
            "long-reference",
            f"{cost}. Trim the clip to about {TRIM_ADVICE_SECONDS:.0f} s (5 to 8 s clones a voice well), or "
            f"set max_reference_seconds = {TRIM_ADVICE_SECONDS:.0f} in {VOICE_TOML} to cut it at a pause.",
        )
    return Finding("ok", "reference-cost", f"{cost}.")


def _judge_cut(
    audio: np.ndarray, rate: int, transcript: str | None, max_seconds: float
) -> tuple[Finding, float] | None:
    """What max_reference_seconds keeps of the clip (as the engine cuts it: after upstream's clipping,
    at a pause), and its estimate of the transcript's words said in that part; None when the clip is not
    longer. The estimate is shown so a person can check it against the recording."""
    from ..engine.reference import cut_at_pause, cut_transcript, trim_reference
    from ..errors import ReferenceAudioError

    try:
        clip = trim_reference(audio, rate)
    except ReferenceAudioError:
        return None  # too short or silent: check_clip says so
    if len(clip) <= max_seconds * rate:
        return None
    kept = cut_at_pause(clip, rate, max_seconds)
    seconds = len(kept) / rate
    words = "" if transcript is None else cut_transcript(transcript, len(kept) / len(clip))
    return (
        Finding(
            "ok",
            "reference-cut",
            f"max_reference_seconds = {max_seconds:g}: the clip is cut at a pause at {seconds:.1f} s, and the "
            f'transcript to "{words}" (an estimate from its length: check that these are the words said '
            f"in the first {seconds:.1f} s, or trim the clip and its transcript yourself).",
        ),
        seconds,
    )


def _judge_level(mono: np.ndarray, rate: int) -> list[Finding]:
    peak = float(np.max(np.abs(mono)))
    if peak < 1e-4:
        return [Finding("error", "silent", "The clip is silent: there is nothing to clone.")]
    findings: list[Finding] = []
    frame = max(1, int(rate * 0.02))
    usable = len(mono) // frame * frame
    frames = mono[:usable].reshape(-1, frame) if usable else mono.reshape(1, -1)
    rms_db = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-10)
    quiet = rms_db < SILENCE_DB
    quiet_fraction = float(np.mean(quiet))
    lead = int(np.argmax(~quiet)) * frame / rate
    trail = int(np.argmax(~quiet[::-1])) * frame / rate
    if quiet_fraction > 0.6:
        findings.append(
            Finding(
                "warning",
                "mostly-silent",
                f"{quiet_fraction:.0%} of the clip is near silence; use a clip that is mostly speech.",
            )
        )
    if lead > EDGE_SILENCE_SECONDS or trail > EDGE_SILENCE_SECONDS:
        findings.append(
            Finding(
                "warning",
                "edge-silence",
                f"There is silence at the ends ({lead:.1f} s at the start, {trail:.1f} s at the end); "
                "trim it so the clip starts and ends with speech.",
            )
        )
    clipped = float(np.mean(np.abs(mono) >= 0.999))
    if clipped > 0.001:
        findings.append(
            Finding(
                "warning",
                "clipping",
                f"{clipped:.1%} of the clip is clipped (too loud, so it is distorted); record less loud.",
            )
        )
    if peak < 0.05:
        findings.append(
            Finding(
                "warning",
                "quiet",
                "The clip is very quiet; record closer to the microphone or turn the input level up.",
            )
        )
    return findings


def _judge_transcript(transcript: str, seconds: float | None) -> list[Finding]:
    if not transcript:
        return [
            Finding(
                "error",
                "transcript-empty",
                "The transcript is empty: write exactly the words spoken in the clip.",
            )
        ]
    findings = [Finding("ok", "transcript", f"Transcript: {len(transcript)} characters.")]
    if seconds is None or seconds < MIN_CLIP_SECONDS:
        return findings
    per_second = len(transcript) / seconds
    if per_second > MAX_CHARS_PER_SECOND:
        findings.append(
            Finding(
                "warning",
                "transcript-too-long",
                f"The transcript is long for a {seconds:.1f} s clip ({per_second:.0f} characters a second); "
                "check that it is exactly what is said in the clip, word for word.",
            )
        )
    elif per_second < MIN_CHARS_PER_SECOND:
        findings.append(
            Finding(
                "warning",
                "transcript-too-short",
                f"The transcript is short for a {seconds:.1f} s clip ({per_second:.1f} characters a second); "
                "check that it has every word said in the clip.",
            )
        )
    return findings
