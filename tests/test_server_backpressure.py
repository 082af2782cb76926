"""Backpressure: what a client that stops reading, or a stream that goes quiet, may hold.

- A client that stops reading does not make the server synthesize (and buffer) its answer without
  limit, other clients keep being served, and the stalled client still gets all of its audio once it
  reads again; ``describe`` is answered meanwhile.
- An idle stream's queue slot is given back when it times out.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    TONE_TRANSCRIPT,
    check_audio,
    connect,
    make_voice,
    read_until,
)
from inprocess import run_server
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from wyoming_ishowtts.engine import Engine, EngineSettings
from wyoming_ishowtts.engine.reference import load_audio
from wyoming_ishowtts.text.english_numbers import cardinal

SENTENCE = "Sentence number {n} of a long answer that nobody is listening to right now."
# Numbers in words: the text is spoken as it is written (a digit would be put into words first).
STALLED_TEXT = " ".join(SENTENCE.format(n=cardinal(n)) for n in range(1, 61))


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(EngineSettings(model_dir=tiny_model_dir, device="cpu", precision="fp32", nfe=2))


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hardening-voices")
    make_voice(root, "tone")
    return root


def stalled_text_chunks(engine: Engine, voices: Path) -> int:
    """How many text chunks (so pieces) STALLED_TEXT makes in the tone voice."""
    voice = engine.prepare_voice(*load_audio(voices / "tone" / "reference.wav"), text=TONE_TRANSCRIPT)
    return len(engine.plan(voice, STALLED_TEXT))


def count_pieces(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the samples of each piece the engine produces, in order."""
    synthesized: list[int] = []
    original = engine.run_batch

    def counting(*args: Any, **kwargs: Any) -> Any:
        waves = original(*args, **kwargs)
        synthesized.extend(len(wave) for job_waves in waves for wave in job_waves)
        return waves

    monkeypatch.setattr(engine, "run_batch", counting)
    return synthesized


async def stalled_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client with a small receive buffer that asks for STALLED_TEXT and then reads nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    await async_write_event(Synthesize(text=STALLED_TEXT, voice=SynthesizeVoice(name="tone")).event(), writer)
    return reader, writer


async def wait_until_stalled(synthesized: list[int], chunks: int) -> int:
    """Wait until the engine, having made a first piece, has made nothing for 2 s and for three times the
    longest gap between its pieces so far, short of the whole answer: the stall, once the socket and the
    per-request buffer are full. Returns how many pieces were made by then. (A quiet time shorter than
    that is a slow piece on a loaded machine, not a stall.)"""
    last, since = 0, time.monotonic()
    longest_gap = 0.0
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "the engine never stopped for the stalled client"
        now = time.monotonic()
        if len(synthesized) != last:
            if last:
                longest_gap = max(longest_gap, now - since)
            last, since = len(synthesized), now
        if last and now - since >= max(2.0, 3 * longest_gap):
            break
        await asyncio.sleep(0.1)
    assert 0 < last < chunks, f"{last} of {chunks} chunks synthesized for a client that reads nothing"
    return last


