"""CUDA graphs of a chunk's whole sampler loop (chunk_graphs.py), tested on the CPU with the eager stand-in
recorder.

A CUDA graph replays exactly the kernels it recorded; what can go wrong around it is ours: static buffers
holding stale inputs, batch padding, layouts recorded or not (the step count among them), the model changing
under a graph, a replay that is not the whole loop. The `EagerRecorder` replays by running the loop again on
the same buffers, so all of that is tested here; that a real replay equals eager on a GPU is checked by
script/gpu-check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import pytest
import torch

from wyoming_ishowtts.engine.chunk_graphs import ChunkGraphs, EagerRecorder, Replay
from wyoming_ishowtts.engine.dit import DiT
from wyoming_ishowtts.engine.sampler import draw_noise, euler_loop, sample
from wyoming_ishowtts.errors import SynthesisCancelled
from wyoming_ishowtts.tools.random_model import SIZES, randomize_

BUCKET = 64


@pytest.fixture(scope="module")
def model() -> DiT:
    _, cfg, _, vocab = SIZES["tiny"]
    dit = DiT(replace(cfg, text_num_embeds=vocab))
    randomize_(dit, torch.Generator().manual_seed(0))
    return dit.eval().requires_grad_(False).fuse_projections()


def _inputs(batch: int, seed: int, lengths: list[int] | None = None) -> dict[str, object]:
    """A batch of `batch` items with their own references, texts and lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths = lengths or [int(v) for v in torch.randint(90, 180, (batch,), generator=g)]
    cond_lens = torch.randint(30, 60, (batch,), generator=g)
    cond = torch.randn(batch, int(cond_lens.max()), 100, generator=g)
    text_lens = [int(v) for v in torch.randint(10, 40, (batch,), generator=g)]
    text = torch.full((batch, max(text_lens)), -1, dtype=torch.long)
    for i, n in enumerate(text_lens):
        text[i, :n] = torch.randint(1, 500, (n,), generator=g)
    return {
        "cond": cond,
        "cond_lens": cond_lens,
        "text_ids": text,
        "durations": torch.tensor(lengths),
        "noise": draw_noise(lengths, 100, g),
    }


def _sample(
    model: DiT, inputs: dict[str, object], loop: object = euler_loop, pad_to: int = BUCKET, nfe: int = 4
) -> torch.Tensor:
    return sample(model, **inputs, nfe=nfe, pad_to=pad_to, loop=loop)  # type: ignore[arg-type]


def _graphs(model: DiT, sizes: tuple[int, ...] = (1, 2, 4)) -> ChunkGraphs:
    return ChunkGraphs(model, EagerRecorder(), batch_sizes=sizes)


class CountingRecorder(EagerRecorder):
    """The stand-in recorder, counting its replays and the model's steps each one runs (a forward
    pre-hook on the input layer, which every step runs first)."""

    def __init__(self, model: DiT) -> None:
        self.replays = 0
        self.steps_per_replay: list[int] = []
        self._steps = 0
        model.input_embed.register_forward_pre_hook(lambda *_: self._count())

    def _count(self) -> None:
        self._steps += 1

    def record(self, loop: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]:
        replay, out = super().record(loop)

        def counted() -> None:
            before = self._steps
            replay()
            self.replays += 1
            self.steps_per_replay.append(self._steps - before)

        return counted, out


def test_replay_equals_eager_and_one_replay_runs_the_whole_loop(model: DiT) -> None:
    inputs = _inputs(2, seed=1)
    graphs = _graphs(model)
    with graphs.recording():
        recorded = _sample(model, inputs, graphs)
    assert len(graphs) == 1 and graphs.eager_steps == 0
    replayed = _sample(model, inputs, graphs)
    eager = _sample(model, inputs)
    torch.testing.assert_close(recorded, eager, rtol=0, atol=0)
    torch.testing.assert_close(replayed, eager, rtol=0, atol=0)
    assert graphs.replays == 2 and len(graphs) == 1  # one chunk recorded-and-replayed, one replayed


