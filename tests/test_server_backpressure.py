"""Promises of issue 6 (items 1, 4, 5) that the older server tests did not prove yet.

- A client that stops reading does not make the server synthesize (and buffer) its answer without
  limit, other clients keep being served, and the stalled client still gets all of its audio once it
  reads again.
- An idle stream's queue slot is given back when it times out.
- SIGTERM while a voice cache file is being written: exit 0 in bounded time, no partial file left.
- Checkpoints and voice cache files never run code on load (``weights_only``/safetensors).
- The server binds to loopback unless told otherwise, and the docs say Wyoming has no authentication.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import (
    ROOT,
    TONE_TRANSCRIPT,
    audio_of,
    connect,
    expected_seconds,
    free_port,
    make_voice,
    read_until,
)
from inprocess import run_server
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeVoice

from wyoming_ishowtts.engine import Engine, EngineSettings
from wyoming_ishowtts.engine.reference import load_audio
from wyoming_ishowtts.errors import ModelLoadError
from wyoming_ishowtts.server.cli import build_parser, server_settings_from_args
from wyoming_ishowtts.voices.cache import PreparedVoices

SENTENCE = "Sentence number {n} of a long answer that nobody is listening to right now."
STALLED_TEXT = " ".join(SENTENCE.format(n=n) for n in range(1, 61))


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(EngineSettings(model_dir=tiny_model_dir, device="cpu", precision="fp32", nfe=2))


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hardening-voices")
    make_voice(root, "tone")
    return root


def _check_audio(events: list[Event], text: str) -> None:
    types = [e.type for e in events]
    assert "error" not in types, [e.data for e in events if e.type == "error"]
    assert types.count("audio-start") == 1 and types[-1] == "audio-stop", types
    seconds = len(audio_of(events)) / 2 / 24000
    assert 0.6 * expected_seconds(text) < seconds < 1.4 * expected_seconds(text), seconds


def test_client_that_stops_reading_is_not_buffered_without_limit(
    engine: Engine, voices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    max_buffered = 2
    voice = engine.prepare_voice(*load_audio(voices / "tone" / "reference.wav"), text=TONE_TRANSCRIPT)
    chunks = len(engine.plan(voice, STALLED_TEXT))
    synthesized: list[int] = []  # samples of each piece the engine produced, in order
    original = engine._synthesize_chunks

    def counting(*args: Any, **kwargs: Any) -> Any:
        waves = original(*args, **kwargs)
        synthesized.extend(len(wave) for wave in waves)
        return waves

    monkeypatch.setattr(engine, "_synthesize_chunks", counting)
    with run_server(engine, voices, tmp_path / "cache", max_buffered_pieces=max_buffered) as server:

        async def go() -> None:
            # A client with a small receive buffer that sends a long request and then reads nothing.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.connect(("127.0.0.1", server.port))
            sock.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=sock)
            await async_write_event(
                Synthesize(text=STALLED_TEXT, voice=SynthesizeVoice(name="tone")).event(), writer
            )

            # The engine stops producing for it once the socket and the per-request buffer are full.
            last, since = -1, time.monotonic()
            deadline = time.monotonic() + 60
            while time.monotonic() - since < 2.0:
                assert time.monotonic() < deadline, "the engine never stopped for the stalled client"
                if len(synthesized) != last:
                    last, since = len(synthesized), time.monotonic()
                await asyncio.sleep(0.1)
            stalled_at = len(synthesized)
            assert stalled_at < chunks, (
                f"all {chunks} chunks were synthesized for a client that reads nothing"
            )
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
                _check_audio(await asyncio.wait_for(read_until(client, "audio-stop"), 30), other)
            assert len(synthesized) == stalled_at + 1, "the stalled request ran ahead"

            # Nothing was dropped: once it reads again, the stalled client gets its whole answer.
            events: list[Event] = []
            async with asyncio.timeout(120):
                while not events or events[-1].type != "audio-stop":
                    event = await async_read_event(reader)
                    assert event is not None, "connection closed"
                    events.append(event)
            writer.close()
            _check_audio(events, STALLED_TEXT)
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
                _check_audio(answer, text)
                return answer

        asyncio.run(go())


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


def test_stale_temporary_cache_files_are_removed_at_start(tmp_path: Path) -> None:
    """A server killed (SIGKILL, power loss) mid-write leaves a temporary file; the next start removes it."""
    folder = tmp_path / "voices"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = folder / f".abc.{dead.pid}.0123.tmp.voice"
    ours = folder / f".abc.{os.getpid()}.4567.tmp.voice"
    alive = folder / f".abc.{os.getppid()}.89ab.tmp.voice"  # another live process may be writing it
    kept = folder / "abc.voice"
    for path in (stale, ours, alive, kept):
        path.write_bytes(b"partial")
    PreparedVoices(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([alive.name, kept.name])


class _RunsCode:
    """Unpickling this with weights_only=False calls os.mkdir(marker): a stand-in for any payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_pickle_checkpoint_cannot_run_code(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    tensors: dict[str, Any] = dict(load_file(str(folder / "model.safetensors")))
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    tensors["surprise"] = _RunsCode(marker)
    torch.save({"ema_model_state_dict": tensors}, folder / "model_1200000.pt")
    with pytest.raises(ModelLoadError, match=r"model_1200000\.pt"):
        Engine.load(EngineSettings(model_dir=folder, device="cpu", precision="fp32"))
    assert not marker.exists(), "loading the checkpoint ran code"
    # The same file does run code when loaded the unsafe way: the test above is not vacuous.
    torch.load(folder / "model_1200000.pt", weights_only=False)
    assert marker.is_dir()


def test_listens_on_loopback_by_default_and_docs_warn_about_authentication() -> None:
    settings = server_settings_from_args(build_parser().parse_args([]))
    assert settings.uri == "tcp://127.0.0.1:10200"
    docs = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    assert "no authentication" in docs and "firewall" in docs
    assert "no authentication" in build_parser().format_help()


def test_describe_is_answered_while_a_client_is_stalled(engine: Engine, voices: Path, tmp_path: Path) -> None:
    """The stalled client of the first test blocks only its own connection, never the server's loop."""
    with run_server(engine, voices, tmp_path / "cache", max_buffered_pieces=1) as server:

        async def go() -> float:
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            body = json.dumps({"text": STALLED_TEXT, "voice": {"name": "tone"}}).encode()
            writer.write(json.dumps({"type": "synthesize", "data_length": len(body)}).encode() + b"\n" + body)
            await writer.drain()
            await asyncio.sleep(1.0)
            async with connect(server.uri) as client:
                started = time.monotonic()
                await client.write_event(Describe().event())
                await read_until(client, "info")
                elapsed = time.monotonic() - started
            writer.close()
            return elapsed

        assert asyncio.run(go()) < 0.5
