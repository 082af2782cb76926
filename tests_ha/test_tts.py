"""Speech through Home Assistant's `wyoming` integration, on both of its readers, and every way it can fail.

Each test runs twice: against a server started with ``--no-streaming`` (Home Assistant sends one plain
``synthesize`` and reads until ``audio-stop`` or a closed connection) and against one that declares
streaming (Home Assistant streams the text word by word and reads until ``synthesize-stopped`` or a closed
connection). Home Assistant reports a failed request as HTTP 500 on the audio URL: the plain reader
raises, and the streaming reader ends with no audio at all.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from conftest import (
    ERROR_DEADLINE,
    MAX_TEXT_CHARS,
    SAMPLE_RATE,
    SECOND,
    SLOW,
    TONE,
    Server,
    ServerKind,
    Servers,
    TtsResult,
    VoiceSpec,
    add_entry_by_user_flow,
    parse_wav,
    request_audio,
    tts_entity_id,
)
from homeassistant.core import HomeAssistant

TEXT = "Hello there. This is a test of the server, and it should stream audio in pieces."
LONG_TEXT = " ".join(["The quick brown fox jumps over the lazy dog."] * 3)
assert len(LONG_TEXT) < MAX_TEXT_CHARS


@pytest.fixture(params=[False, True], ids=["plain", "streaming"])
def streaming(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


class Setup:
    """Home Assistant with our server added through the config flow, and its TTS entity.

    `streaming`: whether the server declares streaming, which decides the reader Home Assistant uses.
    """

    def __init__(self, hass: HomeAssistant, hass_client: Any, server: Server, streaming: bool) -> None:
        self.hass = hass
        self.hass_client = hass_client
        self.server = server
        self.streaming = streaming
        self.entity_id = ""

    async def add(self) -> Setup:
        self.entity_id = tts_entity_id(self.hass, await add_entry_by_user_flow(self.hass, self.server))
        return self

    async def speak(
        self, text: str, voice: str | None = None, limit: float | None = None, deltas: bool | None = None
    ) -> TtsResult:
        """Text word by word where the server streams (as the voice pipeline sends it), else whole."""
        kwargs = {} if limit is None else {"limit": limit}
        deltas = self.streaming if deltas is None else deltas
        return await request_audio(self.hass, self.hass_client, self.entity_id, deltas, text, voice, **kwargs)

    def assert_speech(self, result: TtsResult, text: str, voice: VoiceSpec) -> None:
        """A WAV in the server's format, as long as the duration rule says for this voice and text."""
        assert result.status == 200, result
        wav = parse_wav(result.body)
        assert (wav.rate, wav.width, wav.channels) == (SAMPLE_RATE, 2, 1)
        if self.streaming:
            assert wav.declared_data_bytes == 0  # Home Assistant's header for audio of unknown length
        else:
            assert wav.declared_data_bytes == len(wav.pcm)
        expected = voice.expected_seconds(text)
        assert 0.6 * expected < wav.seconds < 1.4 * expected, (wav.seconds, expected, voice.name)

    async def assert_fails_promptly(self, text: str, code: str, voice: str | None = None) -> None:
        """Home Assistant reports the failure (HTTP 500, no audio) well within ERROR_DEADLINE, and the
        server's log shows it failed for the expected reason."""
        mark = self.server.log_mark()
        result = await self.speak(text, voice, limit=ERROR_DEADLINE)
        assert result.status == 500, (result.status, result.body[:64])
        assert f"error {code}:" in self.server.log_since(mark), self.server.log_since(mark)

    async def assert_still_serving(self) -> None:
        text = "Still here after that."
        self.assert_speech(await self.speak(text), text, TONE)


@pytest.fixture
async def setup(ha: HomeAssistant, hass_client: Any, servers: Servers, streaming: bool) -> Setup:
    return await Setup(ha, hass_client, servers.get(ServerKind(streaming)), streaming).add()


def voice_used(log: str) -> list[str]:
    """The voices the server says it synthesized with."""
    return re.findall(r"(?:synthesize \d+ characters|stream started) with voice (\S+)", log)


async def test_speech(setup: Setup) -> None:
    mark = setup.server.log_mark()
    setup.assert_speech(await setup.speak(TEXT), TEXT, TONE)
    log = setup.server.log_since(mark)
    assert voice_used(log) == [TONE.name]  # the server's default voice
    # The reader Home Assistant chose: a stream only where the server declares streaming.
    assert ("stream started with voice" in log) == setup.streaming, log


async def test_voice_chosen_by_name(setup: Setup) -> None:
    mark = setup.server.log_mark()
    tone, second = await setup.speak(TEXT, TONE.name), await setup.speak(TEXT, SECOND.name)
    setup.assert_speech(tone, TEXT, TONE)
    setup.assert_speech(second, TEXT, SECOND)  # SECOND speaks three times slower than TONE
    assert voice_used(setup.server.log_since(mark)) == [TONE.name, SECOND.name]


async def test_whole_text_on_a_streaming_server(
    ha: HomeAssistant, hass_client: Any, servers: Servers
) -> None:
    """Text that is not streamed (the UI, automations) also goes through the streaming reader."""
    setup = await Setup(ha, hass_client, servers.get(ServerKind(streaming=True)), streaming=True).add()
    mark = setup.server.log_mark()
    result = await setup.speak(TEXT, deltas=False)
    assert "stream started with voice tone" in setup.server.log_since(mark)
    setup.assert_speech(result, TEXT, TONE)


async def test_unknown_voice(setup: Setup) -> None:
    await setup.assert_fails_promptly(TEXT, "unknown-voice", voice="nobody")
    await setup.assert_still_serving()


async def test_text_too_long(setup: Setup) -> None:
    text = "word " * (MAX_TEXT_CHARS // 5 + 1)
    await setup.assert_fails_promptly(text, "text-too-long")
    await setup.assert_still_serving()


async def test_empty_text(setup: Setup) -> None:
    # Home Assistant's HTTP API refuses an empty message itself, but passes on one of only spaces.
    await setup.assert_fails_promptly("   ", "empty-text")
    await setup.assert_still_serving()


async def test_broken_voice(setup: Setup) -> None:
    """The voice's reference clip is not audio: the engine fails before any audio is sent."""
    await setup.assert_fails_promptly(TEXT, "voice-invalid", voice="broken")
    await setup.assert_still_serving()


async def test_queue_full(ha: HomeAssistant, hass_client: Any, servers: Servers, streaming: bool) -> None:
    """With room for one request, a second one while the first runs is refused at once; the first
    completes."""
    server = servers.get(ServerKind(streaming, max_queued_total=1))
    setup = await Setup(ha, hass_client, server, streaming).add()
    mark = server.log_mark()
    first = asyncio.create_task(setup.speak(LONG_TEXT, SLOW.name))
    started = f"with voice {SLOW.name}"
    for _ in range(int(ERROR_DEADLINE / 0.05)):
        if started in server.log_since(mark):
            break
        await asyncio.sleep(0.05)
    assert started in server.log_since(mark), server.log_since(mark)

    await setup.assert_fails_promptly(TEXT, "busy")
    setup.assert_speech(await first, LONG_TEXT, SLOW)
    log = server.log_since(mark)
    assert log.index("error busy:") < log.index(": done, "), f"the first request ended too soon:\n{log}"
    await setup.assert_still_serving()
