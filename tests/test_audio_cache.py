"""The audio cache (server/audio_cache.py): a segment said before is answered from disk, without the engine.

The real server runs in-process (inprocess.py) with the tiny model, and every test counts what the engine
does (`Engine.run_batch` calls, and the text of each job) instead of timing anything: "a hit takes no
engine step" is `0 steps`, on any machine however loaded. The voices' seeds are random (upstream's
default), so a second synthesis of the same text would not give the same audio: equal audio is evidence
of the cache, not of determinism.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import audio_of, check_audio, connect, load_tiny_engine, make_voice, read_until
from inprocess import InProcessServer, run_server
from test_server_backpressure import STALLED_TEXT, stalled_client
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from wyoming_ishowtts.engine import Engine
from wyoming_ishowtts.server.audio_cache import AudioCache, cache_folder, segment_key

MB = 1024 * 1024


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return load_tiny_engine(tiny_model_dir)


class Steps:
    """Counts the engine's batches and records the text chunks each sampled."""

    def __init__(self) -> None:
        self.calls = 0
        self.texts: list[str] = []
        self.completed: list[str] = []  # the texts of the batches that ran to their end, in order
        self.gate: threading.Event | None = None  # when set, the next batch waits for it

    def __len__(self) -> int:
        return self.calls


@pytest.fixture
def steps(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Steps:
    counter = Steps()
    original = engine.run_batch

    def counted(jobs: Sequence[Any]) -> list[list[np.ndarray]]:
        counter.calls += 1
        counter.texts += [text for job in jobs for text in job.texts]
        gate = counter.gate
        if gate is not None:
            assert gate.wait(60)
        waves = original(jobs)
        counter.completed += [text for job in jobs for text in job.texts]
        return waves

    monkeypatch.setattr(engine, "run_batch", counted)
    return counter


@pytest.fixture
def voices(tmp_path: Path) -> Path:
    root = tmp_path / "voices"
    make_voice(root, "tone")
    make_voice(root, "fast", toml="speed = 1.3\n")
    return root


@pytest.fixture
def server(engine: Engine, voices: Path, tmp_path: Path) -> Iterator[InProcessServer]:
    with run_server(engine, voices, tmp_path / "cache") as running:
        yield running


def synth(text: str, voice: str = "tone") -> Event:
    return Synthesize(text=text, voice=SynthesizeVoice(name=voice)).event()


def speak(server: InProcessServer, text: str, voice: str = "tone") -> list[Event]:
    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(synth(text, voice))
            return await read_until(client, "audio-stop")

    return asyncio.run(go())


def stream(server: InProcessServer, deltas: Sequence[str], voice: str = "tone") -> list[Event]:
    async def go() -> list[Event]:
        async with connect(server.uri) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=voice)).event())
            for delta in deltas:
                await client.write_event(SynthesizeChunk(text=delta).event())
            await client.write_event(SynthesizeStop().event())
            events = await read_until(client, "synthesize-stopped")
            return events

    return asyncio.run(go())


def entries(server: InProcessServer) -> list[Path]:
    """The cache's entry files, after every store the worker has handed to its cache thread."""
    wait_for(lambda: not server.worker._writes)
    folder = cache_folder(server.settings.cache_dir)
    return sorted(folder.glob("*.pcm")) if folder.is_dir() else []


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def cache_stats(server: InProcessServer) -> dict[str, Any]:
    stats = server.worker.cache_stats()
    assert stats is not None, "the audio cache is off"
    return stats


def wait_stored(server: InProcessServer, count: int) -> None:
    """The cache thread stores an entry after the answer's audio-stop: wait until `count` are stored."""
    wait_for(lambda: cache_stats(server)["entries"] >= count)


# -- the same text again -----------------------------------------------------------------------------


def test_a_repeated_plain_request_is_bit_identical_and_takes_no_engine_step(
    server: InProcessServer, steps: Steps
) -> None:
    text = "Turned on the kitchen light."
    first = speak(server, text)
    check_audio(first, text)
    synthesized = len(steps)
    assert synthesized > 0
    wait_stored(server, 1)
    second = speak(server, text)
    assert len(steps) == synthesized, "the repeat ran the engine"
    assert audio_of(second) == audio_of(first)
    check_audio(second, text)
    stats = cache_stats(server)
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)


