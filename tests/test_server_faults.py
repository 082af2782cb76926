"""Faults the server meets: every one gives a clear error or log line, and the server goes on.

Faults inside the engine (an exception, CUDA out-of-memory, a NaN) are injected into a real tiny
engine that the real server (in-process: see ``inprocess.py``) drives over loopback TCP; how the engine
itself takes them is in test_engine_faults.py.  Out-of-memory is simulated on the CPU by raising ``torch.cuda.OutOfMemoryError`` from the
sampler, which is where PyTorch raises it on a GPU.  Voice faults use real files: a reference clip
that vanished, is silent, too short or not audio, and a prepared-voice cache file that is garbage,
truncated, or a pickle that would run code.  After each fault the same connection gets full audio,
and the voice prepared before the faults is neither re-prepared nor rewritten.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import (
    TONE_TRANSCRIPT,
    RunsCode,
    check_audio,
    connect,
    load_tiny_engine,
    make_voice,
    nan_forward_once,
    read_until,
    write_tone_clip,
)
from inprocess import InProcessServer, run_server
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from wyoming_ishowtts.engine import Engine, Voice
from wyoming_ishowtts.engine import batch as batch_module
from wyoming_ishowtts.engine.reference import load_audio
from wyoming_ishowtts.voices.cache import cache_file, prepared_voice_key, read_clip, write_clip
from wyoming_ishowtts.voices.registry import VoiceRegistry

GOOD_TEXT = "The server is still speaking."


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return load_tiny_engine(tiny_model_dir)


@pytest.fixture(scope="module")
def fault_voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fault-voices")
    make_voice(root, "tone")
    make_voice(root, "vanishing")
    silent = root / "silent"
    write_tone_clip(silent / "reference.wav", silent=True)
    (silent / "reference.txt").write_text("Nothing at all.\n", encoding="utf-8")
    make_voice(root, "short", seconds=0.05)
    not_audio = root / "not-audio"
    not_audio.mkdir()
    (not_audio / "reference.wav").write_bytes(b"this is a text file, not a wave file\n" * 50)
    (not_audio / "reference.txt").write_text("Not audio.\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def server(
    engine: Engine, fault_voices: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessServer]:
    with run_server(engine, fault_voices, tmp_path_factory.mktemp("fault-cache")) as running:
        yield running


@pytest.fixture(scope="module")
def tone_cache(server: InProcessServer, engine: Engine, fault_voices: Path) -> tuple[Path, bytes, int]:
    """The good voice, prepared and cached before any fault: (file, its bytes, its mtime)."""
    check_audio(speak(server), GOOD_TEXT)
    path = cached_voice(server, engine, fault_voices, "tone")
    assert path.is_file()
    return path, path.read_bytes(), path.stat().st_mtime_ns


def cached_voice(server: InProcessServer, engine: Engine, voices: Path, name: str) -> Path:
    info = VoiceRegistry([voices], builtin=None).scan()[name]
    key = prepared_voice_key(info.reference_audio.read_bytes(), info.transcript, engine.identity)
    return cache_file(server.settings.cache_dir, key)


def synth(text: str, voice: str = "tone") -> Event:
    return Synthesize(text=text, voice=SynthesizeVoice(name=voice)).event()


def speak(server: InProcessServer, text: str = GOOD_TEXT, voice: str = "tone") -> list[Event]:
    """One well-formed request on a fresh connection, read to its end."""

    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(synth(text, voice))
            return await read_until(client, "audio-stop")

    return asyncio.run(go())


def _read_through_error(server: InProcessServer, events: list[Event]) -> tuple[list[Event], list[Event]]:
    """Send ``events`` (one failing request) and read how it ends, then a good request.

    A failed stream ends with ``synthesize-stopped`` and its connection serves the good request; a failed
    plain ``synthesize`` ends with the server closing the connection (what Home Assistant's reader needs),
    so the good request goes on a new connection.
    """

    async def go() -> tuple[list[Event], list[Event]]:
        async with connect(server.uri) as client:
            for sent in events:
                await client.write_event(sent)
            failed = await read_until(client, "error")
            if events[0].type == "synthesize-start":
                failed += await read_until(client, "synthesize-stopped")
                await client.write_event(synth(GOOD_TEXT))
                return failed, await read_until(client, "audio-stop")
            while (event := await asyncio.wait_for(client.read_event(), 10)) is not None:
                failed.append(event)  # audio-stop when audio had started, then the close
        async with connect(server.uri) as client:
            await client.write_event(synth(GOOD_TEXT))
            return failed, await read_until(client, "audio-stop")

    return asyncio.run(go())


def error_of(events: list[Event]) -> dict[str, Any]:
    errors = [e.data for e in events if e.type == "error"]
    assert len(errors) == 1, [e.type for e in events]
    return errors[0]


def assert_tone_cache_intact(tone_cache: tuple[Path, bytes, int]) -> None:
    path, data, mtime = tone_cache
    assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime, "the cached voice was rewritten"


# -- faults inside the engine, over the wire -----------------------------------------------------------


def test_engine_exception(
    server: InProcessServer, engine: Engine, tone_cache: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="wyoming_ishowtts")
    original = engine.run_batch
    calls: list[int] = []

    def broken_once(*args: Any, **kwargs: Any) -> list[list[np.ndarray]]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected engine fault")
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "run_batch", broken_once)
    failed, good = _read_through_error(server, [synth("This request meets a broken engine.")])
    assert error_of(failed)["code"] == "synthesis-failed"
    assert "injected engine fault" in caplog.text and "Traceback" in caplog.text  # the log has the cause
    check_audio(good, GOOD_TEXT)
    assert_tone_cache_intact(tone_cache)


def test_engine_failure_after_audio_ends_with_audio_stop_then_the_close(
    server: InProcessServer, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain request that fails on its second chunk: the audio already sent, the error, audio-stop (a
    reader that ignores errors ends there), then the connection closes."""
    original = engine.run_batch
    calls: list[int] = []

    def broken_second(*args: Any, **kwargs: Any) -> list[list[np.ndarray]]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected engine fault on the second chunk")
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "run_batch", broken_second)
    text = "The first part is here. " + "Then comes a second sentence, long enough to be its own chunk. " * 2
    failed, good = _read_through_error(server, [synth(text)])
    types = [e.type for e in failed]
    assert types[0] == "audio-start" and "audio-chunk" in types, types
    assert types[-2:] == ["error", "audio-stop"], types
    assert failed[-2].data["code"] == "synthesis-failed"
    check_audio(good, GOOD_TEXT)


