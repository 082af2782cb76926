"""Home Assistant's own `wyoming` integration against the real server: fixtures and helpers.

These tests run in their own environment (``.venv-ha``: the Python and the pinned packages Home Assistant
needs, see README.md here). The server runs in the project's main environment (``.venv``) as a subprocess
on loopback, with a tiny random model on the CPU, exactly as a user starts it. Nothing here imports the
project: it needs torch, which ``.venv-ha`` does not have.

Every Home Assistant call that talks to the server runs under a deadline, so a request that would hang
fails its test instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import time
import wave
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from homeassistant.components import tts
from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component

ROOT = Path(__file__).resolve().parents[1]
# The server's environment and command line: what a user runs.
SERVER_PYTHON = ROOT / ".venv" / "bin" / "python"
SERVER_MODULE = "wyoming_ishowtts"
RANDOM_MODEL_MODULE = "wyoming_ishowtts.tools.random_model"

SAMPLE_RATE = 24000  # the server's native output rate (no --output-rate given)
MAX_TEXT_CHARS = 300
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
# A stream left open would end after this long; far beyond ERROR_DEADLINE, so a hang cannot pass as prompt.
STREAM_IDLE_TIMEOUT = 300
# A failing request must end in Home Assistant within this long: the server answers errors at once, and
# neither the server (no timeout on a plain request, STREAM_IDLE_TIMEOUT on a stream) nor Home Assistant
# (no read timeout) would end a hang sooner.
ERROR_DEADLINE = 15.0
# A successful request on the tiny model takes about a second; this only keeps a hang from blocking CI.
AUDIO_DEADLINE = 120.0


# -- voices ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceSpec:
    """A voice folder as a user writes it: reference.wav + reference.txt (+ voice.toml)."""

    name: str
    description: str
    languages: tuple[str, ...]
    transcript: str
    seconds: float
    pitch_hz: float
    extra_toml: str = ""
    broken: bool = False

    def write(self, root: Path) -> None:
        folder = root / self.name
        folder.mkdir(parents=True)
        if self.broken:
            # A RIFF header and no audio: the engine fails on it before any audio is produced.
            (folder / "reference.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all" * 8)
        else:
            write_speechlike_clip(folder / "reference.wav", self.seconds, self.pitch_hz)
        (folder / "reference.txt").write_text(self.transcript + "\n", encoding="utf-8")
        languages = ", ".join(f'"{lang}"' for lang in self.languages)
        toml = f'description = "{self.description}"\nlanguages = [{languages}]\n{self.extra_toml}'
        (folder / "voice.toml").write_text(toml, encoding="utf-8")

    def expected_seconds(self, text: str) -> float:
        """The server's (upstream's) duration rule: new audio = reference * text bytes / (transcript bytes + 2)."""
        return self.seconds * len(text.encode()) / (len(self.transcript.encode()) + 2)


TONE = VoiceSpec("tone", "Test tone", ("en",), "This is a short test voice.", 3.0, 180.0)
# Three times slower speech than TONE (same transcript length, three times the clip): its audio length
# tells which of the two voices spoke.
SECOND = VoiceSpec("second", "Second tone", ("en", "de"), "A slower second test voice.", 9.0, 120.0)
# Many sampler steps: a request that stays busy long enough for another one to arrive meanwhile.
SLOW = VoiceSpec("slow", "Slow tone", ("en",), TONE.transcript, TONE.seconds, 180.0, "nfe = 32\n")
BROKEN = VoiceSpec("broken", "Broken clip", ("en",), "Broken clip.", 0.0, 0.0, broken=True)
VOICES = (TONE, SECOND, SLOW, BROKEN)


def write_speechlike_clip(path: Path, seconds: float, pitch_hz: float) -> None:
    """A harmonic tone at syllable-rate loudness with two short pauses, as 16-bit mono WAV."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = 0.3 * np.sin(2 * np.pi * pitch_hz * t) + 0.15 * np.sin(2 * np.pi * 2 * pitch_hz * t)
    audio *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    for start in (0.3, 0.65):
        audio[int(start * len(t)) : int((start + 0.05) * len(t))] = 0.0
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((audio * 32767).astype("<i2").tobytes())


# -- the server --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m wyoming_ishowtts`` in the main environment, logging to a file."""

    host = "127.0.0.1"

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.args = ["--uri", f"tcp://{self.host}:{self.port}", *args]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(SERVER_PYTHON), "-m", SERVER_MODULE, *self.args],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_TIMEOUT
        while "Model ready" not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server not ready within {START_TIMEOUT:.0f} s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> int | None:
        """SIGTERM as a service manager sends it; a kill only if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_mark(self) -> int:
        """A position in the log; `log_since` returns what was written after it."""
        return len(self.log())

    def log_since(self, mark: int) -> str:
        return self.log()[mark:]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    subprocess.run(
        [str(SERVER_PYTHON), "-m", RANDOM_MODEL_MODULE, "--size", "tiny", str(out)],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    return out


@pytest.fixture(scope="session")
def voices_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voices")
    for voice in VOICES:
        voice.write(root)
    return root


@dataclass(frozen=True)
class ServerKind:
    """How a test's server is started: whether it declares streaming, and its queue limit."""

    streaming: bool
    max_queued_total: int = 8

    @property
    def label(self) -> str:
        path = "streaming" if self.streaming else "plain"
        return path if self.max_queued_total == 8 else f"{path}-queue{self.max_queued_total}"


