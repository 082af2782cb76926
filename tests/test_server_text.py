"""The text front end in the real server: what a client writes is what is spoken once put into words.

The audio's length is the evidence: the engine's duration follows the spoken text's length exactly
(`expected_samples`), so an answer as long as the written-out sentence was given the written-out sentence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    SERVER_ARGS,
    ServerProcess,
    check_audio,
    connect,
    expected_samples,
    make_voice,
    read_until,
    samples_of,
    start_server,
)
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from wyoming_ishowtts.text import spoken, spoken_sentences

RAW = "The temperature is 21.5 °C."
WRITTEN_OUT = "The temperature is twenty-one point five degrees Celsius."


async def plain(uri: str, text: str, voice: SynthesizeVoice | None = None) -> list[Event]:
    async with connect(uri) as client:
        await client.write_event(Synthesize(text=text, voice=voice).event())
        return await read_until(client, "audio-stop")


async def streamed(uri: str, deltas: list[str], voice: SynthesizeVoice | None = None) -> list[Event]:
    async with connect(uri) as client:
        await client.write_event(SynthesizeStart(voice=voice).event())
        for delta in deltas:
            await client.write_event(SynthesizeChunk(text=delta).event())
        await client.write_event(SynthesizeStop().event())
        return await read_until(client, "synthesize-stopped")


@pytest.fixture(scope="module")
def text_voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text-voices")
    make_voice(root, "tone")
    make_voice(root, "verbatim", toml="normalize = false\n")
    make_voice(root, "tone-zh", toml='languages = ["zh"]\n')
    return root


@pytest.fixture(scope="module")
def text_server(
    tiny_model_dir: Path, text_voices: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    proc = start_server(tiny_model_dir, text_voices, tmp_path_factory.mktemp("text-server"), SERVER_ARGS)
    yield proc
    assert proc.stop() == 0, proc.log()


def test_a_number_with_its_unit_gets_the_time_of_its_words_on_both_readers(
    text_server: ServerProcess,
) -> None:
    """Issue 20: raw, "21.5 °C" got about half the time of its words; now within 20 % (in fact exactly)."""
    written = samples_of(asyncio.run(plain(text_server.uri, WRITTEN_OUT)))
    one_shot = asyncio.run(plain(text_server.uri, RAW))
    stream = asyncio.run(streamed(text_server.uri, ["The temperature is 21", ".", "5 °C", "."]))
    for events in (one_shot, stream):
        assert "error" not in [e.type for e in events]
        assert abs(samples_of(events) / written - 1) < 0.2, (samples_of(events), written)
    check_audio(one_shot, spoken(RAW))
    check_audio(stream[:-1], *spoken_sentences(RAW))
    assert samples_of(one_shot) != expected_samples(RAW), "the raw text's length would be a different answer"


def test_a_streamed_llm_answer_speaks_like_the_same_text_sent_at_once(text_server: ServerProcess) -> None:
    answer = (
        "<think>The user wants the weather. 42 is not it.</think>**Sure!** Here is today:\n"
        "- High of 25 °C at 3:45 PM\n- Wind 12 km/h\n\nSee https://www.example.com/weather for more. 😀"
    )
    deltas = [answer[i : i + 4] for i in range(0, len(answer), 4)]  # splits tags, numbers and markers
    events = asyncio.run(streamed(text_server.uri, deltas))
    sentences = spoken_sentences(answer)
    assert not any("42" in s or "forty-two" in s or "think" in s for s in sentences), sentences
    check_audio(events[:-1], *sentences)
    log = text_server.log()
    assert "sentence 'High of twenty-five degrees Celsius at three forty-five P M.'" in log


def test_the_request_language_picks_the_chinese_reading(text_server: ServerProcess) -> None:
    text = "温度21.5°C，湿度45%"
    for voice in (SynthesizeVoice(language="zh_CN"), SynthesizeVoice(name="tone-zh")):
        events = asyncio.run(plain(text_server.uri, text, voice))
        check_audio(events, spoken(text, "zh"))
    assert spoken(text, "zh") == "温度二十一点五摄氏度，湿度百分之四十五"


def test_a_voice_with_normalize_false_is_spoken_as_written(text_server: ServerProcess) -> None:
    events = asyncio.run(plain(text_server.uri, RAW, SynthesizeVoice(name="verbatim")))
    check_audio(events, RAW)


def test_an_answer_that_is_only_reasoning_ends_the_request_with_an_error(text_server: ServerProcess) -> None:
    """Nothing of an unclosed reasoning block is spoken; the stream still ends the way clients wait for."""
    events = asyncio.run(streamed(text_server.uri, ["<thi", "nk>I should say 42", " and more"]))
    types = [e.type for e in events]
    assert types[-1] == "synthesize-stopped" and "error" in types and "audio-chunk" not in types, types
    error = next(e for e in events if e.type == "error")
    assert error.data["code"] == "empty-text", error.data

    async def only_emoji() -> list[Event]:
        async with connect(text_server.uri) as client:
            await client.write_event(Synthesize(text="😀👍").event())
            events = []
            while (event := await client.read_event()) is not None:
                events.append(event)
            return events  # a failed plain request ends with the error, then the connection closes

    events = asyncio.run(only_emoji())
    assert [e.type for e in events] == ["error"] and events[0].data["code"] == "empty-text"
    check_audio(asyncio.run(plain(text_server.uri, "Still serving.")), "Still serving.")


def test_no_normalize_speaks_every_request_as_written(
    tiny_model_dir: Path, text_voices: Path, tmp_path: Path
) -> None:
    proc = start_server(tiny_model_dir, text_voices, tmp_path, [*SERVER_ARGS, "--no-normalize"])
    try:
        check_audio(asyncio.run(plain(proc.uri, RAW)), RAW)
        stream = asyncio.run(streamed(proc.uri, ["The temperature is 21", ".", "5 °C", "."]))
        check_audio(stream[:-1], RAW)
    finally:
        assert proc.stop() == 0, proc.log()