def test_cuda_out_of_memory(
    server: InProcessServer, tone_cache: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="wyoming_ishowtts")
    original = batch_module.sample
    calls: list[int] = []

    def oom_once(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
        return original(*args, **kwargs)

    monkeypatch.setattr(batch_module, "sample", oom_once)
    failed, good = _read_through_error(server, [synth("This request runs out of GPU memory.")])
    error = error_of(failed)
    assert error["code"] == "synthesis-failed"
    assert "out of memory" in error["text"] and "shorter text" in error["text"]
    check_audio(good, GOOD_TEXT)
    assert_tone_cache_intact(tone_cache)


def test_nan_in_fp32_is_reported(
    server: InProcessServer, engine: Engine, tone_cache: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fp32 has nothing to fall back to: a non-finite result is an error, never noise sent as audio."""
    nan_forward_once(engine.model, monkeypatch)
    failed, good = _read_through_error(server, [synth("This request gets a NaN.")])
    error = error_of(failed)
    assert error["code"] == "synthesis-failed" and "non-finite" in error["text"]
    assert "audio-chunk" not in [e.type for e in failed]
    check_audio(good, GOOD_TEXT)
    assert engine.dtype == torch.float32
    assert_tone_cache_intact(tone_cache)


def test_engine_failure_in_a_stream_still_ends_the_stream(
    server: InProcessServer, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Home Assistant waits for synthesize-stopped whatever happens: it must come after the error."""
    nan_forward_once(engine.model, monkeypatch)
    events = [
        SynthesizeStart(voice=SynthesizeVoice(name="tone")).event(),
        SynthesizeChunk(text="A stream that fails.").event(),
        SynthesizeStop().event(),
    ]
    failed, good = _read_through_error(server, events)
    assert error_of(failed)["code"] == "synthesis-failed"
    assert failed[-1].type == "synthesize-stopped"
    check_audio(good, GOOD_TEXT)


def test_a_sticky_cuda_error_is_fatal_readiness_drops_and_the_server_exits_non_zero(
    engine: Engine, fault_voices: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """An illegal memory access leaves the CUDA context broken: every later request would fail the same
    way behind a server that says "(model ready)". Injected where torch raises it (the sampler): the
    request gets its error, the log says why, readiness drops and the server stops with exit status 1,
    for a supervisor to restart it. (Its own server: this one does not go on.)"""
    caplog.set_level(logging.INFO, logger="wyoming_ishowtts")

    def illegal_address(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise getattr(torch, "AcceleratorError", RuntimeError)(  # torch >= 2.8; a RuntimeError before
            "CUDA error: an illegal memory access was encountered\n"
            "CUDA kernel errors might be asynchronously reported at some other API call"
        )

    with run_server(engine, fault_voices, tmp_path / "cache") as server:
        check_audio(speak(server), GOOD_TEXT)  # serving, and ready, before the fault
        assert server.worker.ready.is_set()
        monkeypatch.setattr(batch_module, "sample", illegal_address)

        async def go() -> list[Event]:
            async with connect(server.uri) as client:
                await client.write_event(synth("This request breaks the GPU."))
                return await read_until(client, "error")

        failed = asyncio.run(go())
        assert "illegal memory access" in error_of(failed)["text"]
        server.thread.join(30)  # nobody asked it to stop: it stops by itself
        assert not server.thread.is_alive(), "the server went on after the GPU broke"
        assert server.status == [1]
        assert not server.worker.ready.is_set()
    assert "The GPU is unusable for this process (CUDA error: an illegal memory access" in caplog.text
    assert "Stopping: the model could not be loaded, or its GPU failed" in caplog.text


def test_only_errors_that_break_the_cuda_context_count_as_sticky() -> None:
    from wyoming_ishowtts.engine.hardware import sticky_cuda_error

    assert sticky_cuda_error(RuntimeError("CUDA error: device-side assert triggered\nmore")) == (
        "CUDA error: device-side assert triggered"
    )
    try:
        try:
            raise RuntimeError("CUDA error: unspecified launch failure")
        except RuntimeError as inner:
            raise ValueError("while vocoding") from inner
    except ValueError as outer:
        assert sticky_cuda_error(outer) == "CUDA error: unspecified launch failure"  # found in the chain
    for harmless in (
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: invalid argument"),
        RuntimeError("injected engine fault"),
        ValueError("an illegal memory access was encountered in a text"),  # no CUDA
    ):
        assert sticky_cuda_error(harmless) is None, harmless


# -- faults in the voices --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("voice", "code", "words"),
    [
        ("silent", "voice-invalid", "silent"),
        ("short", "voice-invalid", "at least"),
        ("not-audio", "voice-invalid", "not-audio"),
    ],
)
def test_unusable_reference_clip(
    server: InProcessServer, tone_cache: Any, voice: str, code: str, words: str
) -> None:
    failed, good = _read_through_error(server, [synth("Say this in a broken voice.", voice)])
    error = error_of(failed)
    assert error["code"] == code and words in error["text"].lower(), error
    check_audio(good, GOOD_TEXT)
    assert_tone_cache_intact(tone_cache)


def test_reference_clip_missing(server: InProcessServer, fault_voices: Path, tone_cache: Any) -> None:
    """The clip was there when the voices were scanned and is gone when the voice is first used."""
    server.registry.scan()
    assert "vanishing" in server.registry.voices
    (fault_voices / "vanishing" / "reference.wav").unlink()
    failed, good = _read_through_error(
        server, [synth("Say this in a voice whose clip is gone.", "vanishing")]
    )
    error = error_of(failed)
    assert error["code"] == "voice-unavailable" and "vanishing" in error["text"], error
    check_audio(good, GOOD_TEXT)
    assert_tone_cache_intact(tone_cache)


def _garbage(path: Path, engine: Engine, clip: Path, marker: Path) -> None:
    path.write_bytes(b"\x00garbage, not a voice cache" * 10)


def _truncated(path: Path, engine: Engine, clip: Path, marker: Path) -> None:
    audio, rate = load_audio(clip)
    write_clip(engine.prepare_voice(audio, rate, TONE_TRANSCRIPT), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _malicious(path: Path, engine: Engine, clip: Path, marker: Path) -> None:
    torch.save({"format": 1, "audio": torch.zeros(1, 5000), "payload": RunsCode(marker)}, path)


@pytest.mark.parametrize(
    "corrupt", [_garbage, _truncated, _malicious], ids=["garbage", "truncated", "pickle"]
)
def test_corrupt_voice_cache_is_rebuilt_from_the_clip(
    server: InProcessServer,
    engine: Engine,
    fault_voices: Path,
    tone_cache: Any,
    tmp_path: Path,
    corrupt: Any,
    caplog: Any,
) -> None:
    caplog.set_level(logging.INFO, logger="wyoming_ishowtts")
    kinds = [_garbage, _truncated, _malicious]
    name = f"cached-{corrupt.__name__.strip('_')}"
    # A clip of its own length, so its cache key differs from every other voice's.
    seconds = 2.0 + 0.1 * kinds.index(corrupt)
    make_voice(fault_voices, name, seconds=seconds)
    path = cached_voice(server, engine, fault_voices, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "code-ran"
    corrupt(path, engine, fault_voices / name / "reference.wav", marker)
    bad = path.read_bytes()

    check_audio(speak(server, GOOD_TEXT, name), GOOD_TEXT, seconds=seconds)
    assert "Rebuilding voice cache" in caplog.text
    assert not marker.exists(), "the cache file's pickle ran code"
    assert path.read_bytes() != bad
    assert isinstance(engine.voice(read_clip(path)), Voice), "the rebuilt cache file does not load"
    assert not list(path.parent.glob(".*tmp*")), "a temporary file was left behind"
    assert_tone_cache_intact(tone_cache)


def test_the_malicious_pickle_would_run_code_without_weights_only(tmp_path: Path) -> None:
    """Keeps the pickle test honest: the payload really executes when loaded without weights_only."""
    marker = tmp_path / "code-ran"
    torch.save({"payload": RunsCode(marker)}, tmp_path / "evil.voice")
    torch.load(tmp_path / "evil.voice", weights_only=False)
    assert marker.is_dir()


def test_nothing_cached_was_lost(server: InProcessServer, tone_cache: Any, caplog: Any) -> None:
    """After every fault above, the good voice is served from memory: not prepared or read again."""
    caplog.set_level(logging.DEBUG, logger="wyoming_ishowtts")
    check_audio(speak(server), GOOD_TEXT)
    assert "Prepared voice tone" not in caplog.text and "Loaded prepared voice tone" not in caplog.text
    assert_tone_cache_intact(tone_cache)