def test_client_that_stops_reading_is_not_buffered_without_limit(
    engine: Engine, voices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    max_buffered = 2
    chunks = stalled_text_chunks(engine, voices)
    synthesized = count_pieces(engine, monkeypatch)
    with run_server(engine, voices, tmp_path / "cache", max_buffered_pieces=max_buffered) as server:

        async def go() -> None:
            reader, writer = await stalled_client(server.port)
            stalled_at = await wait_until_stalled(synthesized, chunks)
            # What may legitimately be held: the pieces the worker may run ahead, the one being written
            # and one in the write lock's queue, plus the bytes in asyncio's write buffer and the
            # kernel's socket buffers (the server's send buffer at its maximum, the client's receive one).
            pieces = sorted(synthesized[:stalled_at], reverse=True)
            held = max_buffered + 2 + engine.settings.batch_chunks
            wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
            in_socket_bytes = 2 * sum(pieces[held:])
            assert in_socket_bytes <= wmem_max + 2 * 16384 + 65536, (stalled_at, pieces, wmem_max)

            # Meanwhile the engine serves everyone else.
            other = "Another client is served at once."
            async with connect(server.uri) as client:
                await client.write_event(Synthesize(text=other, voice=SynthesizeVoice(name="tone")).event())
                check_audio(await asyncio.wait_for(read_until(client, "audio-stop"), 30), other)
            assert len(synthesized) == stalled_at + 1, "the stalled request ran ahead"

            # Nothing was dropped: once it reads again, the stalled client gets its whole answer.
            events: list[Event] = []

            async def read_answer() -> None:
                while not events or events[-1].type != "audio-stop":
                    event = await async_read_event(reader)
                    assert event is not None, "connection closed"
                    events.append(event)

            await asyncio.wait_for(read_answer(), 120)  # asyncio.timeout needs Python 3.11
            writer.close()
            check_audio(events, STALLED_TEXT)
            assert len(synthesized) == chunks + 1

        asyncio.run(go())


def test_idle_stream_gives_its_queue_slot_back(engine: Engine, voices: Path, tmp_path: Path) -> None:
    """With one request allowed per connection, the connection can synthesize again after the timeout."""
    with run_server(
        engine,
        voices,
        tmp_path / "cache",
        stream_idle_timeout=1.0,
        max_queued_per_client=1,
        max_queued_total=1,
    ) as server:

        async def go() -> list[Event]:
            async with connect(server.uri) as client:
                await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tone")).event())
                await client.write_event(SynthesizeChunk(text="Then the client goes quiet").event())
                ended = await read_until(client, "synthesize-stopped")
                assert [e.data.get("code") for e in ended if e.type == "error"] == ["stream-idle-timeout"]
                assert server.worker.stats() == {"open_requests": {}, "queued_segments": {}}
                text = "The slot is free again."
                await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event())
                answer = await read_until(client, "audio-stop")
                check_audio(answer, text)
                return answer

        asyncio.run(go())


def test_describe_is_answered_while_a_client_is_stalled(
    engine: Engine, voices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stalled client of the first test blocks only its own connection, never the server's loop: the
    engine has stopped for it (its answer held up in the socket) when describe is asked, and still has when
    the answer comes."""
    chunks = stalled_text_chunks(engine, voices)
    synthesized = count_pieces(engine, monkeypatch)
    with run_server(engine, voices, tmp_path / "cache", max_buffered_pieces=1) as server:

        async def go() -> float:
            _, writer = await stalled_client(server.port)
            stalled_at = await wait_until_stalled(synthesized, chunks)
            async with connect(server.uri) as client:
                started = time.monotonic()
                await client.write_event(Describe().event())
                await read_until(client, "info")
                elapsed = time.monotonic() - started
            assert len(synthesized) == stalled_at, "the client was not stalled while describe was answered"
            writer.close()
            return elapsed

        assert asyncio.run(go()) < 0.5


def test_a_request_frees_its_slot_before_the_client_sees_its_end(
    engine: Engine, voices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When `audio-stop` (plain) or `synthesize-stopped` (stream) is written, the request no longer counts
    against its client's limit: a client that sends its next request as soon as it reads the end is never
    refused as over it. Checked at the moment each end event is written, so not by a race."""
    from wyoming_ishowtts.server import handler

    with run_server(engine, voices, tmp_path / "cache", max_queued_per_client=1) as server:
        open_at_end: dict[str, dict[int, int]] = {}
        write = handler.async_write_event

        async def noting_the_end(event: Event, writer: Any) -> None:
            if event.type in ("audio-stop", "synthesize-stopped"):
                open_at_end[event.type] = server.worker.stats()["open_requests"]
            await write(event, writer)

        monkeypatch.setattr(handler, "async_write_event", noting_the_end)

        async def go() -> None:
            async with connect(server.uri) as client:
                voice = SynthesizeVoice(name="tone")
                await client.write_event(Synthesize(text="Plain.", voice=voice).event())
                await read_until(client, "audio-stop")
                await client.write_event(SynthesizeStart(voice=voice).event())
                await client.write_event(SynthesizeChunk(text="Streamed.").event())
                await client.write_event(SynthesizeStop().event())
                await read_until(client, "synthesize-stopped")

        asyncio.run(go())
    assert open_at_end == {"audio-stop": {}, "synthesize-stopped": {}}
