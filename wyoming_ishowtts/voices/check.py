"""The clip checker: judge a voice folder the way the engine will use it, with advice a user can act on
(``python -m wyoming_ishowtts.voices check voices/NAME``). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .folder import REFERENCE_AUDIO, REFERENCE_TEXT, VOICE_TOML, parse_voice_toml

MAX_CLIP_SECONDS_WARN = 12.0
MIN_CLIP_SECONDS = 1.0


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning" | "ok"
    message: str


def check_voice_dir(directory: Path) -> list[Finding]:
    """Judge a voice folder the way the engine will use it, with advice a user can act on."""
    import soundfile

    findings: list[Finding] = []
    audio_path = directory / REFERENCE_AUDIO
    text_path = directory / REFERENCE_TEXT
    if not directory.is_dir():
        return [Finding("error", f"{directory} is not a folder")]

    transcript = ""
    if not text_path.is_file():
        findings.append(
            Finding("error", f"{REFERENCE_TEXT} is missing: write exactly what is said in the clip")
        )
    else:
        try:
            transcript = " ".join(text_path.read_text(encoding="utf-8").split())
        except UnicodeDecodeError:
            findings.append(Finding("error", f"{REFERENCE_TEXT} is not UTF-8 text"))
        else:
            if transcript:
                findings.append(Finding("ok", f"transcript: {len(transcript)} characters"))
            else:
                findings.append(Finding("error", f"{REFERENCE_TEXT} is empty"))

    if (directory / VOICE_TOML).is_file():
        try:
            parse_voice_toml(directory / VOICE_TOML)
            findings.append(Finding("ok", f"{VOICE_TOML} is valid"))
        except (OSError, ValueError) as err:
            findings.append(Finding("error", str(err)))

    if not audio_path.is_file():
        findings.append(Finding("error", f"{REFERENCE_AUDIO} is missing"))
        return findings
    try:
        audio, rate = soundfile.read(str(audio_path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises its own LibsndfileError and RuntimeError
        findings.append(Finding("error", f"{REFERENCE_AUDIO} cannot be read as audio: {err}"))
        return findings
    mono = audio.mean(axis=1) if audio.size else np.zeros(0, dtype=np.float32)
    seconds = len(mono) / rate if rate else 0.0
    if audio.shape[1] > 1:
        findings.append(Finding("ok", f"{audio.shape[1]} channels (mixed down to mono)"))
    if rate < 8000:
        findings.append(Finding("error", f"sample rate {rate} Hz is too low; record at 24000 Hz or more"))
    elif rate < 16000:
        findings.append(Finding("warning", f"sample rate {rate} Hz is low; 24000 Hz or more sounds better"))
    else:
        findings.append(Finding("ok", f"sample rate {rate} Hz (resampled to 24000 Hz)"))
    if seconds < MIN_CLIP_SECONDS:
        findings.append(
            Finding("error", f"clip is {seconds:.2f} s; at least {MIN_CLIP_SECONDS:.0f} s is needed")
        )
    elif seconds > MAX_CLIP_SECONDS_WARN:
        findings.append(
            Finding(
                "warning",
                f"clip is {seconds:.1f} s; keep it under {MAX_CLIP_SECONDS_WARN:.0f} s "
                "(longer clips slow every request and may be cut)",
            )
        )
    else:
        findings.append(Finding("ok", f"length {seconds:.2f} s"))

    if len(mono):
        peak = float(np.max(np.abs(mono)))
        if peak < 1e-4:
            findings.append(Finding("error", "clip is silent"))
        else:
            frame = max(1, int(rate * 0.02))
            usable = len(mono) // frame * frame
            frames = mono[:usable].reshape(-1, frame) if usable else mono.reshape(1, -1)
            rms_db = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-10)
            quiet = rms_db < -45.0
            quiet_fraction = float(np.mean(quiet))
            lead = int(np.argmax(~quiet)) * frame / rate
            trail = int(np.argmax(~quiet[::-1])) * frame / rate
            if quiet_fraction > 0.6:
                findings.append(Finding("warning", f"{quiet_fraction:.0%} of the clip is near silence"))
            if lead > 1.0 or trail > 1.0:
                findings.append(
                    Finding(
                        "warning",
                        f"long silence at the edges ({lead:.1f} s start, {trail:.1f} s end); trim it",
                    )
                )
            clipped = float(np.mean(np.abs(mono) >= 0.999))
            if clipped > 0.001:
                findings.append(Finding("warning", f"{clipped:.1%} of samples are clipped; record less loud"))
            if peak < 0.05:
                findings.append(Finding("warning", f"clip is very quiet (peak {peak:.3f})"))
    if transcript and seconds >= MIN_CLIP_SECONDS:
        rate_cps = len(transcript) / seconds
        if rate_cps > 35:
            findings.append(
                Finding("warning", f"transcript looks too long for the clip ({rate_cps:.0f} chars/s)")
            )
        elif rate_cps < 1.5:
            findings.append(
                Finding("warning", f"transcript looks too short for the clip ({rate_cps:.1f} chars/s)")
            )
    return findings