class Servers:
    """One server per kind, started on first use and stopped (cleanly, checked) at the end."""

    def __init__(self, model_dir: Path, voices_dir: Path, workdir: Path) -> None:
        self._model_dir = model_dir
        self._voices_dir = voices_dir
        self._workdir = workdir
        self._started: dict[ServerKind, Server] = {}

    def get(self, kind: ServerKind) -> Server:
        if kind not in self._started:
            workdir = self._workdir / kind.label
            workdir.mkdir()
            args = [
                "--model-dir", str(self._model_dir), "--device", "cpu", "--threads", "1", "--nfe", "4",
                "--voices-dir", str(self._voices_dir), "--voice", TONE.name, "--no-builtin-voice",
                "--cache-dir", str(workdir / "cache"), "--debug",
                "--max-text-chars", str(MAX_TEXT_CHARS),
                "--max-queued-total", str(kind.max_queued_total),
                "--stream-idle-timeout", str(STREAM_IDLE_TIMEOUT),
            ]  # fmt: skip
            if not kind.streaming:
                args.append("--no-streaming")
            server = Server(args, workdir / "server.log")
            server.start()
            self._started[kind] = server
        return self._started[kind]

    def stop_all(self) -> dict[str, tuple[int | None, str]]:
        return {kind.label: (server.stop(), server.log()) for kind, server in self._started.items()}


@pytest.fixture(scope="session")
def servers(model_dir: Path, voices_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    started = Servers(model_dir, voices_dir, tmp_path_factory.mktemp("servers"))
    yield started
    for label, (status, log) in started.stop_all().items():
        assert status == 0, f"{label} server exited with {status}:\n{log}"


# -- Home Assistant ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def deadline(seconds: float, what: str) -> AsyncIterator[None]:
    """Fail (not hang) when Home Assistant has not finished `what` within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        pytest.fail(f"Home Assistant did not finish {what} within {seconds:g} s (it hangs)")


@pytest.fixture
async def ha(hass: HomeAssistant, tmp_path: Path, socket_enabled: None) -> HomeAssistant:
    """Home Assistant's test instance, keeping its files (the TTS cache) in the test's folder.

    Sockets are allowed, to 127.0.0.1 only (pytest-homeassistant-custom-component's rule): the server.
    """
    hass.config.config_dir = str(tmp_path)
    # Always set up in a running Home Assistant; `conversation` (a dependency of `wyoming`) needs it.
    assert await async_setup_component(hass, "homeassistant", {})
    return hass


async def add_entry_by_user_flow(hass: HomeAssistant, server: Server) -> ConfigEntry:
    """The config flow a user goes through in the UI: Add integration -> Wyoming -> host and port."""
    async with deadline(30, "the config flow"):
        result = await hass.config_entries.flow.async_init("wyoming", context={"source": SOURCE_USER})
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "user"
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"host": server.host, "port": server.port}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY, result
        await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    return entry


def tts_entity_id(hass: HomeAssistant, entry: ConfigEntry) -> str:
    entities = [e.entity_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)]
    assert [e for e in entities if e.startswith("tts.")] == entities and len(entities) == 1, entities
    return entities[0]


@dataclass
class TtsResult:
    status: int
    body: bytes
    seconds: float  # how long Home Assistant took


async def request_audio(
    hass: HomeAssistant,
    hass_client: Any,
    entity_id: str,
    deltas: bool,
    text: str,
    voice: str | None = None,
    limit: float = AUDIO_DEADLINE,
) -> TtsResult:
    """Ask Home Assistant for speech and fetch it from its URL, as a media player does.

    deltas=False: the whole text through Home Assistant's HTTP API (``/api/tts_get_url``), as the UI and
    automations send it. deltas=True: the text word by word into a TTS result stream, as the voice
    pipeline streams an LLM's answer. Which reader the integration uses (plain ``synthesize`` or the
    streaming events) depends only on whether the server declares streaming.
    """
    options: dict[str, Any] = {"preferred_format": "wav"}  # Home Assistant's default, mp3, needs ffmpeg
    if voice is not None:
        options["voice"] = voice
    client = await hass_client()
    started = time.monotonic()
    async with deadline(limit, f"speaking {text[:40]!r} (voice {voice})"):
        if deltas:
            stream = tts.async_create_stream(hass, entity_id, "en", options)
            stream.async_set_message_stream(word_deltas(text))
            url = stream.url
        else:
            response = await client.post(
                "/api/tts_get_url",
                json={
                    "engine_id": entity_id,
                    "message": text,
                    "language": "en",
                    "options": options,
                    "cache": False,
                },
            )
            assert response.status == 200, await response.text()
            url = (await response.json())["path"]
        response = await client.get(url)
        body = await response.read()
    return TtsResult(response.status, body, time.monotonic() - started)


async def word_deltas(text: str) -> AsyncGenerator[str]:
    """Text as an LLM streams it into Home Assistant: one word at a time."""
    for i, word in enumerate(text.split(" ")):
        yield word if i == 0 else " " + word
        await asyncio.sleep(0.01)


@dataclass(frozen=True)
class Wav:
    rate: int
    width: int
    channels: int
    declared_data_bytes: int
    pcm: bytes

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (self.rate * self.width * self.channels)


def parse_wav(body: bytes) -> Wav:
    """A PCM WAV as Home Assistant builds it; a streamed one declares 0 data bytes and runs to the end."""
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE", body[:16]
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(body):
        chunk_id, size = body[pos : pos + 4], struct.unpack("<I", body[pos + 4 : pos + 8])[0]
        if chunk_id == b"fmt ":
            audio_format, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[pos + 8 : pos + 24])
            fmt = (audio_format, channels, rate, bits)
        elif chunk_id == b"data":
            assert fmt is not None, "data before fmt"
            audio_format, channels, rate, bits = fmt
            assert audio_format == 1, f"not PCM: format {audio_format}"
            return Wav(rate, bits // 8, channels, size, body[pos + 8 :])
        pos += 8 + size
    raise AssertionError("no data chunk")
