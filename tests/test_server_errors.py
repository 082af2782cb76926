"""Every client mistake gets an ``error`` event with a code, and ends in a way every real client notices.

A plain ``synthesize`` that fails is followed by the connection closing (Home Assistant's non-streaming
reader ignores ``error`` and waits for ``audio-stop`` or a close, with no timeout); a stream still ends
with ``synthesize-stopped`` and keeps its connection; mistakes that ask for no audio keep the connection.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, SERVER_ARGS, ServerProcess, connect, read_until, serve_then_stop, start_server
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from ishowtts_dev.wyoming_client import WyomingConnection
from wyoming_ishowtts import errors


async def _then_describe(client: WyomingConnection) -> None:
    await client.write_event(Describe().event())
    events = await read_until(client, "info")
    assert events[-1].type == "info"


def run_case(server: ServerProcess, events: list[Event | bytes], last: str = "error") -> list[Event]:
    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            for event in events:
                if isinstance(event, bytes):
                    await client.write_raw(event)
                else:
                    await client.write_event(event)
            answer = await read_until(client, last)
            await _then_describe(client)
            return answer

    return asyncio.run(go())


def first_error(events: list[Event]) -> Event:
    return next(e for e in events if e.type == "error")


# The server must close within this long after the error; HA itself would wait forever.
PROMPT_CLOSE_SECONDS = 1.0


def run_failed_request(server: ServerProcess, events: list[Event | bytes]) -> tuple[list[Event], float]:
    """Send a failing plain request; read everything until the server closes the connection.

    Returns the events and how long the connection stayed open after the ``error`` arrived.  The read
    timeout is generous so that a server that keeps the connection open fails the test, not hangs it.
    """

    async def go() -> tuple[list[Event], float]:
        async with connect(server.uri) as client:
            for sent in events:
                if isinstance(sent, bytes):
                    await client.write_raw(sent)
                else:
                    await client.write_event(sent)
            answer: list[Event] = []
            error_at = None
            while True:
                try:
                    event = await asyncio.wait_for(client.read_event(), 10)
                except asyncio.TimeoutError:
                    raise AssertionError(
                        f"connection still open 10 s after {[e.type for e in answer]}"
                    ) from None
                if event is None:
                    assert error_at is not None, f"closed without an error: {[e.type for e in answer]}"
                    return answer, time.monotonic() - error_at
                answer.append(event)
                if event.type == "error" and error_at is None:
                    error_at = time.monotonic()

    answer, open_after_error = asyncio.run(go())

    # ... and the server goes on serving everyone else.
    async def then() -> None:
        async with connect(server.uri) as client:
            await _then_describe(client)

    asyncio.run(then())
    return answer, open_after_error


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([Synthesize(text="Hello.", voice=SynthesizeVoice(name="nobody")).event()], "unknown-voice"),
        ([Synthesize(text="Hello.", voice=SynthesizeVoice(name="../tone")).event()], "unknown-voice"),
        ([Synthesize(text="").event()], "empty-text"),
        ([Synthesize(text=" \n\t ").event()], "empty-text"),
        ([Synthesize(text="x" * 2001).event()], "text-too-long"),
        ([Event(type="synthesize", data={"voice": {"name": "tone"}})], "malformed-event"),
        ([Event(type="synthesize", data={"text": 5})], "malformed-event"),
        ([b'{"type": "synthesize", "data_length": 5}\n{oops'], "malformed-event"),
        (
            [Synthesize(text="Broken reference audio.", voice=SynthesizeVoice(name="broken")).event()],
            "voice-invalid",
        ),
    ],
    ids=[
        "unknown-voice",
        "voice-name-is-not-a-path",
        "empty",
        "whitespace",
        "too-long",
        "synthesize-without-text",
        "text-not-a-string",
        "bad-data-block",
        "broken-reference-audio",
    ],
)
def test_failed_synthesize_gets_an_error_then_the_connection_closes(
    server: ServerProcess, events: list[Event | bytes], code: str
) -> None:
    answer, open_after_error = run_failed_request(server, events)
    assert [e.type for e in answer] == ["error"]
    assert answer[0].data["code"] == code
    assert answer[0].data["text"]
    assert open_after_error < PROMPT_CLOSE_SECONDS


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([SynthesizeChunk(text="Hello").event()], "no-stream"),
        ([SynthesizeStop().event()], "no-stream"),
        ([Event(type="no-such-event")], "unknown-event"),
        ([b"this is not json\n"], "malformed-event"),
        ([b"[1, 2, 3]\n"], "malformed-event"),
    ],
    ids=["chunk-without-start", "stop-without-start", "unknown-event", "not-json", "header-not-an-object"],
)
def test_mistake_that_asks_for_no_audio_keeps_the_connection(
    server: ServerProcess, events: list[Event | bytes], code: str
) -> None:
    answer = run_case(server, events)
    error = first_error(answer)
    assert error.data["code"] == code
    assert error.data["text"]
    assert "audio-start" not in [e.type for e in answer]


def test_unknown_voice_in_a_stream_still_ends_the_stream(server: ServerProcess) -> None:
    """HA's streaming reader ignores errors and waits for synthesize-stopped, so it must come."""
    answer = run_case(
        server,
        [
            SynthesizeStart(voice=SynthesizeVoice(name="nobody")).event(),
            SynthesizeChunk(text="Hello there.").event(),
            SynthesizeStop().event(),
        ],
        last="synthesize-stopped",
    )
    assert [e.type for e in answer] == ["error", "synthesize-stopped"]
    assert answer[0].data["code"] == "unknown-voice"


