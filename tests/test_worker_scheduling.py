"""The worker's scheduling order, made deterministic with a stand-in engine.

The engine's first ``run_batch`` blocks until the test has submitted more requests, so "a client that arrives
while another client's chunk is being synthesized" happens every time, not by luck of timing. The real
engine and server are exercised in test_server_concurrency.py and test_batching.py; here only the order
of the rounds matters.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wyoming_ishowtts.server.worker import EngineWorker, SegmentDone
from wyoming_ishowtts.voices.folder import VoiceInfo


class FakeSynthesis:
    def __init__(self, name: str, chunks: int) -> None:
        self.name, self.left, self.finished = name, chunks, False

    def next_job(self) -> FakeJob | None:
        return FakeJob(self) if self.left else None

    def deliver(self, job: FakeJob, waves: list[np.ndarray], spent: float) -> list[np.ndarray]:
        self.left -= 1
        self.finished = self.left == 0
        return waves


class FakeJob:
    nfe = 4
    batch_key = (4, 2.0, -1.0)

    def __init__(self, synthesis: FakeSynthesis) -> None:
        self.synthesis = synthesis
        self.texts = ["chunk"]


class FakeEngine:
    """`begin(text=NAME:CHUNKS)`; the first `run_batch` waits for `gate`; `rounds` records who ran together."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.rounds: list[list[str]] = []

    def begin(self, voice: Any, text: str, options: Any, cancelled: Any = None) -> FakeSynthesis:
        name, chunks = text.split(":")
        return FakeSynthesis(name, int(chunks))

    identity = "fake"
    audio_identity = "fake"

    def voice(self, clip: Any) -> Any:
        raise AssertionError("no voice is prepared in this test")

    warm_up_needs_voices = False

    def warm_up(self, voice: Any = None, **kwargs: Any) -> None:
        raise AssertionError("no warm-up in this test")

    def run_batch(self, jobs: Sequence[FakeJob]) -> list[list[np.ndarray]]:
        self.rounds.append([job.synthesis.name for job in jobs])
        self.entered.set()
        assert self.gate.wait(30)
        return [[np.zeros(8, dtype=np.float32)] for _ in jobs]


class NoVoices:
    def scan(self) -> dict[str, Any]:
        return {}

    def default(self) -> Any:
        raise LookupError("no voices in this test")


class Prepared:
    def get(self, engine: Any, info: Any) -> None:
        return None

    def discard_partial(self) -> None:
        pass


def run_rounds(max_batch: int, late: list[str]) -> list[list[str]]:
    """Client A asks for two chunks; `late` clients (one chunk each) arrive while A's first chunk runs."""
    fake = FakeEngine()
    voice = VoiceInfo(name="v", reference_audio=Path("unused.wav"), transcript="unused")

    async def main() -> None:
        worker = EngineWorker(
            lambda: fake,
            NoVoices(),  # type: ignore[arg-type]
            Prepared(),  # type: ignore[arg-type]
            asyncio.get_running_loop(),
            warm_up=False,
            max_queued_per_client=4,
            max_queued_total=32,
            max_buffered_pieces=8,
            max_batch=max_batch,
        )
        worker.start()
        requests = []
        for client_id, (name, chunks) in enumerate([("A", 2)]):
            request = worker.open_request(client_id, voice, streaming=False)
            worker.submit(request, f"{name}:{chunks}")
            requests.append(request)
        assert await asyncio.to_thread(fake.entered.wait, 30)  # A's first chunk is running now
        for client_id, name in enumerate(late, start=1):
            request = worker.open_request(client_id, voice, streaming=False)
            worker.submit(request, f"{name}:1")
            requests.append(request)
        fake.gate.set()
        for request in requests:  # every request completes
            while not isinstance(await asyncio.wait_for(request.results.get(), 30), SegmentDone):
                worker.taken(request)
        worker.stop()
        assert await asyncio.to_thread(worker.join, 30)

    asyncio.run(main())
    return fake.rounds


def test_a_client_arriving_mid_round_goes_before_the_one_just_served() -> None:
    assert run_rounds(max_batch=1, late=["B"]) == [["A"], ["B"], ["A"]]


def test_clients_arriving_mid_round_share_the_next_batch() -> None:
    assert run_rounds(max_batch=2, late=["B", "C", "D"]) == [["A"], ["B", "C"], ["D", "A"]]


class BreakingEngine(FakeEngine):
    """Its batches of two fail with a CUDA error that leaves the GPU unusable (as torch words it)."""

    def run_batch(self, jobs: Sequence[FakeJob]) -> list[list[np.ndarray]]:
        waves = super().run_batch(jobs)
        if len(jobs) > 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return waves


def test_a_batch_the_gpu_failed_for_good_is_not_retried_one_by_one() -> None:
    """A batch that fails for an ordinary reason is retried item by item; one that broke the CUDA context
    would only fail again, item after item: each request gets the error, and the worker gives up (fatal,
    not ready) at once."""
    fake = BreakingEngine()
    voice = VoiceInfo(name="v", reference_audio=Path("unused.wav"), transcript="unused")
    fatal: list[BaseException] = []

    async def main() -> Sequence[object]:
        worker = EngineWorker(
            lambda: fake,
            NoVoices(),  # type: ignore[arg-type]
            Prepared(),  # type: ignore[arg-type]
            asyncio.get_running_loop(),
            warm_up=False,
            max_queued_per_client=4,
            max_queued_total=32,
            max_buffered_pieces=8,
            max_batch=2,
            on_fatal=fatal.append,
        )
        worker.start()
        first = worker.open_request(0, voice, streaming=False)
        worker.submit(first, "A:1")
        assert await asyncio.to_thread(fake.entered.wait, 30)
        late = [worker.open_request(i, voice, streaming=False) for i in (1, 2)]
        for request, name in zip(late, "BC", strict=True):
            worker.submit(request, f"{name}:1")
        fake.gate.set()
        ends = [await asyncio.wait_for(request.results.get(), 30) for request in late]
        assert fake.rounds == [["A"], ["B", "C"]], "the failed batch was retried item by item"
        assert await asyncio.to_thread(worker.join, 30)  # it stopped by itself
        assert not worker.ready.is_set()
        return ends

    ends = asyncio.run(main())
    assert [type(end).__name__ for end in ends] == ["SegmentFailed", "SegmentFailed"]
    assert len(fatal) == 1 and "illegal memory access" in str(fatal[0])
