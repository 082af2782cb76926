"""Fuzzing the Wyoming event path: against one real server process, and the framing on its own.

The server listens on a home network and reads whatever any device sends, so its parser and its
protocol state machine must hold up against anything: random and mutated events, bad JSON, wrong
types, huge or negative lengths, unknown types, events in the wrong order and plain binary garbage.
Hypothesis writes those byte streams and sends them over raw TCP to one real server subprocess
(the tiny random model, two sampler steps).  Meanwhile a well-formed client in a background thread
keeps asking for speech and checks every answer (format and exact length) and that ``describe`` is
answered at once.  After each test the server must still run, with no traceback or error in the log it
wrote meanwhile (an autouse check: a crash is blamed on the test that caused it); when the server fixture
ends, no thread or socket may have leaked, every connection and queue slot must be free again and the good
client served throughout.  Both checks run with whatever subset of the tests ran (``-k``).

The framing (server/protocol.py) is also fuzzed on its own, on in-memory streams, with the same
byte streams and hostile lines.

Hypothesis runs derandomized with no example database, so every run tries the same inputs and CI
time is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess, audio_of, connect, expected_samples, read_until, start_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from wyoming_ishowtts.errors import MalformedEventError
from wyoming_ishowtts.server.protocol import MAX_EVENT_LINE, BadEvent, FramingLost, read_event

MAX_CONNECTIONS = 16
MAX_QUEUED_PER_CLIENT = 2
MAX_QUEUED_TOTAL = 8
MAX_TEXT_CHARS = 300
FUZZ_ARGS = [
    "--nfe",
    "2",
    "--threads",
    "1",
    "--max-text-chars",
    str(MAX_TEXT_CHARS),
    "--max-queued-per-client",
    str(MAX_QUEUED_PER_CLIENT),
    "--max-queued-total",
    str(MAX_QUEUED_TOTAL),
    "--max-connections",
    str(MAX_CONNECTIONS),
    "--stream-idle-timeout",
    "2",
]

# Every code the server documents (docs/server.md).  `synthesis-failed` is left out on purpose: it
# means the engine broke, and no input a client can send should make it break.
CLIENT_ERROR_CODES = {
    "unknown-voice",
    "voice-unavailable",
    "voice-invalid",
    "empty-text",
    "text-too-long",
    "text-invalid",
    "extra-missing",
    "no-stream",
    "stream-already-started",
    "stream-idle-timeout",
    "busy",
    "malformed-event",
    "unknown-event",
}
SERVER_EVENT_TYPES = {
    "info",
    "pong",
    "error",
    "audio-start",
    "audio-chunk",
    "audio-stop",
    "synthesize-stopped",
}
EXCHANGE_TIMEOUT = 30.0

FUZZ_SETTINGS = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    # The one function-scoped fixture is the autouse check below: once per test, around all its examples.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


# -- the well-formed client running alongside the fuzzing -------------------------------------------


@dataclass
class GoodClient:
    """Synthesizes in a loop in its own thread and event loop; every problem is recorded, not raised."""

    uri: str
    rounds: int = 0
    failures: list[str] = field(default_factory=list)
    slowest_describe: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._loop()), name="good-client")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)
            assert not self._thread.is_alive(), "the good client is stuck"

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._round(streaming=self.rounds % 2 == 1), 60)
                self.rounds += 1
            except Exception as err:  # recorded and reported by the last test
                self.failures.append(f"round {self.rounds}: {type(err).__name__}: {err}")
            await asyncio.sleep(0.2)

    async def _round(self, streaming: bool) -> None:
        text = "The good client still hears every word."
        async with connect(self.uri) as client:
            started = time.monotonic()
            await client.write_event(Describe().event())
            info = await read_until(client, "info")
            self.slowest_describe = max(self.slowest_describe, time.monotonic() - started)
            assert [e.type for e in info] == ["info"], [e.type for e in info]
            voice = SynthesizeVoice(name="tone")
            if streaming:
                await client.write_event(SynthesizeStart(voice=voice).event())
                for part in ("The good client still ", "hears every word."):
                    await client.write_event(SynthesizeChunk(text=part).event())
                await client.write_event(SynthesizeStop().event())
                events = await read_until(client, "synthesize-stopped")
            else:
                await client.write_event(Synthesize(text=text, voice=voice).event())
                events = await read_until(client, "audio-stop")
        check_audio(events, text)


def check_audio(events: list[Event], text: str) -> None:
    types = [e.type for e in events]
    assert "error" not in types, [e.data for e in events if e.type == "error"]
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1, types
    for event in events:
        if event.type in ("audio-start", "audio-chunk"):
            assert (event.data["rate"], event.data["width"], event.data["channels"]) == (24000, 2, 1)
    assert len(audio_of(events)) // 2 == expected_samples(text)


# -- the server and how it is observed --------------------------------------------------------------


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def socket_count(pid: int) -> int:
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


@dataclass
class FuzzTarget:
    server: ServerProcess
    good: GoodClient
    baseline_threads: int
    baseline_sockets: int

    @property
    def port(self) -> int:
        return int(self.server.uri.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def target(
    tiny_model_dir: Path, voices_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzTarget]:
    server = start_server(tiny_model_dir, voices_dir, tmp_path_factory.mktemp("fuzz"), FUZZ_ARGS)
    try:
        pid = server.pid

        async def warm_up() -> None:
            # One synthesis starts PyTorch's threads; a burst of describes starts the thread pool
            # that scans the voices folders.  Both are created once and kept: the baseline.
            async with connect(server.uri) as client:
                await client.write_event(
                    Synthesize(text="Warm up.", voice=SynthesizeVoice(name="tone")).event()
                )
                await read_until(client, "audio-stop")
            await asyncio.gather(*(_describe(server.uri) for _ in range(12)))

        asyncio.run(warm_up())
        time.sleep(0.5)
        baseline_sockets = socket_count(pid)
        baseline_threads = thread_count(pid)
        good = GoodClient(server.uri)
        good.start()
        try:
            target = FuzzTarget(server, good, baseline_threads, baseline_sockets)
            yield target
            assert_survived(target)
        finally:
            good.stop()
    finally:
        status = server.stop()
    assert status == 0, server.log()[-5000:]


LOG_MARKERS = ("Traceback", "exception was never retrieved", "ERROR")


@pytest.fixture(autouse=True)
def server_unharmed(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that talks to the server: it still runs, the log it wrote meanwhile shows no crash
    and no error, and the good client met no failure meanwhile."""
    if "target" not in request.fixturenames:
        yield
        return
    target: FuzzTarget = request.getfixturevalue("target")
    log_from = len(target.server.log())
    failures_from = len(target.good.failures)
    yield
    server = target.server
    assert server.alive(), server.log()[-5000:]
    log = server.log()[log_from:]
    for marker in LOG_MARKERS:
        assert marker not in log, log[max(0, log.find(marker) - 2000) : log.find(marker) + 3000]
    assert target.good.failures[failures_from:] == []


