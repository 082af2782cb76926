"""CUDA graphs of the sampler step (step_graphs.py), tested on the CPU with the eager stand-in recorder.

A CUDA graph replays exactly the kernels it recorded; what can go wrong around it is ours: static buffers
holding stale inputs, batch padding, layouts recorded or not, the model changing under a graph. The
`EagerRecorder` replays by running the step again on the same buffers, so all of that is tested here; that a
real replay equals eager on a GPU is checked by script/gpu-check.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch

from wyoming_ishowtts.engine.dit import DiT
from wyoming_ishowtts.engine.sampler import draw_noise, guided_step, sample
from wyoming_ishowtts.engine.step_graphs import EagerRecorder, StepGraphs
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
    model: DiT, inputs: dict[str, object], step: object = guided_step, pad_to: int = BUCKET
) -> torch.Tensor:
    return sample(model, **inputs, steps=4, pad_to=pad_to, step=step)  # type: ignore[arg-type]


def _graphs(model: DiT, sizes: tuple[int, ...] = (1, 2, 4)) -> StepGraphs:
    return StepGraphs(model, EagerRecorder(), batch_sizes=sizes)


def test_replay_equals_eager_and_every_step_replays(model: DiT) -> None:
    inputs = _inputs(2, seed=1)
    graphs = _graphs(model)
    with graphs.recording():
        recorded = _sample(model, inputs, graphs)
    assert len(graphs) == 1 and graphs.eager_steps == 0
    replayed = _sample(model, inputs, graphs)
    eager = _sample(model, inputs)
    torch.testing.assert_close(recorded, eager, rtol=0, atol=0)
    torch.testing.assert_close(replayed, eager, rtol=0, atol=0)
    assert graphs.replays == 8 and len(graphs) == 1  # 4 steps recorded-and-replayed, 4 replayed


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
    with caplog.at_level(logging.WARNING, logger="wyoming_ishowtts.engine.step_graphs"):
        result = _sample(model, inputs, graphs)
        _sample(model, inputs, graphs)
    torch.testing.assert_close(result, _sample(model, inputs), rtol=0, atol=0)
    assert graphs.eager_steps == 8 and len(graphs) == 1
    warnings = [r for r in caplog.records if "not warmed" in r.getMessage()]
    assert len(warnings) == 1 and "1 x 192 frames" in warnings[0].getMessage()


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
    assert graphs.eager_steps == 8 and graphs.replays == 4


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
    assert StepGraphs.sizes_for(1) == [1]
    assert StepGraphs.sizes_for(6) == [1, 2, 4, 8]
    assert StepGraphs.sizes_for(8) == [1, 2, 4, 8]
