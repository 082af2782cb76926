"""The Wyoming conversation Home Assistant has with the server, against the real engine."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from conftest import ServerProcess, audio_of, connect, expected_samples, make_voice, read_until
from wyoming.audio import AudioChunk, AudioStart
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from wyoming_ishowtts.server.protocol import requested_voice

SAMPLE_RATE = 24000


def assert_one_response(events: list[Event], samples_per_chunk: int = 1024) -> bytes:
    """One audio-start, chunks in its format, one audio-stop; returns the PCM."""
    types = [e.type for e in events]
    assert types.count("audio-start") == 1, types
    assert types.count("audio-stop") == 1, types
    start_at, stop_at = types.index("audio-start"), types.index("audio-stop")
    assert start_at < stop_at
    chunks = [e for e in events[start_at + 1 : stop_at]]
    assert chunks and all(e.type == "audio-chunk" for e in chunks), types
    start = AudioStart.from_event(events[start_at])
    assert (start.rate, start.width, start.channels) == (SAMPLE_RATE, 2, 1)
    for event in chunks:
        chunk = AudioChunk.from_event(event)
        assert (chunk.rate, chunk.width, chunk.channels) == (SAMPLE_RATE, 2, 1)
        assert 0 < len(chunk.audio) <= samples_per_chunk * 2
        assert len(chunk.audio) % 2 == 0
    return audio_of(events)


def test_describe(server: ServerProcess) -> None:
    async def go() -> Info:
        async with connect(server.uri) as client:
            await client.write_event(Describe().event())
            event = await client.read_event()
            assert event is not None
            return Info.from_event(event)

    info = asyncio.run(go())
    assert len(info.tts) == 1
    program = info.tts[0]
    assert program.installed and program.supports_synthesize_streaming
    assert program.version and program.attribution.url
    voices = {v.name: v for v in program.voices}
    assert {"tone", "tone-zh", "slow", "broken"} <= set(voices)
    assert voices["tone"].languages == ["en"]
    assert voices["tone"].description == "Test tone"
    assert voices["tone-zh"].languages == ["zh"]
    assert all(v.installed for v in voices.values())


def test_ping(server: ServerProcess) -> None:
    async def go() -> Event:
        async with connect(server.uri) as client:
            await client.write_event(Ping(text="hello").event())
            event = await client.read_event()
            assert event is not None
            return event

    event = asyncio.run(go())
    assert event.type == "pong" and event.data.get("text") == "hello"


def test_voice_added_appears_without_restart(server: ServerProcess, voices_dir: Path) -> None:
    async def names() -> set[str]:
        async with connect(server.uri) as client:
            await client.write_event(Describe().event())
            event = await client.read_event()
            assert event is not None
            return {v.name for v in Info.from_event(event).tts[0].voices}

    assert "late" not in asyncio.run(names())
    make_voice(voices_dir, "late")
    try:
        assert "late" in asyncio.run(names())
    finally:
        shutil.rmtree(voices_dir / "late")
    assert "late" not in asyncio.run(names())


def test_one_shot_synthesize(server: ServerProcess) -> None:
    text = "Hello there. This is a test of the server, and it should stream audio in pieces."

    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event())
            events = await read_until(client, "audio-stop")
            # The connection is still usable afterwards.
            await client.write_event(Describe().event())
            assert (await read_until(client, "info"))[-1].type == "info"
            return events

    pcm = assert_one_response(asyncio.run(go()))
    assert len(pcm) // 2 == expected_samples(text)


def test_home_assistant_streaming_sequence(server: ServerProcess) -> None:
    """HA 2025.7+: start, one chunk per word, the compatibility synthesize, stop."""
    text = "Good morning. The weather today is sunny and warm. Have a nice day!"

    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tone")).event())
            words = text.split(" ")
            for i, word in enumerate(words):
                await client.write_event(SynthesizeChunk(text=word if i == 0 else " " + word).event())
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event())
            await client.write_event(SynthesizeStop().event())
            return await read_until(client, "synthesize-stopped")

    events = asyncio.run(go())
    types = [e.type for e in events]
    assert types[-1] == "synthesize-stopped"
    assert types[-2] == "audio-stop"
    assert "error" not in types
    pcm = assert_one_response(events[:-1])
    # Each of the three sentences synthesized on its own, and every one whole; the compat synthesize was
    # ignored (it would have added the whole text once more).
    sentences = ("Good morning.", "The weather today is sunny and warm.", "Have a nice day!")
    assert len(pcm) // 2 == expected_samples(*sentences)


def test_stream_deltas_split_inside_words(server: ServerProcess) -> None:
    text = "Splitting inside words must not matter. 你好。今天天气很好！"

    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(SynthesizeStart().event())
            for i in range(0, len(text), 3):
                await client.write_event(SynthesizeChunk(text=text[i : i + 3]).event())
            await client.write_event(SynthesizeStop().event())
            return await read_until(client, "synthesize-stopped")

    events = asyncio.run(go())
    assert "error" not in [e.type for e in events]
    pcm = assert_one_response(events[:-1])
    sentences = ("Splitting inside words must not matter.", "你好。", "今天天气很好！")
    assert len(pcm) // 2 == expected_samples(*sentences)
    log = server.log()
    assert "sentence 'Splitting inside words must not matter.'" in log
    assert "sentence '你好。'" in log


def test_first_audio_arrives_before_the_last_text_chunk_is_sent(server: ServerProcess) -> None:
    """Streaming is real: audio for sentence one flows while the client still holds text back."""

    async def go() -> tuple[list[str], list[Event]]:
        order: list[str] = []
        async with connect(server.uri) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="tone")).event())
            for delta in ("The first sentence is ", "complete here. ", "The second"):
                await client.write_event(SynthesizeChunk(text=delta).event())
            # Without streaming this read would time out: the server has no reason to speak yet.
            first = await client.read_event()
            assert first is not None
            order.append(first.type)
            second = await client.read_event()
            assert second is not None
            order.append(second.type)
            order.append("client sends last chunk")
            await client.write_event(SynthesizeChunk(text=" one is spoken later.").event())
            await client.write_event(SynthesizeStop().event())
            rest = await read_until(client, "synthesize-stopped")
            return order, [first, second, *rest]

    order, events = asyncio.run(go())
    assert order == ["audio-start", "audio-chunk", "client sends last chunk"]
    assert [e.type for e in events].count("audio-start") == 1
    pcm = assert_one_response(events[:-1])
    sentences = ("The first sentence is complete here.", "The second one is spoken later.")
    assert len(pcm) // 2 == expected_samples(*sentences)


def test_multi_chunk_one_shot_sends_audio_per_text_chunk(server: ServerProcess) -> None:
    """The engine yields one piece per text chunk; the first audio-chunk leaves before the last piece
    is synthesized (checked with the order of the server's own log lines)."""
    text = (
        "This first part is short, and then a much longer part follows that the engine has to "
        "synthesize as a separate text chunk after the first one has already been sent out to the client."
    )

    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="tone")).event())
            return await read_until(client, "audio-stop")

    assert len(assert_one_response(asyncio.run(go()))) // 2 == expected_samples(text)
    time.sleep(0.2)
    lines = [line for line in server.log().splitlines() if "request" in line]
    label = next(
        line.split(": synthesize")[0].split(":")[-1]
        for line in lines
        if "characters with voice tone" in line and f"synthesize {len(text)} characters" in line
    )
    mine = [line for line in lines if f"{label} " in line or f"{label}:" in line]
    first_audio = next(i for i, line in enumerate(mine) if line.endswith(f"{label}: audio-start"))
    pieces = [i for i, line in enumerate(mine) if "piece" in line and "synthesized" in line]
    assert len(pieces) >= 2, mine
    assert pieces[0] < first_audio < pieces[-1], mine


