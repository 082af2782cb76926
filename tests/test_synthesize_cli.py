"""`python -m wyoming_ishowtts.synthesize`: try a voice without a server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import soundfile
from conftest import PYTHON, ROOT, make_voice


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts.synthesize", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_writes_a_wav(tiny_model_dir: Path, tmp_path: Path) -> None:
    voice = make_voice(tmp_path, "alice")
    out = tmp_path / "out.wav"
    result = run_cli(
        "--model-dir",
        str(tiny_model_dir),
        "--voice-dir",
        str(voice),
        "--device",
        "cpu",
        "--nfe",
        "2",
        "--seed",
        "3",
        "--text",
        "Hello there, this is a test.",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(out)
    assert rate == 24000 and audio.ndim == 1
    assert 0.5 < len(audio) / rate < 10
    assert abs(audio).max() > 0
    assert "RTF" in result.stdout


def test_missing_voice_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = run_cli(
        "--model-dir",
        str(tiny_model_dir),
        "--voice-dir",
        str(tmp_path / "nobody"),
        "--text",
        "Hello.",
        "-o",
        str(tmp_path / "out.wav"),
    )
    assert result.returncode == 1
    assert "error:" in result.stderr and "reference.txt" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_step_count_is_an_argument_error(tmp_path: Path) -> None:
    result = run_cli(
        "--voice-dir", str(tmp_path), "--text", "Hi.", "-o", str(tmp_path / "out.wav"), "--nfe", "x"
    )
    assert result.returncode == 2
    assert "argument --nfe" in result.stderr and "auto" in result.stderr
    assert "Traceback" not in result.stderr
