"""Requests from several clients sampled in one batch (``--batch-requests``): the same audio as one at a time.

Engine level: two requests with different voices (reference lengths, transcripts, loudness) and texts
of different chunk counts are driven side by side through ``Engine.run_batch``; every piece must equal the
piece each request gives on its own.  Server level: the real server (in-process, so the test can watch
the batches) with ``batch_requests=4`` serves concurrent clients whose voices fix their seeds; their
audio must equal what a one-at-a-time server sends, batches of two or more must really have run, and a
request that breaks its batch fails alone while the others get their full audio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import audio_of, connect, make_voice, read_until
from inprocess import run_server
from wyoming.tts import Synthesize, SynthesizeVoice

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions
from wyoming_ishowtts.engine.synthesis import ChunkJob, Synthesis
from wyoming_ishowtts.engine.voice import tone_clip

TEXTS = {
    "alpha": "A first request, with three parts. It keeps on going for a while. And then it ends.",
    "beta": "The second one is shorter. Two parts only.",
    "gamma": "Third voice here, speaking one longer sentence without much of a pause at all.",
}
POISON = "This request breaks any batch it is in."


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return Engine.load(EngineSettings(model_dir=tiny_model_dir, device="cpu", precision="fp32", nfe=2))


def test_requests_with_different_voices_share_a_batch(engine: Engine) -> None:
    loud = engine.prepare_voice(tone_clip(2.0, pitch=200, level=0.3), 24000, "Hello world.", trim=False)
    quiet = engine.prepare_voice(
        tone_clip(3.1, pitch=150, level=0.02), 24000, "A quieter and longer voice.", trim=False
    )
    assert quiet.rms < 0.1 < loud.rms and loud.mel.shape[1] != quiet.mel.shape[1]
    opts = SynthesisOptions(seed=3, max_chars=30, first_chunk_max_chars=None)
    requests = [(loud, TEXTS["alpha"]), (quiet, TEXTS["beta"])]

    alone = [[p.copy() for p in engine.synthesize(voice, text, opts)] for voice, text in requests]
    counts = [len(engine.plan(voice, text, opts)) for voice, text in requests]
    assert [len(p) for p in alone] == counts and counts[0] > counts[1] >= 2

    together: list[list[np.ndarray]] = [[], []]
    syntheses = [engine.begin(voice, text, opts) for voice, text in requests]
    batch_sizes = []
    while not all(s.finished for s in syntheses):
        pairs: list[tuple[int, Synthesis, ChunkJob]] = []
        for n, s in enumerate(syntheses):
            job = s.next_job()
            if job is not None:
                pairs.append((n, s, job))
        batch_sizes.append(len(pairs))
        results = engine.run_batch([job for _, _, job in pairs])
        for (n, s, job), waves in zip(pairs, results, strict=True):
            together[n] += s.deliver(job, waves, spent=0.1)
    assert batch_sizes == [2] * counts[1] + [1] * (counts[0] - counts[1])
    for a_pieces, b_pieces in zip(alone, together, strict=True):
        assert [len(p) for p in a_pieces] == [len(p) for p in b_pieces]
        for a, b in zip(a_pieces, b_pieces, strict=True):
            assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max()


def test_jobs_with_different_steps_are_not_batched(engine: Engine) -> None:
    voice = engine.prepare_voice(tone_clip(2.0, pitch=200, level=0.3), 24000, "Hello world.", trim=False)
    two = engine.begin(voice, "Two steps.", SynthesisOptions(nfe=2, seed=1)).next_job()
    three = engine.begin(voice, "Three steps.", SynthesisOptions(nfe=3, seed=1)).next_job()
    assert two is not None and three is not None
    with pytest.raises(ValueError, match="cannot share a batch"):
        engine.run_batch([two, three])


# -- the server ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch-voices")
    make_voice(root, "tone", toml="seed = 1\n")
    for n, name in enumerate(TEXTS):
        make_voice(
            root, name, transcript=f"Voice number {n} says hello.", seconds=2.0 + n, toml=f"seed = {n}\n"
        )
    return root


def _speak_together(uri: str, requests: list[tuple[str, str]]) -> list[list[Any]]:
    """All clients connect, then send at once; each reads its answer to the end (or to an error)."""

    async def one(text: str, voice: str, go: asyncio.Event) -> list[Any]:
        async with connect(uri) as client:
            await go.wait()
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=voice)).event())
            events = await read_until(client, "audio-stop" if text != POISON else "error")
            return events

    async def main() -> list[list[Any]]:
        go = asyncio.Event()
        tasks = [asyncio.create_task(one(text, voice, go)) for voice, text in requests]
        await asyncio.sleep(0.2)
        go.set()
        return list(await asyncio.gather(*tasks))

    return asyncio.run(main())


@pytest.fixture(scope="module")
def one_at_a_time(engine: Engine, voices: Path, tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    with run_server(engine, voices, tmp_path_factory.mktemp("cache-1")) as server:
        answers = _speak_together(server.uri, list(TEXTS.items()))
    return [audio_of(events) for events in answers]


def _batch_recorder(engine: Engine, monkeypatch: pytest.MonkeyPatch, poison: bool = False) -> list[int]:
    sizes: list[int] = []
    original = engine.run_batch

    def recording(jobs: Any) -> Any:
        sizes.append(len(jobs))
        if poison and any(POISON in text for job in jobs for text in job.texts):
            raise RuntimeError("injected: this request breaks its batch")
        return original(jobs)

    monkeypatch.setattr(engine, "run_batch", recording)
    return sizes


@pytest.fixture
def batching_server(engine: Engine, voices: Path, tmp_path: Path) -> Iterator[Any]:
    with run_server(engine, voices, tmp_path / "cache", batch_requests=4) as server:
        yield server


def _pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.int32)


def test_batched_server_sends_the_same_audio(
    engine: Engine, batching_server: Any, one_at_a_time: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _batch_recorder(engine, monkeypatch)
    answers = _speak_together(batching_server.uri, list(TEXTS.items()))
    assert max(sizes) >= 2, sizes  # batches really ran
    for events, expected in zip(answers, one_at_a_time, strict=True):
        got = audio_of(events)
        assert len(got) == len(expected)
        # Float rounding differs between batch shapes by ~1e-6 relative: at most a step or two of 16-bit PCM.
        assert np.abs(_pcm(got) - _pcm(expected)).max() <= 2


def test_a_request_that_breaks_its_batch_fails_alone(
    engine: Engine, batching_server: Any, one_at_a_time: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _batch_recorder(engine, monkeypatch, poison=True)
    requests = [*TEXTS.items(), ("tone", POISON)]
    *good, poisoned = _speak_together(batching_server.uri, requests)
    assert max(sizes) >= 2, sizes
    errors = [e.data for e in poisoned if e.type == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "synthesis-failed", errors
    for events, expected in zip(good, one_at_a_time, strict=True):
        assert "error" not in [e.type for e in events]
        assert np.abs(_pcm(audio_of(events)) - _pcm(expected)).max() <= 2


@pytest.mark.parametrize("flag", ["--batch-requests", "--length-bucket"])
def test_batch_flags_refuse_non_positive_values(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    from wyoming_ishowtts.server.cli import build_parser
    from wyoming_ishowtts.server.settings import ServerSettings

    with pytest.raises(SystemExit):
        build_parser().parse_args([flag, "0"])
    assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch_requests must be at least 1"):
        ServerSettings(batch_requests=0)
