"""Shutdown, which the server owns (server/app.py): SIGTERM and SIGINT cut running synthesis short and exit 0
in bounded time, also while a voice cache file is being written (no partial file is left); on
``stdio://`` the end of input finishes the answers asked for first.
"""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    PYTHON,
    ROOT,
    audio_of,
    connect,
    expected_seconds,
    free_port,
    make_voice,
    start_server,
)
from wyoming.event import Event, read_event, write_event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeVoice

LONG_TEXT = "A long answer keeps the engine busy while the server is asked to stop. " * 12


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_during_synthesis_exits_zero_in_bounded_time(
    tiny_model_dir: Path, voices_dir: Path, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    server = start_server(tiny_model_dir, voices_dir, tmp_path, ["--shutdown-timeout", "5", "--no-warmup"])
    proc = server.proc
    assert proc is not None
    try:

        async def go() -> tuple[float, list[Event | None]]:
            async with connect(server.uri) as client:
                await client.write_event(
                    Synthesize(text=LONG_TEXT, voice=SynthesizeVoice(name="slow")).event()
                )
                first = await client.read_event()
                assert first is not None and first.type == "audio-start"
                proc.send_signal(stop_signal)
                sent = time.monotonic()
                rest: list[Event | None] = []
                while (event := await client.read_event()) is not None:
                    rest.append(event)
                return sent, rest

        sent, rest = asyncio.run(go())
        status = proc.wait(timeout=20)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == 0, server.log()
    assert elapsed < 15, elapsed
    assert "audio-stop" not in [e.type for e in rest if e is not None], "synthesis should have been cut short"
    assert "Stopped" in server.log()


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shutdown-voices")
    make_voice(root, "tone")
    return root


SLOW_SAVE_LAUNCHER = """
import pathlib, sys, time
from wyoming_ishowtts.voices import cache
real_save = cache.write_clip
def slow_save(clip, path):  # a slow disk: half the file is written, then the writer stalls
    real_save(clip, path)
    data = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(data[: len(data) // 2])
    pathlib.Path(sys.argv[1]).write_text(str(path))
    time.sleep(120)
cache.write_clip = slow_save
from wyoming_ishowtts.server.cli import main
main(sys.argv[2:])
"""


def test_sigterm_while_a_voice_cache_file_is_written_leaves_no_partial_file(
    tiny_model_dir: Path, voices: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "saving"
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-c", SLOW_SAVE_LAUNCHER, str(marker), "--uri", f"tcp://127.0.0.1:{free_port()}"]
    cmd += [
        "--model-dir",
        str(tiny_model_dir),
        "--device",
        "cpu",
        "--voices-dir",
        str(voices),
        "--voice",
        "tone",
    ]
    cmd += ["--cache-dir", str(cache), "--no-builtin-voice", "--no-warmup", "--shutdown-timeout", "2"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():  # the default voice is prepared (and cached) at start-up
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        partial = Path(marker.read_text())
        assert partial.exists() and partial.parent == cache / "voices"
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        status = proc.wait(30)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == 0, log.read_text()
    assert elapsed < 2 + 8, elapsed
    assert list((cache / "voices").iterdir()) == [], "a partial cache file was left behind"
    assert "removing it" in log.read_text()


def test_stdio_answers_what_was_asked_then_exits_zero_at_end_of_input(
    tiny_model_dir: Path, voices_dir: Path, tmp_path: Path
) -> None:
    """``--uri stdio://``: describe and two synthesize requests, then end of input straight away. The server
    (whose model is still loading) finishes both answers, in order, and exits 0."""
    texts = ["Hello over standard input.", "And a second answer."]
    requests = [Describe().event()] + [
        Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event() for text in texts
    ]
    stdin = b"".join(_event_bytes(event) for event in requests)
    args = ["--uri", "stdio://", "--model-dir", str(tiny_model_dir), "--device", "cpu", "--nfe", "4"]
    args += ["--voices-dir", str(voices_dir), "--voice", "tone", "--cache-dir", str(tmp_path / "cache")]
    args += ["--no-builtin-voice", "--no-warmup", "--shutdown-timeout", "240"]
    result = subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts", *args], cwd=ROOT, input=stdin, capture_output=True, timeout=300
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    events = []
    out = io.BytesIO(result.stdout)
    while (event := read_event(out)) is not None:
        events.append(event)
    types = [e.type for e in events]
    assert types[0] == "info", types
    assert types.count("audio-start") == 2 and types.count("audio-stop") == 2 and "error" not in types, types
    first_stop = types.index("audio-stop")
    for text, answer in zip(texts, [events[1 : first_stop + 1], events[first_stop + 1 :]], strict=True):
        seconds = len(audio_of(answer)) / 2 / 24000
        assert 0.6 * expected_seconds(text) < seconds < 1.4 * expected_seconds(text), (text, seconds)


def _event_bytes(event: Event) -> bytes:
    buffer = io.BytesIO()
    write_event(event, buffer)
    return buffer.getvalue()
