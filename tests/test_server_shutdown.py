"""Shutdown, which the server owns (server/app.py), on tcp:// and stdio://: SIGTERM, SIGINT and the end of
input on stdio finish the answers asked for (within --shutdown-timeout), refuse new ones, and exit 0 in
bounded time, also while a voice cache file is being written (no partial file is left). These tests run in
the floor environment too (wyoming 1.7, which has no stop handling of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import (
    PYTHON,
    ROOT,
    START_TIMEOUT,
    check_audio,
    connect,
    free_port,
    make_voice,
    read_until,
    start_server,
)
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeVoice

TEXT = "An answer that is still being spoken when the server is asked to stop. " * 3
LONG_TEXT = "A long answer keeps the engine busy while the server is asked to stop. " * 12


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_finishes_the_answer_asked_for_then_exits_zero(
    tiny_model_dir: Path, voices_dir: Path, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """tcp://: a stop signal while an answer is being synthesized. The answer is finished in full, a request
    made after the signal is refused ``busy``, then the connections close and the process exits 0."""
    server = start_server(tiny_model_dir, voices_dir, tmp_path, ["--shutdown-timeout", "120", "--no-warmup"])
    proc = server.proc
    assert proc is not None
    try:

        async def go() -> tuple[list[Event], Event | None, Event | None, float]:
            async with connect(server.uri) as client, connect(server.uri) as late:
                await late.write_event(Describe().event())  # connected before the signal
                assert (await late.read_event()) is not None
                await client.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name="slow")).event())
                first = await client.read_event()
                assert first is not None and first.type == "audio-start"
                proc.send_signal(stop_signal)
                await asyncio.to_thread(server.wait_for_log, "Stopping: finishing", 30)
                await late.write_event(
                    Synthesize(text="Too late.", voice=SynthesizeVoice(name="tone")).event()
                )
                refused = await late.read_event()
                answer = [first, *await read_until(client, "audio-stop")]
                finished = time.monotonic()
                return answer, refused, await client.read_event(), finished

        answer, refused, after, finished = asyncio.run(go())
        status = proc.wait(timeout=30)
        exited = time.monotonic() - finished
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == 0, server.log()
    check_audio(answer, TEXT)
    assert refused is not None and refused.type == "error" and refused.data["code"] == "busy", refused
    assert after is None, "the connection stays open after the answer"
    assert exited < 10, exited
    assert "Stopped" in server.log()


def test_answers_still_running_at_the_shutdown_timeout_are_cut_short(
    tiny_model_dir: Path, voices_dir: Path, tmp_path: Path
) -> None:
    """--shutdown-timeout bounds the wait for answers: with 0, a running synthesis is cancelled at once."""
    server = start_server(tiny_model_dir, voices_dir, tmp_path, ["--shutdown-timeout", "0", "--no-warmup"])
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
                proc.send_signal(signal.SIGTERM)
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
    assert elapsed < 10, elapsed
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
    marker = pathlib.Path(sys.argv[1])  # written whole, then renamed: the test never reads it half-written
    marker.with_suffix(".part").write_text(str(path))
    marker.with_suffix(".part").replace(marker)
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


def stdio_command(model_dir: Path, voices: Path, workdir: Path) -> list[str]:
    args = ["--uri", "stdio://", "--model-dir", str(model_dir), "--device", "cpu", "--nfe", "4"]
    args += ["--voices-dir", str(voices), "--voice", "tone", "--cache-dir", str(workdir / "cache")]
    args += ["--no-builtin-voice", "--no-warmup", "--shutdown-timeout", "240", "--debug"]
    return [PYTHON, "-m", "wyoming_ishowtts", *args]


@contextlib.asynccontextmanager
async def stdio_server(command: list[str], log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """The server on ``stdio://`` with its stdin and stdout as pipes (the log goes to `log`); killed if a
    test leaves it running."""
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_answer(proc: asyncio.subprocess.Process, last: str) -> list[Event]:
    """Events from the server's stdout up to and including the first of type `last` (the model may still be
    loading, hence the long timeout)."""
    assert proc.stdout is not None
    events: list[Event] = []
    while not events or events[-1].type != last:
        event = await asyncio.wait_for(async_read_event(proc.stdout), START_TIMEOUT)
        assert event is not None, f"stdout ended before {last!r}; got {[e.type for e in events]}"
        events.append(event)
    return events


def test_stdio_end_of_input_finishes_the_answers_then_exits_zero(
    tiny_model_dir: Path, voices_dir: Path, tmp_path: Path
) -> None:
    """``stdio://``: describe and two synthesize requests, then the end of input straight away, while the
    model is still loading. Both answers are written in full and in order, then stdout ends and the process
    exits 0."""
    texts = ["Hello over standard input.", "And a second answer."]
    log = tmp_path / "server.log"

    async def go() -> tuple[list[Event], list[list[Event]], Event | None, int, float]:
        async with stdio_server(stdio_command(tiny_model_dir, voices_dir, tmp_path), log) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            await async_write_event(Describe().event(), proc.stdin)
            for text in texts:
                await async_write_event(
                    Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event(), proc.stdin
                )
            proc.stdin.close()
            info = await read_answer(proc, "info")
            answers = [await read_answer(proc, "audio-stop") for _ in texts]
            finished = time.monotonic()
            after = await asyncio.wait_for(async_read_event(proc.stdout), 30)
            status = await asyncio.wait_for(proc.wait(), 30)
            return info, answers, after, status, time.monotonic() - finished

    info, answers, after, status, exited = asyncio.run(go())
    assert status == 0, log.read_text()
    assert [e.type for e in info] == ["info"]
    for text, answer in zip(texts, answers, strict=True):
        check_audio(answer, text)
    assert after is None
    assert exited < 10, exited
    assert "End of input" in log.read_text() and "Stopped" in log.read_text()


def test_stdio_sigterm_finishes_the_answer_asked_for_then_exits_zero(
    tiny_model_dir: Path, voices_dir: Path, tmp_path: Path
) -> None:
    """``stdio://`` with its input still open: SIGTERM while an answer is being synthesized. The answer is
    finished in full, then stdout ends and the process exits 0."""
    log = tmp_path / "server.log"

    async def go() -> tuple[list[Event], Event | None, int, float]:
        async with stdio_server(stdio_command(tiny_model_dir, voices_dir, tmp_path), log) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            await async_write_event(
                Synthesize(text=TEXT, voice=SynthesizeVoice(name="slow")).event(), proc.stdin
            )
            first = await read_answer(proc, "audio-start")
            proc.send_signal(signal.SIGTERM)
            answer = first + await read_answer(proc, "audio-stop")
            finished = time.monotonic()
            after = await asyncio.wait_for(async_read_event(proc.stdout), 30)
            status = await asyncio.wait_for(proc.wait(), 30)
            return answer, after, status, time.monotonic() - finished

    answer, after, status, exited = asyncio.run(go())
    assert status == 0, log.read_text()
    check_audio(answer, TEXT)
    assert after is None
    assert exited < 10, exited
    assert "Stopping: finishing" in log.read_text() and "Stopped" in log.read_text()