def test_empty_stream(server: ServerProcess) -> None:
    answer = run_case(
        server,
        [SynthesizeStart().event(), SynthesizeChunk(text="   ").event(), SynthesizeStop().event()],
        last="synthesize-stopped",
    )
    assert [e.type for e in answer] == ["error", "synthesize-stopped"]
    assert answer[0].data["code"] == "empty-text"


def test_streamed_text_over_the_limit(server: ServerProcess) -> None:
    answer = run_case(
        server,
        [
            SynthesizeStart(voice=SynthesizeVoice(name="tone")).event(),
            *[SynthesizeChunk(text="word " * 100).event() for _ in range(5)],
            SynthesizeStop().event(),
        ],
        last="synthesize-stopped",
    )
    assert first_error(answer).data["code"] == "text-too-long"
    assert answer[-1].type == "synthesize-stopped"


IDLE_SECONDS = 2.0


@pytest.fixture(scope="module")
def short_idle_server(
    tiny_model_dir: Path, voices_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server whose streams time out after IDLE_SECONDS (the shared one has the default 60 s)."""
    extra = [*SERVER_ARGS, "--stream-idle-timeout", f"{IDLE_SECONDS:g}", "--no-warmup"]
    yield from serve_then_stop(
        start_server(tiny_model_dir, voices_dir, tmp_path_factory.mktemp("idle"), extra)
    )


def test_stream_idle_timeout(short_idle_server: ServerProcess) -> None:
    """A stream that never stops is ended with an error after --stream-idle-timeout, and freed."""
    server = short_idle_server

    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tone")).event())
            await client.write_event(SynthesizeChunk(text="Waiting for more").event())
            answer = await read_until(client, "synthesize-stopped")
            # The stream is gone: a late chunk is an error, and the connection still works.
            await client.write_event(SynthesizeChunk(text=" text.").event())
            answer.extend(await read_until(client, "error"))
            await _then_describe(client)
            return answer

    answer = asyncio.run(go())
    errors = [e.data["code"] for e in answer if e.type == "error"]
    assert errors == ["stream-idle-timeout", "no-stream"]


def test_oversized_event_closes_only_that_connection(server: ServerProcess) -> None:
    async def go() -> tuple[Event | None, Event | None]:
        async with connect(server.uri) as client:
            await client.write_raw(
                json.dumps({"type": "synthesize", "payload_length": 50_000_000}).encode() + b"\n"
            )
            error = await client.read_event()
            closed = await client.read_event()
        async with connect(server.uri) as client:
            await client.write_event(Describe().event())
            info = await client.read_event()
        assert closed is None
        return error, info

    error, info = asyncio.run(go())
    assert error is not None and error.type == "error" and error.data["code"] == "malformed-event"
    assert info is not None and info.type == "info"


# Codes defined in errors.py that never reach a client: the base classes, a model that cannot load (the
# server exits instead), and a cancellation (the client is gone or the server is stopping).
NEVER_SENT = {"error", "voice-error", "model-load", "cancelled"}


def test_every_error_code_is_defined_once_and_documented() -> None:
    """docs/server.md's table of codes and errors.py name the same codes; no two error classes share one."""
    classes: list[type[errors.IShowTTSError]] = []
    pending: list[type[errors.IShowTTSError]] = [errors.IShowTTSError]
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    codes = [cls.code for cls in classes if cls.__module__ == errors.__name__]
    assert len(codes) == len(set(codes)), sorted(codes)
    section = (ROOT / "docs" / "server.md").read_text(encoding="utf-8").split("## Errors", 1)[1]
    rows = section.split("|---|---|", 1)[1]  # the table's body, below its header
    documented = re.findall(r"^\| (`[a-z-]+`(?:, `[a-z-]+`)*) \|", rows, re.MULTILINE)
    documented_codes = {code.strip("`") for row in documented for code in row.split(", ")}
    assert documented_codes == set(codes) - NEVER_SENT