def test_a_repeated_stream_is_bit_identical_and_takes_no_engine_step(
    server: InProcessServer, steps: Steps
) -> None:
    deltas = ["Timer set for ", "five minutes. The oven ", "is preheating."]
    first = stream(server, deltas)
    assert first[-1].type == "synthesize-stopped"
    check_audio(first[:-1], "Timer set for five minutes.", "The oven is preheating.")
    synthesized = len(steps)
    wait_stored(server, 2)
    second = stream(server, deltas)
    assert len(steps) == synthesized, "the repeat ran the engine"
    assert audio_of(second) == audio_of(first)
    assert second[-1].type == "synthesize-stopped"


def test_a_stream_reuses_a_sentence_said_before_and_synthesizes_only_the_rest(
    server: InProcessServer, steps: Steps
) -> None:
    said = speak(server, "Sorry, I couldn't understand that.")
    wait_stored(server, 1)
    steps.texts.clear()
    events = stream(server, ["Sorry, I couldn't understand that. ", "Please say it again."])
    check_audio(events[:-1], "Sorry, I couldn't understand that.", "Please say it again.")
    assert steps.texts and all("understand" not in text for text in steps.texts), steps.texts
    assert audio_of(events).startswith(audio_of(said))


def test_a_server_restarted_on_the_same_folder_hits(
    engine: Engine, voices: Path, tmp_path: Path, steps: Steps
) -> None:
    text = "The front door is locked."
    with run_server(engine, voices, tmp_path / "cache") as first_server:
        first = speak(first_server, text)
        wait_stored(first_server, 1)
    synthesized = len(steps)
    with run_server(engine, voices, tmp_path / "cache") as second_server:
        assert cache_stats(second_server)["entries"] == 1
        second = speak(second_server, text)
    assert len(steps) == synthesized
    assert audio_of(second) == audio_of(first)


def test_another_text_voice_speed_or_transcript_misses(
    server: InProcessServer, voices: Path, steps: Steps
) -> None:
    speak(server, "Good morning.")
    wait_stored(server, 1)
    for text, voice in [("Good evening.", "tone"), ("Good morning.", "fast")]:
        before = len(steps)
        speak(server, text, voice)
        assert len(steps) > before, (text, voice)
    # The transcript edited: the voice's audio may differ, so its entries are not used.
    (voices / "tone" / "reference.txt").write_text("A different transcript here.\n", encoding="utf-8")
    server.registry.scan()
    before = len(steps)
    speak(server, "Good morning.")
    assert len(steps) > before


def test_with_the_cache_off_a_repeat_is_synthesized_again(
    engine: Engine, voices: Path, tmp_path: Path, steps: Steps
) -> None:
    with run_server(engine, voices, tmp_path / "cache", audio_cache_bytes=0) as running:
        speak(running, "Hello again.")
        before = len(steps)
        speak(running, "Hello again.")
        assert len(steps) > before
        assert running.worker.cache_stats() is None
    assert not cache_folder(tmp_path / "cache").exists()


