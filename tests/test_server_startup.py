"""Start-up and shutdown of the real server process."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, ROOT, audio_of, connect, expected_seconds, read_until, start_server
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


def test_model_that_cannot_load_exits_nonzero(voices_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="server exited with 1"):
        start_server(empty, voices_dir, tmp_path / "work")


def test_version_and_help() -> None:
    version = subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts", "--version"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert version.stdout.strip()
    helptext = subprocess.run(
        [PYTHON, "-m", "wyoming_ishowtts", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for option in (
        "--uri",
        "--voices-dir",
        "--model-dir",
        "--nfe",
        "--output-rate",
        "--zeroconf",
        "--max-text-chars",
    ):
        assert option in helptext


def test_output_rate_is_resampled(tiny_model_dir: Path, voices_dir: Path, tmp_path: Path) -> None:
    server = start_server(
        tiny_model_dir,
        voices_dir,
        tmp_path,
        ["--output-rate", "16000", "--samples-per-chunk", "512", "--no-warmup"],
    )
    text = "The audio of this sentence is sent at sixteen kilohertz."
    try:

        async def go() -> list[Event]:
            async with connect(server.uri) as client:
                await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event())
                return await read_until(client, "audio-stop")

        events = asyncio.run(go())
    finally:
        assert server.stop() == 0
    formats = {
        (e.data["rate"], e.data["width"], e.data["channels"])
        for e in events
        if e.type.startswith("audio-") and e.type != "audio-stop"
    }
    assert formats == {(16000, 2, 1)}
    assert all(len(e.payload or b"") <= 1024 for e in events if e.type == "audio-chunk")
    seconds = len(audio_of(events)) / 2 / 16000
    expected = expected_seconds(text)
    assert 0.6 * expected < seconds < 1.4 * expected, (seconds, expected)


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
