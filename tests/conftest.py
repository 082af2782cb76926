"""Shared fixtures: a tiny random model, synthetic voices, and the real server as a subprocess.

The server tests talk to ``python -m wyoming_ishowtts`` over loopback TCP exactly as Home Assistant
would, with the real engine running a tiny random model on the CPU (no download needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from wyoming.event import Event
from wyoming.info import Describe

from ishowtts_dev.clips import TONE_SECONDS as TONE_SECONDS
from ishowtts_dev.clips import TONE_TRANSCRIPT as TONE_TRANSCRIPT
from ishowtts_dev.clips import expected_samples as expected_samples
from ishowtts_dev.clips import make_voice as make_voice
from ishowtts_dev.clips import write_tone_clip as write_tone_clip
from ishowtts_dev.launcher import ServerProcess as ServerProcess
from ishowtts_dev.launcher import free_port as free_port
from ishowtts_dev.wyoming_client import WyomingConnection
from wyoming_ishowtts.engine import Engine, EngineSettings

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
START_TIMEOUT = 120.0
READ_TIMEOUT = 60.0


def flushes_subnormals() -> bool:
    """This thread rounds subnormal floats to zero (the CPU's FTZ/DAZ modes, which -ffast-math code sets)."""
    return sys.float_info.min / 2 == 0.0


@pytest.fixture(autouse=True)
def ieee_subnormals() -> Iterator[None]:
    """Every test leaves the thread computing with subnormal floats. torch 2.5 (the floor; 2.14 does not)
    loads the code that a CPU ``torch.compile`` builds with -ffast-math, which switches the loading thread to
    flush subnormals to zero: later tests in the same process would compute differently, and hypothesis
    refuses to run."""
    yield
    if flushes_subnormals():
        torch.set_flush_denormal(False)


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


# Limits small enough that tests can reach them quickly. The stream idle timeout is the default (60 s), as a
# real client meets it: a stream test waits for its audio as long as a loaded machine takes, and sends only
# what Home Assistant would (no blank chunks to keep a stream open); the timeout's own test starts a server
# with a short one (test_server_errors.py).
SERVER_ARGS = [
    "--max-text-chars",
    "2000",
    "--max-queued-per-client",
    "2",
    "--max-queued-total",
    "6",
    "--max-connections",
    "12",
    "--samples-per-chunk",
    "1024",
    "--threads",
    "1",
]


@pytest.fixture(scope="session")
def server(
    tiny_model_dir: Path, voices_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from serve_then_stop(
        start_server(tiny_model_dir, voices_dir, tmp_path_factory.mktemp("server"), SERVER_ARGS)
    )


def serve_then_stop(proc: ServerProcess) -> Iterator[ServerProcess]:
    """A fixture's body: the server for the tests, then stopped; it must exit 0."""
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


def samples_of(events: list[Event]) -> int:
    """Samples of 16-bit mono audio in the answer."""
    return len(audio_of(events)) // 2


def check_audio(events: list[Event], *segments: str, seconds: float = TONE_SECONDS) -> None:
    """One whole answer, no error, exactly as long as upstream's duration rule says for the text (a plain
    request is one segment; a stream, one per sentence) in a `make_voice` voice of `seconds`."""
    types = [e.type for e in events]
    assert "error" not in types, [e.data for e in events if e.type == "error"]
    assert types.count("audio-start") == 1 and types[-1] == "audio-stop", types
    assert samples_of(events) == expected_samples(*segments, seconds=seconds), segments


class RunsCode:
    """A pickle payload: unpickling it with weights_only=False calls os.mkdir(marker), a stand-in for any
    code a malicious checkpoint or cache file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def nan_forward_once(model: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The model's first sampler step afterwards (`DiT.flow`, what every step calls) returns NaNs (a
    half-precision overflow); the calls are counted.

    Patched on the model's class, so that the calls of a model loaded again (the fp32 fallback reads the
    weights again) are counted too."""
    original = type(model).flow
    calls: list[int] = []

    def nan_once(self: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = original(self, *args, **kwargs)
        calls.append(1)
        return torch.full_like(out, float("nan")) if len(calls) == 1 else out

    monkeypatch.setattr(type(model), "flow", nan_once)
    return calls


def load_tiny_engine(model_dir: Path, precision: str = "fp32") -> Engine:
    """An engine on the CPU at two sampler steps: what the in-process server and engine tests drive."""
    return Engine.load(EngineSettings(model_dir=model_dir, device="cpu", precision=precision, nfe=2))
