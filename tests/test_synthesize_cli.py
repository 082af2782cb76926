"""`python -m wyoming_ishowtts.synthesize`: try a voice without a server, and hear what the server would say."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import numpy as np
import soundfile
from conftest import (
    PYTHON,
    ROOT,
    TONE_TRANSCRIPT,
    audio_of,
    connect,
    expected_samples,
    make_voice,
    read_until,
)
from inprocess import run_server
from wyoming.tts import Synthesize, SynthesizeVoice

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions
from wyoming_ishowtts.engine.reference import load_audio
from wyoming_ishowtts.server.pcm import float_to_int16_bytes


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts.synthesize", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_writes_a_wav(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The WAV holds the engine's audio for the text: exactly its length, and its samples."""
    text = "Hello there, this is a test."
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
        text,
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(out, dtype="int16")
    assert rate == 24000 and audio.ndim == 1
    assert len(audio) == expected_samples(text)
    # What the engine says for the same text, voice, steps and seed, as 16-bit samples.
    engine = Engine.load(EngineSettings(model_dir=tiny_model_dir, device="cpu", nfe=2))
    prepared = engine.prepare_voice(*load_audio(voice / "reference.wav"), text=TONE_TRANSCRIPT)
    wave = engine.synthesize_all(prepared, text, SynthesisOptions(seed=3))
    assert np.array_equal(audio, np.frombuffer(float_to_int16_bytes(wave), dtype="<i2"))
    assert f"{len(audio) / rate:.2f} s of audio" in result.stdout and "RTF" in result.stdout


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


def test_the_cli_and_the_server_give_the_same_samples(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A voice whose voice.toml sets seed, nfe and speed: the CLI (no flags) and the server apply them alike,
    so the same text comes out as the same 16-bit samples."""
    voices = tmp_path / "voices"
    make_voice(voices, "tone", toml="seed = 7\nnfe = 3\nspeed = 0.9\n")
    text = "The command line and the server speak alike."
    out = tmp_path / "cli.wav"
    result = run_cli(
        "--model-dir", str(tiny_model_dir), "--voice-dir", str(voices / "tone"), "--device", "cpu",
        "--precision", "fp32", "--text", text, "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cli, rate = soundfile.read(out, dtype="int16")
    assert rate == 24000

    engine = Engine.load(EngineSettings(model_dir=tiny_model_dir, device="cpu", precision="fp32"))
    with run_server(engine, voices, tmp_path / "cache") as server:

        async def ask() -> bytes:
            async with connect(server.uri) as client:
                await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event())
                return audio_of(await read_until(client, "audio-stop"))

        served = np.frombuffer(asyncio.run(ask()), dtype="<i2")
    assert len(cli) == expected_samples(text, speed=0.9)
    assert np.array_equal(cli, served), (len(cli), len(served))
