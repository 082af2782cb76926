"""Faults inside the engine, in-process: a NaN in half precision falls back to fp32 and still gives audio; a NaN
in fp32 and CUDA out-of-memory raise EngineFailure (code ``synthesis-failed``) with a message for the user;
and the engine stays usable for the next request. (The server's answers to them: test_server_faults.py.)
Out-of-memory is simulated on the CPU by raising ``torch.cuda.OutOfMemoryError`` from the sampler, which is
where PyTorch raises it on a GPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TONE_TRANSCRIPT, load_tiny_engine, make_voice, nan_forward_once

from wyoming_ishowtts.engine import Engine, SynthesisOptions
from wyoming_ishowtts.engine import batch as batch_module
from wyoming_ishowtts.engine.reference import load_audio
from wyoming_ishowtts.errors import EngineFailure

GOOD_TEXT = "The server is still speaking."


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Engine:
    return load_tiny_engine(tiny_model_dir)


@pytest.fixture(scope="module")
def tone_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, int]:
    return load_audio(make_voice(tmp_path_factory.mktemp("fault-voice"), "tone") / "reference.wav")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_nan_in_half_precision_falls_back_to_fp32(
    tiny_model_dir: Path,
    tone_clip: tuple[np.ndarray, int],
    precision: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: Any,
) -> None:
    caplog.set_level(logging.WARNING, logger="wyoming_ishowtts")
    engine = load_tiny_engine(tiny_model_dir, precision)
    voice = engine.prepare_voice(*tone_clip, text=TONE_TRANSCRIPT)
    calls = nan_forward_once(engine.model, monkeypatch)
    audio = engine.synthesize_all(voice, GOOD_TEXT, SynthesisOptions(nfe=2, seed=1))
    assert len(calls) > 2, "the chunk was not synthesized again after the NaN"
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert "switching the model to fp32" in caplog.text
    assert engine.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in engine.model.parameters())
    # And it stays usable for the next request.
    assert np.isfinite(engine.synthesize_all(voice, "Again.", SynthesisOptions(nfe=2, seed=2))).all()


def test_nan_in_fp32_raises_engine_failure(
    engine: Engine, tone_clip: tuple[np.ndarray, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    voice = engine.prepare_voice(*tone_clip, text=TONE_TRANSCRIPT)
    nan_forward_once(engine.model, monkeypatch)
    with pytest.raises(EngineFailure, match="non-finite") as err:
        engine.synthesize_all(voice, GOOD_TEXT, SynthesisOptions(nfe=2, seed=1))
    assert err.value.code == "synthesis-failed"
    assert np.isfinite(engine.synthesize_all(voice, GOOD_TEXT, SynthesisOptions(nfe=2, seed=1))).all()


def test_out_of_memory_raises_engine_failure(
    engine: Engine, tone_clip: tuple[np.ndarray, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    voice = engine.prepare_voice(*tone_clip, text=TONE_TRANSCRIPT)

    def oom(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    with monkeypatch.context() as patch:
        patch.setattr(batch_module, "sample", oom)
        with pytest.raises(EngineFailure, match="out of memory") as err:
            engine.synthesize_all(voice, GOOD_TEXT)
    assert err.value.code == "synthesis-failed"
    assert len(engine.synthesize_all(voice, GOOD_TEXT, SynthesisOptions(nfe=2, seed=1))) > 0