async def _describe(uri: str) -> None:
    async with connect(uri) as client:
        await client.write_event(Describe().event())
        await read_until(client, "info")


SENTINEL = "fuzz-sentinel-7c1e"


def is_sentinel(event: Event) -> bool:
    return event.type == "pong" and event.data.get("text") == SENTINEL


async def read_strict(reader: asyncio.StreamReader) -> Event | None:
    """One event in exact Wyoming framing; anything else the server writes fails the test."""
    line = await reader.readline()
    if not line:
        return None
    assert line.endswith(b"\n"), f"connection ended inside an event header: {line[:200]!r}"
    header = json.loads(line)
    assert isinstance(header, dict) and isinstance(header.get("type"), str), header
    data: dict[str, Any] = dict(header.get("data") or {})
    if header.get("data_length"):
        data.update(json.loads(await reader.readexactly(header["data_length"])))
    payload = await reader.readexactly(header["payload_length"]) if header.get("payload_length") else None
    return Event(type=header["type"], data=data, payload=payload)


async def exchange(
    port: int, data: bytes, close_write: bool = True, until: Callable[[Event], bool] | None = None
) -> list[Event]:
    """Send raw bytes; return the server's events until it closes the connection (or ``until``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    events: list[Event] = []
    try:
        try:
            writer.write(data)
            await writer.drain()
            if close_write:
                writer.write_eof()
        except OSError:
            # The server may already have closed a connection whose framing is lost (ENOTCONN, EPIPE,
            # ECONNRESET, depending on timing): what it sent before closing is still read below.
            pass

        async def read_answers() -> None:
            while (event := await read_strict(reader)) is not None:
                events.append(event)
                if until is not None and until(event):
                    break

        await asyncio.wait_for(read_answers(), EXCHANGE_TIMEOUT)  # asyncio.timeout needs Python 3.11
    except ConnectionResetError:
        pass  # the server may drop a connection whose framing is lost while we still write
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return events


def check_answer(events: list[Event]) -> None:
    """What any answer to any input must look like."""
    in_audio = False
    for event in events:
        assert event.type in SERVER_EVENT_TYPES, event.type
        if event.type == "error":
            assert event.data.get("code") in CLIENT_ERROR_CODES, event.data
            assert isinstance(event.data.get("text"), str) and event.data["text"], event.data
        elif event.type == "audio-start":
            assert not in_audio, "audio-start inside a response"
            in_audio = True
        elif event.type == "audio-chunk":
            assert in_audio, "audio-chunk outside audio-start ... audio-stop"
            assert (event.data["rate"], event.data["width"], event.data["channels"]) == (24000, 2, 1)
            assert event.payload and len(event.payload) % 2 == 0
        elif event.type == "audio-stop":
            assert in_audio, "audio-stop without audio-start"
            in_audio = False


# -- strategies ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
texts = (
    st.text(max_size=40)
    | st.sampled_from(["Hello there.", "Hi, friend. How are you?", "", "   ", "x" * (MAX_TEXT_CHARS + 1)])
    | json_values
)
voice_names = (
    st.sampled_from(
        ["tone", "tone-zh", "broken", "nobody", "../tone", "/etc/passwd", "tone/../tone", "", "."]
    )
    | st.text(max_size=16)
    | json_values
)
voices = (
    st.none()
    | json_values
    | st.fixed_dictionaries(
        {}, optional={"name": voice_names, "language": st.sampled_from(["en", "zh", "fr", ""]) | json_values}
    )
)
extra_fields = st.dictionaries(st.text(max_size=8), json_values, max_size=3)
OTHER_TYPES = [
    "audio-start",
    "audio-chunk",
    "audio-stop",
    "transcribe",
    "transcript",
    "detect",
    "run-pipeline",
    "info",
    "error",
    "pong",
    "synthesize-stopped",
]

event_bodies: st.SearchStrategy[tuple[str, dict[str, Any]]] = st.one_of(
    st.tuples(st.just("describe"), extra_fields),
    st.tuples(st.just("ping"), st.fixed_dictionaries({}, optional={"text": texts})),
    st.tuples(st.just("synthesize"), st.fixed_dictionaries({}, optional={"text": texts, "voice": voices})),
    st.tuples(st.just("synthesize-start"), st.fixed_dictionaries({}, optional={"voice": voices})),
    st.tuples(st.just("synthesize-chunk"), st.fixed_dictionaries({}, optional={"text": texts})),
    st.tuples(st.just("synthesize-stop"), extra_fields),
    st.tuples(st.sampled_from(OTHER_TYPES), extra_fields),
    st.tuples(st.text(max_size=20), extra_fields),
)


def frame(event_type: Any, data: dict[str, Any], payload: bytes | None, inline: bool) -> bytes:
    """Wyoming framing: a JSON header line, then ``data_length`` bytes of JSON, then the payload."""
    header: dict[str, Any] = {"type": event_type, "version": "1.10.2"}
    body = b""
    if data and inline:
        header["data"] = data
    elif data:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header, ensure_ascii=False).encode("utf-8") + b"\n" + body + (payload or b"")


valid_frames = st.builds(
    lambda body, payload, inline: frame(body[0], body[1], payload, inline),
    event_bodies,
    st.none() | st.binary(max_size=2048),
    st.booleans(),
)

lengths = st.one_of(
    st.integers(min_value=-(10**6), max_value=-1),
    st.integers(min_value=2**20 + 1, max_value=2**70),
    st.integers(min_value=0, max_value=64),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.none(),
)


@st.composite
def bad_length_frames(draw: st.DrawFn) -> bytes:
    """A header whose data_length/payload_length lies, is huge, negative or not a number at all."""
    header: dict[str, Any] = {"type": draw(st.sampled_from(["synthesize", "describe", "audio-chunk", "x"]))}
    for key in draw(st.sets(st.sampled_from(["data_length", "payload_length"]), min_size=1)):
        header[key] = draw(lengths)
    line = json.dumps(header).encode("utf-8") + b"\n"
    return line + draw(st.binary(max_size=200))


nasty_lines = st.sampled_from(
    [
        b"[" * 30000 + b"\n",  # nesting deeper than the JSON decoder's recursion limit
        b'{"type": "ping", "data": ' + b"[" * 20000 + b"\n",
        b'{"type": "ping", "n": ' + b"9" * 5000 + b"}\n",  # over Python's integer-digit limit
        b'{"type": "synthesize", "data": {"text": "Hi \\ud800 there."}}\n',  # lone surrogate
        b'{"type": "ping", "data": {"text": "\\udfff"}}\n',
        b'{"type": "synthesize", "data_length": 20}\n{"text": NaN, "x": 1}',
        b'{"type": "ping", "data": {"text": Infinity}}\n',
        b'{"type": "describe", "type": 5}\n',  # duplicate key: the last one wins
        b"\xff\xfe\x00{}\n",
        b"\n",
        b"{" + b"a" * 70000,  # longer than the 64 KiB header limit, no newline
        b'{"type": "synthesize", "data_length": 3}\n\xff\xfe\xfd',
        b'{"type": "synthesize-chunk", "data": {"text": "no start"}}\n',
        b'{"type": "synthesize-stop"}\n{"type": "synthesize-stop"}\n',
    ]
)

frames = st.one_of(valid_frames, valid_frames, bad_length_frames(), nasty_lines, st.binary(max_size=512))


def _mutate(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    for op, where, blob in edits:
        at = int(where * len(data))
        if op == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (blob[0] or 1)]) + data[at + 1 :]
        elif op == "delete":
            data = data[:at] + data[at + len(blob) :]
        elif op == "insert":
            data = data[:at] + blob + data[at:]
        elif op == "truncate":
            data = data[:at]
    return data


edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "delete", "insert", "truncate"]),
        st.floats(min_value=0, max_value=1),
        st.binary(min_size=1, max_size=8),
    ),
    max_size=4,
)
byte_streams = st.builds(_mutate, st.lists(frames, min_size=1, max_size=6).map(b"".join), edits)


# -- the properties --------------------------------------------------------------------------------


@FUZZ_SETTINGS
@given(data=byte_streams)
def test_random_byte_streams(target: FuzzTarget, data: bytes) -> None:
    """Any bytes, then end of input: the server answers with well-formed events and closes cleanly."""
    check_answer(asyncio.run(exchange(target.port, data)))


@settings(FUZZ_SETTINGS, max_examples=150)
@given(events=st.lists(valid_frames, min_size=1, max_size=8))
def test_valid_events_in_any_order_keep_the_connection_usable(
    target: FuzzTarget, events: list[bytes]
) -> None:
    """Well-framed events in any order (chunk before start, stop twice, audio sent to a TTS server...)
    never break framing: a ping sent after them is still answered on the same connection, unless a plain
    `synthesize` among them failed: that request ends with its error and the connection closes (what
    Home Assistant's non-streaming reader needs), never with lost framing."""
    sentinel = frame("ping", {"text": SENTINEL}, None, False)
    answer = asyncio.run(
        exchange(target.port, b"".join(events) + sentinel, close_write=False, until=is_sentinel)
    )
    check_answer(answer)
    if answer and is_sentinel(answer[-1]):
        return
    assert any(b'"type": "synthesize"' in event for event in events), [e.type for e in answer]
    assert answer and answer[-1].type == "error", [e.type for e in answer]
    assert "closing the connection" not in answer[-1].data["text"], answer[-1].data


not_event_headers = st.one_of(
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")),
    st.text(max_size=100).map(lambda t: t.replace("\n", "").encode("utf-8")),
    json_values.filter(
        lambda v: not (isinstance(v, dict) and {"type", "data", "data_length", "payload_length"} & set(v))
    ).map(lambda v: json.dumps(v).encode("utf-8")),
)


@settings(FUZZ_SETTINGS, max_examples=150)
@given(line=not_event_headers)
def test_a_line_that_is_not_an_event_gets_one_error_and_the_connection_goes_on(
    target: FuzzTarget, line: bytes
) -> None:
    """A bad header line cannot be an event, but the next line can: exactly one `malformed-event`
    error, then the ping that follows is answered on the same connection."""
    sentinel = frame("ping", {"text": SENTINEL}, None, False)
    answer = asyncio.run(exchange(target.port, line + b"\n" + sentinel, close_write=False, until=is_sentinel))
    assert [(e.type, e.data.get("code")) for e in answer[:-1]] == [("error", "malformed-event")], answer
    assert answer and is_sentinel(answer[-1])


# Found by this file: each used to end the connection with no `error` event and an unhandled
# exception in the server log (RecursionError, ValueError), or to reach the engine and fail
# there as `synthesis-failed` (a lone surrogate cannot be encoded as UTF-8).
HOSTILE_LINES = {
    "deep-header": b'{"type": "ping", "data": ' + b"[" * 20000 + b"\n",
    "deep-data-block": b'{"type": "ping", "data_length": 20000}\n' + b"[" * 20000,
    "integer-over-digit-limit": b'{"type": "ping", "n": ' + b"9" * 5000 + b"}\n",
}
HOSTILE_SYNTHESIZE = {
    "lone-surrogate-in-text": b'{"type": "synthesize", "data": {"text": "Hi \\ud800 there."}}\n',
    "lone-surrogate-in-data-block": b'{"type": "synthesize", "data_length": 19}\n{"text": "\\udfff."}',
    "nan-as-text": b'{"type": "synthesize", "data": {"text": NaN}}\n',
}
FRAMING_BREAKERS = {
    "boolean-length": b'{"type": "ping", "data_length": true}\n{',
    "negative-length": b'{"type": "ping", "payload_length": -1}\n',
    "string-length": b'{"type": "ping", "data_length": "10"}\n',
    "huge-length": b'{"type": "synthesize", "payload_length": 10000000000}\n',
    "header-over-64k": b"{" + b"a" * 70000,
}


@pytest.mark.parametrize("line", HOSTILE_LINES.values(), ids=HOSTILE_LINES.keys())
def test_hostile_json_gets_an_error_and_the_connection_goes_on(target: FuzzTarget, line: bytes) -> None:
    sentinel = frame("ping", {"text": SENTINEL}, None, False)
    answer = asyncio.run(exchange(target.port, line + sentinel, close_write=False, until=is_sentinel))
    assert [(e.type, e.data.get("code")) for e in answer[:-1]] == [("error", "malformed-event")], answer
    assert answer and is_sentinel(answer[-1])


@pytest.mark.parametrize("line", HOSTILE_SYNTHESIZE.values(), ids=HOSTILE_SYNTHESIZE.keys())
def test_hostile_synthesize_gets_an_error_then_the_connection_closes(target: FuzzTarget, line: bytes) -> None:
    """A `synthesize` that cannot be read asked for audio: its error ends the request, and the close
    tells a reader that ignores errors (Home Assistant's) that nothing more comes."""
    sentinel = frame("ping", {"text": SENTINEL}, None, False)
    answer = asyncio.run(exchange(target.port, line + sentinel, close_write=False))
    assert [(e.type, e.data.get("code")) for e in answer] == [("error", "malformed-event")], answer


@pytest.mark.parametrize("line", FRAMING_BREAKERS.values(), ids=FRAMING_BREAKERS.keys())
def test_lost_framing_gets_an_error_then_the_connection_closes(target: FuzzTarget, line: bytes) -> None:
    """After a length that cannot be trusted, nothing that follows can be split into events."""
    sentinel = frame("ping", {"text": SENTINEL}, None, False)
    answer = asyncio.run(exchange(target.port, line + sentinel, close_write=False))
    assert [(e.type, e.data.get("code")) for e in answer] == [("error", "malformed-event")], answer


@settings(FUZZ_SETTINGS, max_examples=40)
@given(text=st.text(min_size=1, max_size=30))
def test_any_unicode_text_is_spoken_or_refused_with_a_reason(target: FuzzTarget, text: str) -> None:
    """Any text a client sends either becomes audio or is refused with a client error code; the
    engine itself never fails on it (no `synthesis-failed`)."""
    request = frame("synthesize", {"text": text, "voice": {"name": "tone"}}, None, False)
    answer = asyncio.run(
        exchange(target.port, request, close_write=False, until=lambda e: e.type in ("audio-stop", "error"))
    )
    assert answer and answer[-1].type in ("audio-stop", "error"), (text, [e.type for e in answer])
    check_answer(answer)
    if answer[-1].type == "error":
        assert answer[-1].data["code"] in {"empty-text", "text-invalid", "extra-missing"}, answer[-1].data


# -- and afterwards ---------------------------------------------------------------------------------


def assert_survived(target: FuzzTarget) -> None:
    """When the server fixture ends, after whichever tests ran: the server is alive, leaked nothing, kept
    the good client served, and serves at full capacity."""
    server = target.server
    good = target.good
    deadline = time.monotonic() + 60  # a short subset: give the good client its few rounds
    while good.rounds < 3 and not good.failures and time.monotonic() < deadline:
        time.sleep(0.2)
    good.stop()
    assert server.alive(), server.log()[-5000:]
    assert not good.failures, good.failures[:5]
    assert good.rounds >= 3, f"the good client completed only {good.rounds} rounds"
    assert good.slowest_describe < 2.0, good.slowest_describe

    pid = server.pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if socket_count(pid) <= target.baseline_sockets and thread_count(pid) <= target.baseline_threads:
            break
        time.sleep(0.2)
    assert socket_count(pid) <= target.baseline_sockets, "connections left open"
    assert thread_count(pid) <= target.baseline_threads, "threads leaked"

    async def full_capacity() -> None:
        # Every connection slot is free again: the limit's worth of clients are all served.
        clients = [connect(server.uri) for _ in range(MAX_CONNECTIONS)]
        for client in clients:
            await client.connect()
        try:
            for client in clients:
                await client.write_event(Describe().event())
            for client in clients:
                assert [e.type for e in await read_until(client, "info")] == ["info"]
            # Every queue slot is free again: the total limit's worth of requests all get audio.
            text = "Every slot is free."
            senders = clients[: MAX_QUEUED_TOTAL // MAX_QUEUED_PER_CLIENT]
            for client in senders:
                for _ in range(MAX_QUEUED_PER_CLIENT):
                    await client.write_event(
                        Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event()
                    )
            for client in senders:
                for _ in range(MAX_QUEUED_PER_CLIENT):
                    check_audio(await read_until(client, "audio-stop"), text)
        finally:
            for client in clients:
                await client.disconnect()

    asyncio.run(full_capacity())
    log = server.log()
    for marker in LOG_MARKERS:
        assert marker not in log, log[max(0, log.find(marker) - 2000) : log.find(marker) + 3000]


# -- the framing alone: protocol.py on an in-memory stream, no socket and no server --------------------


def read_all(data: bytes) -> list[Event | MalformedEventError]:
    """Every event `read_event` finds in `data`, or the error it raised in its place; a lost framing, or the
    end of input inside an event, ends the reading, as either ends a connection."""

    async def go() -> list[Event | MalformedEventError]:
        reader = asyncio.StreamReader(limit=MAX_EVENT_LINE)
        reader.feed_data(data)
        reader.feed_eof()
        found: list[Event | MalformedEventError] = []
        while True:
            try:
                event = await read_event(reader)
            except BadEvent as err:
                found.append(err)
                continue
            except FramingLost as err:
                found.append(err)
                return found
            except asyncio.IncompleteReadError:  # the input ended inside an event's data: as a connection
                return found
            if event is None:
                return found
            found.append(event)

    return asyncio.run(go())


@FUZZ_SETTINGS
@given(data=byte_streams)
def test_the_framing_reads_any_bytes_as_events_or_malformed_event_errors(data: bytes) -> None:
    """The same byte streams as above, without a server: nothing but events and malformed-event errors."""
    for found in read_all(data):
        assert isinstance(found, (Event, MalformedEventError)), found


# NaN is JSON that Python reads; the handler refuses it as text, after the framing.
UNREADABLE = {**HOSTILE_LINES, **{k: v for k, v in HOSTILE_SYNTHESIZE.items() if "surrogate" in k}}


@pytest.mark.parametrize(
    ("line", "error"),
    [(line, BadEvent) for line in UNREADABLE.values()]
    + [(line, FramingLost) for line in FRAMING_BREAKERS.values()],
    ids=[*UNREADABLE, *FRAMING_BREAKERS],
)
def test_the_framing_turns_each_hostile_line_into_one_error(line: bytes, error: type[Exception]) -> None:
    found = read_all(line)
    assert len(found) == 1 and type(found[0]) is error, found
