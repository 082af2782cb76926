"""Engine options that change how, not what, it computes: the step policy, precision choice, torch.compile."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions, loading
from wyoming_ishowtts.engine.chunk_graphs import EagerRecorder
from wyoming_ishowtts.engine.loading import pick_dtype
from wyoming_ishowtts.engine.nfe import NfePolicy
from wyoming_ishowtts.engine.voice import tone_clip
from wyoming_ishowtts.errors import ModelLoadError
from wyoming_ishowtts.tools.random_model import write_random_model

TEXT = "This is a compile test, with two parts. And then a little more text here."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_model(tmp_path_factory.mktemp("tiny"), "tiny", seed=4)


def clip() -> np.ndarray:
    return tone_clip(2.0, pitch=200, level=0.2)


def test_policy_first_chunk_is_short_grid() -> None:
    assert NfePolicy().choose(0, slack_seconds=100.0, seconds_per_step=0.001) == 7


def test_policy_uses_slack_for_later_chunks() -> None:
    policy = NfePolicy()
    assert policy.choose(1, slack_seconds=10.0, seconds_per_step=0.1) == 16  # 1.6 s fits in 7 s
    assert (
        policy.choose(1, slack_seconds=1.6, seconds_per_step=0.1) == 10
    )  # 1.0 s fits in 1.12 s, 1.2 does not
    assert policy.choose(1, slack_seconds=0.2, seconds_per_step=0.1) == 7  # nothing fits: the fewest
    assert policy.choose(1, slack_seconds=-3.0, seconds_per_step=0.1) == 7  # already behind
    assert policy.choose(1, slack_seconds=10.0, seconds_per_step=None) == 7  # nothing measured yet


def test_policy_is_deterministic_and_fixed_overrides() -> None:
    policy = NfePolicy()
    assert {policy.choose(2, 3.0, 0.2) for _ in range(10)} == {policy.choose(2, 3.0, 0.2)}
    assert NfePolicy(fixed=32).choose(0, 0.0, None) == 32
    assert NfePolicy(fixed=5).choose(3, 100.0, 0.0001) == 5


def test_engine_logs_each_choice(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine.load(EngineSettings(model_dir=model_dir, device="cpu", precision="fp32"))
    voice = engine.prepare_voice(clip(), 24000, "Hello world.", trim=False)
    with caplog.at_level("DEBUG", logger="wyoming_ishowtts.engine"):
        engine.synthesize_all(voice, TEXT, SynthesisOptions(seed=1, first_chunk_max_chars=30))
    choices = [r.getMessage() for r in caplog.records if " steps, " in r.getMessage()]
    assert len(choices) == len(engine.plan(voice, TEXT, SynthesisOptions(first_chunk_max_chars=30))) >= 2
    assert choices[0].startswith("chunk 1/") and ": 7 steps" in choices[0]


def test_precision_choice() -> None:
    cpu = torch.device("cpu")
    assert pick_dtype("fp32", cpu) == torch.float32
    assert pick_dtype("bf16", cpu) == torch.bfloat16
    assert pick_dtype("fp16", cpu) == torch.float16
    with pytest.raises(ModelLoadError):
        pick_dtype("fp8", cpu)


@pytest.mark.parametrize(
    ("device", "hardware", "expected"),
    [
        ("cpu", frozenset({"avx2", "fma", "avx512_bf16"}), torch.bfloat16),  # bf16 in hardware
        ("cpu", frozenset({"avx2", "fma", "amx_bf16"}), torch.bfloat16),  # AMX
        ("cpu", frozenset({"avx2", "fma", "f16c"}), torch.float32),  # emulated bf16 is slower than fp32
        ("cuda", (7, 0), torch.float16),  # Volta and newer
        ("cuda", (6, 1), torch.float32),  # Pascal and older: fp16 gives silence or NaN
    ],
)
def test_auto_precision_follows_the_hardware(
    monkeypatch: pytest.MonkeyPatch, device: str, hardware: object, expected: torch.dtype
) -> None:
    """ "auto" picks one dtype for each kind of hardware (the CPU's flags and the GPU's capability are
    stood in for; tests/test_cpu.py has the CPU classes and int8)."""
    monkeypatch.setattr(loading, "cpu_flags", lambda: hardware)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: hardware)
    assert pick_dtype("auto", torch.device(device)) == expected


def test_half_precision_stays_close_to_fp32(model_dir: Path) -> None:
    """bf16 runs only the network in half precision; the result must stay near fp32 (SNR well above 10 dB)."""
    waves = {}
    for precision in ("fp32", "bf16"):
        engine = Engine.load(EngineSettings(model_dir=model_dir, device="cpu", precision=precision))
        voice = engine.prepare_voice(clip(), 24000, "Hello world.", trim=False)
        waves[precision] = engine.synthesize_all(voice, TEXT, SynthesisOptions(nfe=4, seed=2))
    ref, half = waves["fp32"], waves["bf16"]
    assert len(ref) == len(half)
    snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - half).astype(np.float64) ** 2))
    assert 10 < snr < 200, snr  # close, but not identical: bf16 really ran


@pytest.mark.parametrize("variant", ["v1", "v0"])
def test_batched_later_chunks_equal_one_at_a_time(model_dir: Path, tmp_path: Path, variant: str) -> None:
    """Chunks of different lengths in one batch: padding is masked, so each equals its own run."""
    folder = model_dir
    if variant == "v0":  # same weights, F5TTS_Base behaviour: RoPE on one head, no filler masking
        folder = tmp_path / "v0"
        shutil.copytree(model_dir, folder)
        info = json.loads((folder / "model.json").read_text())
        info["dit"].update(text_mask_padding=False, pe_attn_head=1)
        (folder / "model.json").write_text(json.dumps(info))
    text = "First a short one. Then a much longer second sentence that goes on for quite a while. Third!"
    opts = SynthesisOptions(nfe=3, seed=7, max_chars=40, first_chunk_max_chars=None)
    outputs = []
    for batch in (1, 3):
        engine = Engine.load(
            EngineSettings(model_dir=folder, device="cpu", precision="fp32", batch_chunks=batch)
        )
        voice = engine.prepare_voice(clip(), 24000, "Hello world.", trim=False)
        assert len(engine.plan(voice, text, opts)) == 3
        outputs.append([p.copy() for p in engine.synthesize(voice, text, opts)])
    one_at_a_time, batched = outputs
    assert [len(p) for p in one_at_a_time] == [len(p) for p in batched]
    for a, b in zip(one_at_a_time, batched, strict=True):
        assert np.abs(a - b).max() < 1e-4 * np.abs(a).max()


def synthesize_with(model_dir: Path, stand_in: bool = False, **settings: Any) -> tuple[np.ndarray, list[int]]:
    """TEXT at 3 steps, seed 1, fp32 on the CPU, with these engine settings: the audio, and the sequence
    length the model saw at each step. `stand_in`: on the CUDA-graph path, played by its CPU stand-in. A
    recorded or compiled path is warmed up first, and must then run every step recorded (none eagerly)."""
    engine = Engine.load(
        EngineSettings(model_dir=model_dir, device="cpu", precision="fp32", **settings),
        recorder=EagerRecorder() if stand_in else None,
    )
    voice = engine.prepare_voice(clip(), 24000, "Hello world.", trim=False)
    chunk_graphs = engine.acceleration.chunk_graphs
    options = SynthesisOptions(nfe=3, seed=1)
    if chunk_graphs is not None:
        engine.warm_up(voice, options=options)
    with model_lengths(engine) as lengths:
        audio = engine.synthesize_all(voice, TEXT, options)
    eager = 0 if chunk_graphs is None else chunk_graphs.eager_steps
    assert eager == 0, f"{eager} steps ran on a layout the warm-up did not record"
    return audio, lengths


@contextmanager
def model_lengths(engine: Engine) -> Iterator[list[int]]:
    """The frames axis of each input the model's step gets while the block runs (a forward pre-hook on its
    input layer, which every step runs first: it sees the padded tensor whether or not the step is compiled)."""
    lengths: list[int] = []
    hook = engine.model.input_embed.register_forward_pre_hook(
        lambda _, args: lengths.append(int(args[0].shape[1]))
    )
    try:
        yield lengths
    finally:
        hook.remove()


@contextmanager
def compiled_graphs() -> Iterator[Callable[[], int]]:
    """Counts the graphs dynamo compiles from here on (its own statistics, cleared first)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    try:
        yield lambda: int(counters["stats"]["unique_graphs"])
    finally:
        torch._dynamo.reset()