# -- damage and concurrency ---------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_entry_is_a_miss_and_is_written_again(
    server: InProcessServer, steps: Steps, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    text = "The garage door is open."
    speak(server, text)
    wait_stored(server, 1)
    (entry,) = entries(server)
    size = entry.stat().st_size
    data = bytearray(entry.read_bytes())
    if damage == "truncated":
        del data[size // 2 :]
    else:
        data[-100] ^= 0x40
    entry.write_bytes(bytes(data))
    before = len(steps)
    again = speak(server, text)
    check_audio(again, text)
    assert len(steps) > before, "the damaged entry was sent"
    assert "is unusable" in caplog.text
    wait_stored(server, 1)
    wait_for(lambda: entry.is_file() and entry.stat().st_size == size)
    before = len(steps)
    third = speak(server, text)
    assert len(steps) == before
    assert audio_of(third) == audio_of(again)


@pytest.mark.parametrize("stored", ["while the second waits", "before the second is chosen"])
def test_two_clients_asking_for_one_new_text_at_once_cost_one_synthesis(
    server: InProcessServer, steps: Steps, stored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also when the first's entry is stored after the second looked it up (a miss) and before the engine
    chose the second: the second looks again, and hits."""
    text = "Both of you asked for this."
    steps.gate = threading.Event()
    worker = server.worker
    if stored == "before the second is chosen":
        finish = worker._finish

        def finish_then_store(segment: Any) -> None:
            finish(segment)
            wait_for(lambda: segment.key not in worker._inflight)  # stored, before the worker goes on

        monkeypatch.setattr(worker, "_finish", finish_then_store)

    def both_looked_up() -> bool:
        with worker._cond:
            heads = [queue[0] for queue in worker._queues.values() if queue]
            return len(heads) == 2 and all(head.key is not None for head in heads)

    async def both() -> list[list[Event]]:
        async with connect(server.uri) as a, connect(server.uri) as b:
            await a.write_event(synth(text))
            await b.write_event(synth(text))
            # Both requests are in the worker, and looked up (misses), before the first engine step may end.
            await asyncio.to_thread(wait_for, both_looked_up)
            assert steps.gate is not None
            steps.gate.set()
            return list(await asyncio.gather(read_until(a, "audio-stop"), read_until(b, "audio-stop")))

    first, second = asyncio.run(both())
    check_audio(first, text)
    assert audio_of(first) == audio_of(second)
    one = load_plan_steps(server, text)
    assert len(steps) == one, f"{len(steps)} batches for one text of {one} jobs"


def test_a_client_that_stops_reading_does_not_hold_up_another_asking_for_the_same_text(
    server: InProcessServer,
) -> None:
    """The second asker waits for the first's synthesis only while the first's client reads."""

    async def go() -> list[Event]:
        _reader, writer = await stalled_client(server.port)  # asks for STALLED_TEXT, reads nothing
        try:
            await asyncio.to_thread(wait_for, lambda: owner_stalled(server), 120)
            async with connect(server.uri) as other:
                await other.write_event(synth(STALLED_TEXT))
                return await read_until(other, "audio-stop")
        finally:
            writer.close()

    check_audio(asyncio.run(go()), STALLED_TEXT)


def owner_stalled(server: InProcessServer) -> bool:
    """A segment synthesizing a key waits for its client to read (its backlog is full)."""
    worker = server.worker
    with worker._cond:
        return any(
            owner.request.backlog >= server.settings.max_buffered_pieces
            for owner in worker._inflight.values()
        )


def load_plan_steps(server: InProcessServer, text: str) -> int:
    """How many jobs one synthesis of `text` takes (one per chunk at --batch-chunks 1)."""
    engine = server.worker.engine
    assert isinstance(engine, Engine)
    voice = server.worker._prepared.get(engine, server.registry.voices["tone"])
    return len(engine.plan(voice, text))


# -- the bound ------------------------------------------------------------------------------------------


def test_a_thousand_distinct_texts_keep_the_cache_under_its_bound(tmp_path: Path) -> None:
    bound = 2 * MB
    cache = AudioCache(tmp_path / "audio", bound)
    voice = "ab" * 32
    rng = np.random.default_rng(0)
    keys = []
    for i in range(1000):
        key = segment_key("engine", voice, f"Text number {i}.")
        keys.append(key)
        assert cache.put(key, voice, rng.standard_normal(4000 + i % 7 * 1000).astype(np.float32))
        if i % 10 == 0:
            assert cache.get(keys[0]) is not None  # the first text is used again and again
        on_disk = sum(p.stat().st_size for p in (tmp_path / "audio").iterdir())
        assert on_disk <= bound, i
        assert on_disk == cache.stats()["bytes"]
    assert cache.get(keys[0]) is not None, "least recently used is not what was evicted"
    assert cache.get(keys[1]) is None
    assert cache.get(keys[-1]) is not None
    assert 50 < cache.stats()["entries"] < 1000
    # A restart finds the same entries, in the same order of use.
    again = AudioCache(tmp_path / "audio", bound)
    again.load()
    assert again.stats()["entries"] == cache.stats()["entries"]
    assert again.stats()["bytes"] == cache.stats()["bytes"]


def test_servers_sharing_a_folder_find_each_others_entries(tmp_path: Path) -> None:
    one, other = AudioCache(tmp_path / "audio", MB), AudioCache(tmp_path / "audio", MB)
    one.load()
    other.load()
    key, voice = segment_key("engine", "ab" * 32, "Said by one."), "ab" * 32
    audio = np.linspace(-1, 1, 24000, dtype=np.float32)
    assert one.put(key, voice, audio)
    found = other.get(key)
    assert found is not None and np.array_equal(found, audio)
    assert other.stats()["entries"] == 1 and other.stats()["bytes"] == one.stats()["bytes"]
    other.retain(["cd" * 32])  # that voice deleted: the other server drops it too
    assert one.get(key) is None


def test_an_entry_too_long_for_the_bound_is_not_stored(tmp_path: Path) -> None:
    cache = AudioCache(tmp_path / "audio", MB)
    key = segment_key("engine", "cd" * 32, "A very long text.")
    assert not cache.put(key, "cd" * 32, np.zeros(MB // 4, dtype=np.float32))
    assert cache.stats()["entries"] == 0


def test_a_half_written_file_of_a_dead_writer_is_removed_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    folder.mkdir()
    stale = folder / f".{'ef' * 32}.999999999.{'0' * 32}.tmp"
    stale.write_bytes(b"half an entry")
    AudioCache(folder, MB).load()
    assert not stale.exists()


# -- voices removed, warm-up phrases ----------------------------------------------------------------------


def test_deleting_a_voice_drops_its_entries(server: InProcessServer, voices: Path) -> None:
    make_voice(voices, "guest", transcript="A guest speaks in this clip.")  # not the same voice as tone
    server.registry.scan()
    speak(server, "A guest says hello.", "guest")
    speak(server, "The host says hello.", "tone")
    wait_stored(server, 2)
    assert len(entries(server)) == 2
    shutil.rmtree(voices / "guest")
    server.registry.scan()
    wait_for(lambda: len(entries(server)) == 1, timeout=20)
    assert cache_stats(server)["entries"] == 1


def test_warm_phrases_are_said_while_idle_and_then_hit(
    engine: Engine, voices: Path, tmp_path: Path, steps: Steps
) -> None:
    phrases = ("Turned off the lights.", "Timer cancelled.")
    with run_server(engine, voices, tmp_path / "cache", warm_phrases=phrases) as running:
        wait_stored(running, 2)
        synthesized = len(steps)
        assert synthesized > 0
        for phrase in phrases:
            check_audio(speak(running, phrase), phrase)
        assert len(steps) == synthesized
    # Said already: a restart with the same list runs nothing.
    with run_server(engine, voices, tmp_path / "cache", warm_phrases=phrases) as running:
        time.sleep(0.5)
        speak(running, phrases[0])
        assert len(steps) == synthesized


def test_a_warm_phrase_with_a_number_hits_when_a_client_says_it(
    engine: Engine, voices: Path, tmp_path: Path, steps: Steps
) -> None:
    """Warm phrases are put into words as a client's text is, or "Timer set for 5 minutes." would never hit."""
    phrase = "Timer set for 5 minutes."
    with run_server(engine, voices, tmp_path / "cache", warm_phrases=(phrase,)) as running:
        wait_stored(running, 1)
        synthesized = len(steps)
        check_audio(speak(running, phrase), "Timer set for five minutes.")
        assert len(steps) == synthesized, "the client's request was synthesized again"


def test_a_warm_phrase_gives_way_to_a_client_at_its_next_step(
    engine: Engine, voices: Path, tmp_path: Path, steps: Steps
) -> None:
    """A client's request arriving while a warm-up phrase's chunk is on the engine is synthesized before that
    chunk ends: the chunk gives way at its next sampler step."""
    steps.gate = threading.Event()
    phrase = "A long warm up phrase that takes the engine a while to say, in several parts, one by one."
    with run_server(engine, voices, tmp_path / "cache", warm_phrases=(phrase,)) as running:
        wait_for(lambda: len(steps) == 1)  # the phrase's first job is on the engine, held
        warm_chunk = steps.texts[0]

        async def client() -> list[Event]:
            async with connect(running.uri) as conn:
                await conn.write_event(synth("Right now."))
                await asyncio.to_thread(
                    wait_for, lambda: sum(running.worker.stats()["open_requests"].values()) == 1
                )
                assert steps.gate is not None
                steps.gate.set()
                return await read_until(conn, "audio-stop")

        events = asyncio.run(client())
        check_audio(events, "Right now.")
        assert steps.completed[0] == "Right now.", steps.completed
        wait_stored(running, 2)  # the phrase is said after all, from its start again
        assert steps.texts.count(warm_chunk) == 2, "the chunk that gave way did not run again"


# -- the command line ---------------------------------------------------------------------------------------


def test_the_command_line_sets_the_bound_and_reads_the_warm_phrases(tmp_path: Path) -> None:
    from wyoming_ishowtts.server.cli import build_parser, server_settings_from_args

    phrases = tmp_path / "phrases.txt"
    phrases.write_text("Turned on the light.\n\n  Timer set.  \nTurned on the light.\n", encoding="utf-8")
    settings = server_settings_from_args(build_parser().parse_args([]))
    assert settings.audio_cache_bytes == 256 * MB and settings.warm_phrases == ()
    args = build_parser().parse_args(["--audio-cache-mb", "0.5", "--warm-phrases", str(phrases)])
    settings = server_settings_from_args(args)
    assert settings.audio_cache_bytes == MB // 2
    assert settings.warm_phrases == ("Turned on the light.", "Timer set.")
    assert (
        server_settings_from_args(build_parser().parse_args(["--audio-cache-mb", "0"])).audio_cache_bytes == 0
    )
    for bad in (
        ["--audio-cache-mb", "-1"],
        ["--audio-cache-mb", "nan"],
        ["--warm-phrases", str(tmp_path / "no")],
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)
