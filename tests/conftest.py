"""Shared fixtures: a tiny random model, synthetic voices, and the real server as a subprocess.

The server tests talk to ``python -m wyoming_ishowtts`` over loopback TCP exactly as Home Assistant
would, with the real engine running a tiny random model on the CPU (no download needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from wyoming.event import Event
from wyoming.info import Describe

from ishowtts_dev.launcher import ServerProcess as ServerProcess
from ishowtts_dev.launcher import free_port as free_port
from ishowtts_dev.wyoming_client import WyomingConnection

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TONE_TRANSCRIPT = "This is a short test voice."
TONE_SECONDS = 3.0
START_TIMEOUT = 120.0
READ_TIMEOUT = 60.0


def write_tone_clip(
    path: Path, seconds: float = TONE_SECONDS, rate: int = 24000, silent: bool = False
) -> None:
    """A speech-like test clip: harmonic tone, syllable-rate amplitude modulation, two short gaps."""
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.15 * np.sin(2 * np.pi * 360 * t)
    audio *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    for start in (0.3, 0.65):
        audio[int(start * len(t)) : int((start + 0.05) * len(t))] = 0.0
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
) -> Path:
    directory = root / name
    write_tone_clip(directory / "reference.wav", seconds=seconds)
    (directory / "reference.txt").write_text(transcript + "\n", encoding="utf-8")
    if toml is not None:
        (directory / "voice.toml").write_text(toml, encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts.tools.random_model", "--size", "tiny", str(out)],
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    return out


@pytest.fixture(scope="session")
def voices_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voices")
    make_voice(root, "tone", toml='description = "Test tone"\nlanguages = ["en"]\n')
    make_voice(root, "tone-zh", transcript="这是一个测试声音。", toml='languages = ["zh"]\n')
    # Many sampler steps: a request that stays busy long enough to overlap other requests.
    make_voice(root, "slow", toml="nfe = 16\nseed = 1\n")
    broken = root / "broken"
    broken.mkdir()
    (broken / "reference.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 10)
    (broken / "reference.txt").write_text("Broken clip.\n", encoding="utf-8")
    return root


async def describe(uri: str, timeout: float = 5.0) -> Event | None:
    async with WyomingConnection(uri, connect_timeout=timeout, read_timeout=timeout) as client:
        await client.write_event(Describe().event())
        return await client.read_event()


def start_server(
    model_dir: Path, voices: Path, workdir: Path, extra: list[str] | None = None, wait_ready: bool = True
) -> ServerProcess:
    """Start the server and return once it answers ``describe`` (and, by default, has loaded the model)."""
    args = ["--model-dir", str(model_dir), "--device", "cpu", "--nfe", "4", "--voices-dir", str(voices)]
    args += ["--voice", "tone", "--cache-dir", str(workdir / "cache"), "--no-builtin-voice", "--debug"]
    server = ServerProcess([*args, *(extra or [])], workdir / "server.log", cwd=ROOT, stop_timeout=30.0)
    server.start()
    deadline = time.monotonic() + START_TIMEOUT
    answered = False
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"server exited with {server.stop()}:\n{server.log()}")
        if not answered:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                event = asyncio.run(describe(server.uri, timeout=2.0))
                answered = event is not None and event.type == "info"
        if answered and (not wait_ready or "Model ready" in server.log()):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not start within {START_TIMEOUT} s:\n{server.log()}")


# Limits small enough that tests can reach them quickly.
SERVER_ARGS = [
    "--max-text-chars",
    "2000",
    "--max-queued-per-client",
    "2",
    "--max-queued-total",
    "6",
    "--max-connections",
    "12",
    "--stream-idle-timeout",
    "4",
    "--samples-per-chunk",
    "1024",
    "--threads",
    "1",
]


@pytest.fixture(scope="session")
def server(
    tiny_model_dir: Path, voices_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    proc = start_server(tiny_model_dir, voices_dir, tmp_path_factory.mktemp("server"), SERVER_ARGS)
    yield proc
    status = proc.stop()
    assert status == 0, f"server exited with {status}:\n{proc.log()}"


# -- client helpers --------------------------------------------------------------------------------


def connect(uri: str) -> WyomingConnection:
    """A client connection (``async with``, or ``connect``/``disconnect``) whose reads time out."""
    return WyomingConnection(uri, connect_timeout=10.0, read_timeout=READ_TIMEOUT)


async def read_until(client: WyomingConnection, last: str) -> list[Event]:
    """Read events up to and including the first of type ``last``."""
    events: list[Event] = []
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed before {last!r}; got {[e.type for e in events]}"
        events.append(event)
        if event.type == last:
            return events


def audio_of(events: list[Event]) -> bytes:
    return b"".join(e.payload or b"" for e in events if e.type == "audio-chunk")


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def expected_seconds(
    text: str, transcript: str = TONE_TRANSCRIPT, ref_seconds: float = TONE_SECONDS
) -> float:
    """Upstream's duration rule: generated frames = ref_frames * gen_bytes / ref_bytes."""
    return ref_seconds * utf8_len(text) / (utf8_len(transcript) + 2)