def assert_same_audio(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.abs(a - b).max() < 1e-4 * np.abs(a).max()


def test_compiled_model_gives_the_same_audio(model_dir: Path) -> None:
    """The same audio, and the compiled model made it."""
    plain, _ = synthesize_with(model_dir)
    with compiled_graphs() as graphs:
        compiled, _ = synthesize_with(model_dir, compile=True)
        assert graphs() >= 1, "--compile compiled nothing"
    assert_same_audio(plain, compiled)


def test_vocoder_measured_in_half_precision(model_dir: Path) -> None:
    """ishowtts_dev.precision --vocoder: the vocoder alone in bf16 runs, stays close to fp32, and is not fp32."""
    from ishowtts_dev.precision import vocoder_run

    found = vocoder_run(model_dir, "cpu", ["bf16"], seconds=1.0, repeats=1)
    seconds = found["fp32"]["seconds"]
    assert found["fp32"]["snr_db"] is None and seconds is not None and seconds > 0
    snr = found["bf16"]["snr_db"]
    assert snr is not None and 5 < snr < 200, snr


def test_length_buckets_give_the_same_audio(model_dir: Path) -> None:
    """Padding every batch to a multiple of 64 frames (masked), as the recorded steps do, changes no number
    beyond float rounding; the model did get the padded lengths."""
    plain, plain_lengths = synthesize_with(model_dir)
    padded, padded_lengths = synthesize_with(model_dir, stand_in=True, length_bucket=64)
    assert any(n % 64 for n in plain_lengths), plain_lengths  # else padding would change nothing here
    assert padded_lengths == [-(-n // 64) * 64 for n in plain_lengths], (plain_lengths, padded_lengths)
    assert_same_audio(plain, padded)


def test_warm_up_compiles_every_length_bucket(model_dir: Path) -> None:
    """With --compile and buckets the warm-up records the compiled step for every batch size and every
    length bucket the voice can reach; requests after it run every step on a recorded layout (none eagerly)
    and compile nothing new (dynamo is told to fail on any recompilation, and its own count of graphs does
    not move). No forward hook here: dynamo would trace it and guard on it."""
    import torch._dynamo

    with compiled_graphs() as graphs:
        engine = Engine.load(
            EngineSettings(
                model_dir=model_dir, device="cpu", precision="fp32", compile=True, length_bucket=1024
            )
        )
        voice = engine.prepare_voice(clip(), 24000, "Hello world.", trim=False)
        buckets = engine.acceleration.bucket_lengths(voice)
        assert len(buckets) >= 2 and all(n % 1024 == 0 for n in buckets)
        options = SynthesisOptions(nfe=2, seed=1)
        engine.warm_up(voice, options=options)
        chunk_graphs = engine.acceleration.chunk_graphs
        assert chunk_graphs is not None
        # One layout per (batch size, bucket) at the one guidance strength and step count, all recorded by
        # the warm-up.
        assert len(chunk_graphs) == len(chunk_graphs.batch_sizes) * len(buckets), (
            len(chunk_graphs),
            chunk_graphs.batch_sizes,
            buckets,
        )
        compiled = graphs()
        assert compiled >= 1, "--compile compiled nothing in the warm-up"
        replays = chunk_graphs.replays
        with torch._dynamo.config.patch(error_on_recompile=True):
            long_text = "A longer sentence that needs many more frames than the warm-up did, " * 3
            for text in ("Short.", long_text):
                assert len(engine.synthesize_all(voice, text, options)) > 0
        assert chunk_graphs.eager_steps == 0, (
            f"{chunk_graphs.eager_steps} steps ran on a layout the warm-up did not record"
        )
        assert chunk_graphs.replays > replays, "the requests did not run the recorded steps"
        assert graphs() == compiled, "a request after the warm-up compiled a graph"


def test_precision_study_runs_a_baseline_checkout_interleaved(model_dir: Path, tmp_path: Path) -> None:
    """ishowtts_dev.precision --baseline: another checkout's engine (here this one, imported again under
    another name) runs in the same process; identical code gives identical fp32 audio and a time ratio."""
    import json

    from ishowtts_dev.precision import main

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "precision.json"
    args = ["--model-dir", str(model_dir), "--precisions", "bf16", "--repeats", "1", "--nfe", "2"]
    main([*args, "--baseline", str(root), "--out", str(out)])
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"fp32", "bf16", "baseline fp32", "baseline bf16"}
    assert results["baseline fp32"]["snr_db"] == float("inf")  # the same code, imported twice
    assert results["bf16"]["ran_as"] == "bf16" and 5 < results["bf16"]["snr_db"] < 200
    assert results["bf16"]["ratio_to_baseline"] > 0 and len(results["bf16"]["runs"]) == 1