def test_voice_chosen_by_language(server: ServerProcess) -> None:
    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(
                Synthesize(text="Language selection test.", voice=SynthesizeVoice(language="zh-CN")).event()
            )
            return await read_until(client, "audio-stop")

    pcm = assert_one_response(asyncio.run(go()))
    assert len(pcm) // 2 == expected_samples("Language selection test.", transcript="这是一个测试声音。")
    assert "synthesize 24 characters with voice tone-zh" in server.log()


def test_stream_voice_chosen_by_language(server: ServerProcess) -> None:
    before = server.log().count("stream started with voice tone-zh")

    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(language="zh-CN")).event())
            await client.write_event(SynthesizeChunk(text="Language selection test.").event())
            await client.write_event(SynthesizeStop().event())
            return await read_until(client, "synthesize-stopped")

    events = asyncio.run(go())
    assert "error" not in [e.type for e in events], [e.data for e in events if e.type == "error"]
    assert server.log().count("stream started with voice tone-zh") == before + 1


@pytest.mark.parametrize(
    ("voice", "expected"),
    [
        ({"language": "zh-CN"}, SynthesizeVoice(language="zh-CN")),  # wyoming < 1.10.0: name="zh-CN"
        ({"name": "tone", "speaker": "a"}, SynthesizeVoice(name="tone", speaker="a")),
        ({"name": "tone", "language": "en"}, SynthesizeVoice(name="tone")),  # the name wins
        ({}, None),
    ],
)
def test_requested_voice_is_read_the_same_on_every_wyoming(
    voice: dict[str, str], expected: SynthesizeVoice | None
) -> None:
    event = Synthesize(text="Hi.").event()
    event.data["voice"] = voice
    assert requested_voice(event) == expected
    assert requested_voice(SynthesizeStart().event()) is None