def test_a_chunk_is_one_replay_of_all_its_steps() -> None:
    """The recorded unit is the loop: each chunk replays once, and that replay runs all nfe steps."""
    _, cfg, _, vocab = SIZES["tiny"]
    own = DiT(replace(cfg, text_num_embeds=vocab))
    randomize_(own, torch.Generator().manual_seed(0))
    own = own.eval().requires_grad_(False).fuse_projections()
    recorder = CountingRecorder(own)
    graphs = ChunkGraphs(own, recorder, batch_sizes=(1, 2))
    with graphs.recording():
        _sample(own, _inputs(2, seed=1), graphs, nfe=5)
    for seed in (2, 3, 4):
        _sample(own, _inputs(2, seed=seed), graphs, nfe=5)
    assert graphs.eager_steps == 0 and len(graphs) == 1
    assert recorder.replays == 4 and recorder.steps_per_replay == [5, 5, 5, 5]


def test_the_step_count_is_part_of_the_layout(model: DiT, caplog: pytest.LogCaptureFixture) -> None:
    """A graph of 4 steps never stands in for a chunk of 3: that chunk runs eagerly (logged), the same
    audio as the eager loop; recorded at 3 as well, both replay."""
    inputs = _inputs(1, seed=2, lengths=[100])
    graphs = _graphs(model)
    with graphs.recording():
        _sample(model, inputs, graphs, nfe=4)
    with caplog.at_level(logging.WARNING, logger="wyoming_ishowtts.engine.chunk_graphs"):
        three = _sample(model, inputs, graphs, nfe=3)
    torch.testing.assert_close(three, _sample(model, inputs, nfe=3), rtol=0, atol=0)
    assert graphs.eager_steps == 3 and len(graphs) == 1
    assert any("at 3 steps not warmed" in r.getMessage() for r in caplog.records)
    with graphs.recording():
        _sample(model, inputs, graphs, nfe=3)
    replays = graphs.replays
    torch.testing.assert_close(_sample(model, inputs, graphs, nfe=3), three, rtol=0, atol=0)
    torch.testing.assert_close(
        _sample(model, inputs, graphs, nfe=4), _sample(model, inputs, nfe=4), rtol=0, atol=0
    )
    assert len(graphs) == 2 and graphs.replays == replays + 2 and graphs.eager_steps == 3


def test_cancellation_is_asked_once_per_replayed_chunk_and_before_each_eager_step(model: DiT) -> None:
    """A replay cannot stop midway: the graph path asks once, before it; the eager loop before each step.
    Either way a cancellation raises before any more work."""
    inputs = _inputs(1, seed=3, lengths=[100])
    graphs = _graphs(model)
    with graphs.recording():
        _sample(model, inputs, graphs)
    asked: list[int] = []

    def never() -> bool:
        asked.append(1)
        return False

    sample(model, **inputs, nfe=4, pad_to=BUCKET, loop=graphs, cancelled=never)  # type: ignore[arg-type]
    assert len(asked) == 1
    asked.clear()
    sample(model, **inputs, nfe=4, pad_to=BUCKET, cancelled=never)  # type: ignore[arg-type]
    assert len(asked) == 4
    replays = graphs.replays
    with pytest.raises(SynthesisCancelled):
        sample(model, **inputs, nfe=4, pad_to=BUCKET, loop=graphs, cancelled=lambda: True)  # type: ignore[arg-type]
    assert graphs.replays == replays


def test_a_new_chunk_never_sees_the_last_chunks_inputs(model: DiT) -> None:
    """Reference, text and mask are copied once per chunk: a second chunk of the same layout (another
    voice and text) must get its own, not the buffers' leftovers."""
    first, second = _inputs(2, seed=1, lengths=[150, 120]), _inputs(2, seed=2, lengths=[140, 100])
    graphs = _graphs(model)
    with graphs.recording():
        _sample(model, first, graphs)
    torch.testing.assert_close(_sample(model, second, graphs), _sample(model, second), rtol=0, atol=0)
    assert len(graphs) == 1 and graphs.eager_steps == 0
    torch.testing.assert_close(_sample(model, first, graphs), _sample(model, first), rtol=0, atol=0)


def test_a_batch_of_three_runs_on_the_graph_of_four_with_the_same_audio(model: DiT) -> None:
    inputs = _inputs(3, seed=3)
    graphs = _graphs(model)
    with graphs.recording():
        _sample(model, _inputs(4, seed=9, lengths=[150, 150, 150, 150]), graphs)
    padded = _sample(model, inputs, graphs)
    assert graphs.eager_steps == 0 and len(graphs) == 1
    eager = _sample(model, inputs)
    assert padded.shape == eager.shape
    torch.testing.assert_close(padded, eager, rtol=1e-5, atol=1e-5)


def test_a_layout_not_warmed_runs_eagerly_and_says_so_once(
    model: DiT, caplog: pytest.LogCaptureFixture
) -> None:
    graphs = _graphs(model)
    with graphs.recording():
        _sample(model, _inputs(1, seed=1, lengths=[100]), graphs)  # 128 frames
    inputs = _inputs(1, seed=4, lengths=[150])  # 192 frames: never recorded
    with caplog.at_level(logging.WARNING, logger="wyoming_ishowtts.engine.chunk_graphs"):
        result = _sample(model, inputs, graphs)
        _sample(model, inputs, graphs)
    torch.testing.assert_close(result, _sample(model, inputs), rtol=0, atol=0)
    assert graphs.eager_steps == 8 and len(graphs) == 1
    warnings = [r for r in caplog.records if "not warmed" in r.getMessage()]
    assert len(warnings) == 1 and "1 x 192 frames at 4 steps" in warnings[0].getMessage()


def test_a_batch_larger_than_every_graph_runs_eagerly(model: DiT) -> None:
    graphs = _graphs(model, sizes=(1, 2))
    with graphs.recording():
        result = _sample(model, _inputs(3, seed=5), graphs)
    assert len(graphs) == 0 and graphs.eager_steps == 4
    torch.testing.assert_close(result, _sample(model, _inputs(3, seed=5)), rtol=0, atol=0)


def test_after_clear_or_with_another_model_the_step_is_eager(model: DiT) -> None:
    inputs = _inputs(1, seed=6)
    graphs = _graphs(model)
    with graphs.recording():
        _sample(model, inputs, graphs)
    other = DiT(model.cfg)
    randomize_(other, torch.Generator().manual_seed(1))
    other = other.eval().requires_grad_(False).fuse_projections()
    torch.testing.assert_close(_sample(other, inputs, graphs), _sample(other, inputs), rtol=0, atol=0)
    graphs.clear()
    assert len(graphs) == 0
    _sample(model, inputs, graphs)
    assert graphs.eager_steps == 8 and graphs.replays == 1


def test_bucketed_eager_equals_the_unpadded_sample(model: DiT) -> None:
    """The padded lengths CUDA graphs need change no number: masked padding, same audio."""
    for batch in (1, 3):
        inputs = _inputs(batch, seed=7 + batch)
        padded = _sample(model, inputs, pad_to=BUCKET)
        plain = _sample(model, inputs, pad_to=1)
        assert padded.shape[1] % BUCKET == 0 and padded.shape[1] > plain.shape[1]
        for i, n in enumerate(inputs["durations"].tolist()):  # type: ignore[attr-defined]
            torch.testing.assert_close(padded[i, :n], plain[i, :n], rtol=1e-5, atol=1e-5)


def test_batch_sizes_cover_the_largest_batch() -> None:
    assert ChunkGraphs.sizes_for(1) == [1]
    assert ChunkGraphs.sizes_for(6) == [1, 2, 4, 8]
    assert ChunkGraphs.sizes_for(8) == [1, 2, 4, 8]
