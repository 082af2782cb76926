"""The engine's accelerated paths (CUDA graphs, torch.compile) and its GPU failure modes, shown on a CPU.

What a CPU cannot run (a CUDA graph capture, a real out-of-memory error) is replaced at exactly one point:
the stand-in recorder of chunk_graphs.py replays by recomputing, and an injected `torch.cuda.OutOfMemoryError`
is raised from inside a sampler step. Everything around those points is the real engine and worker.

What shows each GPU fix. Each defect the GPU reviews found (issues 12 and 23), and what shows it fixed: a CPU test
where a CPU can show it (CI runs it), else a check or figure of `script/gpu-check` on a lent H100/H200
(docs/gpu-check.md says how to run it). A "figure" is measured and reported, not judged pass/fail.

| defect | CPU test (tests/...) | on the GPU (gpu-check stage/check) |
|---|---|---|
| `--compile` without a C compiler (docker image): warm-up failure only a warning, server "ready" and broken | test_gpu_paths: `test_compile_without_a_compiler_runs_eagerly_and_says_so`, `test_a_failed_warm_up_of_the_graphs_leaves_a_working_eager_engine`, `test_an_eager_warm_up_failure_stops_the_server_instead_of_serving_errors` | compile (optional): `compiled-*-equals-eager-nothing-new-after-warm-up`; server: `defaults-log-clean` |
| `recompile_limit` missing before torch 2.7 (Jetson) | test_gpu_paths: `test_recompile_limit_has_its_name_of_the_torch_at_hand` | - (the device's torch is 2.11) |
| warm-up covers batch 1, the default voice and speed 1.0 only; graphs recorded on a second call | test_gpu_paths: `test_warm_up_records_every_layout_the_voices_and_batches_reach`; test_engine_options: `test_warm_up_compiles_every_length_bucket`; test_chunk_graphs: `test_replay_equals_eager_and_one_replay_runs_the_whole_loop`, `test_a_layout_not_warmed_runs_eagerly_and_says_so_once` | paths: `cuda-graphs-*-nothing-new-after-warm-up` (no eager step; compile: dynamo `error_on_recompile`); server-graphs: `graphs_eager_fallbacks_after_ready` |
| out-of-memory traceback keeps the failed batch alive during the retries | test_gpu_paths: `test_out_of_memory_leaves_nothing_of_the_batch_alive`, `test_a_failed_batch_is_retried_one_by_one_after_its_tensors_are_freed` | - (no real OOM is provoked on the device) |
| fp16 -> fp32 fallback keeps compiled graphs and the fp16-rounded reference mel | test_gpu_paths: `test_the_fp32_fallback_is_a_true_fp32_rerun` (same audio as fp32 from the start, graphs dropped, the voice's mel fp32) | precision: `*-no-silent-fallback` |
| ~700 kernel launches per step; CUDA graphs only behind `--compile --length-bucket` | test_chunk_graphs (all: replay = eager, stale buffers, batch padding, layouts, model change); test_gpu_paths: `test_cuda_graphs_on_a_cpu_are_refused_with_a_warning` | paths: `cuda-graphs-*-equals-eager-nothing-new-after-warm-up` (real `torch.cuda.CUDAGraph`); graph-speed: ms per step, eager vs graphs (figure) |
| padding mask rules out FlashAttention, mask rebuilt per layer; complex RoPE | test_numerics: `test_nothing_padded_means_no_mask`, `test_padded_batch_builds_one_float_mask_per_pass`, `test_real_rope_dit_forward_equals_complex`, `test_rope_table_is_computed_once_and_sliced` | setup: `sdpa-unmasked-fp16`, `sdpa-masked-fp16`, figure `sdpa_flash_unmasked` |
| half precision casts RoPE's `inv_freq` and the flow time `t` | test_numerics: `test_half_precision_keeps_position_tables_in_float32`, `test_time_enters_the_embedding_in_float32`, `test_sampler_hands_the_model_float32_time`, `test_mixed_precision_keeps_the_stream_norms_and_time_in_float32` | precision: fp16/bf16 SNR against fp32 (figure) |
| vocoder and device-to-host copy once per batch item | test_numerics: `test_batched_vocoding_runs_the_network_once`, `test_engine_vocodes_a_batch_in_one_pass`, `test_batched_vocoding_equals_each_alone` | - |
| benchmark reports only `max_memory_allocated` | - (a CPU has no allocator figures) | server: `defaults_long` peak allocated, reserved and nvidia-smi (figures); target `fp16_long_peak_reserved_mib` |
| benchmark warm-ups are single requests (batched runs timed cold) | test_bench: `test_quick_run_load_levels` (the load run after its untimed burst) | server, server-batch: each load level after an untimed burst of its size |
| upstream's busy-time clock does not synchronize on CUDA | test_bench: `test_on_a_gpu_every_text_is_measured_not_extrapolated` | upstream: measured, never extrapolated |
| the benchmark's parent process holds a CUDA context | test_bench: `test_the_benchmark_parent_asks_cuda_nothing_itself` | - |
| `--device cuda:N` refused by the CLI | test_device (every parser, the binding on a stand-in, the server on a missing GPU) | setup: `device-cuda-N-binds-the-loading-thread-only` |
| Inductor cache in /tmp, lost on every restart | test_gpu_paths: `test_images_keep_compiled_kernels_in_the_data_volume` | - |
| `--length-bucket` without `--compile` costs speed for nothing | test_gpu_paths: `test_length_bucket_alone_is_ignored_with_a_warning` | - |
| (found after the numerics + gpu merge) the RoPE table regrown for a longer length freed the one that CUDA graphs recorded at shorter lengths read by address | test_numerics: `test_an_outgrown_rope_table_stays_allocated` (the CPU stand-in recorder recomputes, so no graph test can see it) | paths: `cuda-graphs-*-equals-eager-...` (replay against eager after a warm-up over ascending lengths) |
| (issue 23) nothing reached `--out` until every stage was done: an exception in the table, a failed install, a probe timeout or a kill left it empty | test_gpu_check: `test_a_run_killed_after_its_first_stage_leaves_that_stage_in_results_and_table` (SIGKILL after the first stage), `test_a_failed_stage_is_a_failed_row_and_the_other_stages_still_run` (`--fail`), `test_a_table_that_cannot_be_formatted_still_leaves_results_and_a_table` | every run: `results.json`, `table.txt`, `stages.log` at start, every 5 s and after each stage |
| (issue 23) a missing or incomplete `.gpu-wheels/` was not noticed: every stage failed on its first import | test_gpu_check: `test_cuda_run_without_the_wheel_set_stops_at_once_before_touching_the_gpu` (the device's package set without the carried ones), `test_the_wheel_check_wants_an_intact_wheel_for_every_package_not_installed`, `test_cuda_run_on_a_machine_without_cuda_stops_at_once` | the `install` row |
| (issue 23) stage limits summed to ~760 s against 450 s, the GPU paths last; tiny-model runs and four cold compiles in `paths` | test_gpu_check: `test_the_required_stages_fit_the_budget_most_important_first` | the plan printed at start |
| (issue 23) graph-speed timed noise, the text encoder and syncs, compared graphs with padded eager only, kept the best of two | - (the step loop is `sampler.prepare_steps` + the steps; tests/test_equivalence.py holds `sample` to upstream) | graph-speed: `ms_per_step` (eager padded, eager unpadded, cuda-graphs; CUDA events, median of 5), `profile_*` |
| (issue 23) a sticky CUDA error (illegal address, device-side assert) logged per request behind "(model ready)" | test_server_faults: `test_a_sticky_cuda_error_is_fatal_readiness_drops_and_the_server_exits_non_zero`, `test_only_errors_that_break_the_cuda_context_count_as_sticky` | - (no real fault is provoked on the device) |
| (issue 24) ~600 operations per eager step (bf16, GPU form): RoPE 5 per q and per k, every layer's modulation and the time embedding in each step, the input layer once per half, the mask built per step | test_step_ops: `test_a_guided_step_launches_few_operations_per_layer` (11 per layer, base <= 300 in fp32), `test_guidance_runs_the_input_layer_once_for_both_halves`; test_numerics: `test_sampler_hands_the_model_float32_time_once_per_chunk`, `test_padded_batch_builds_one_float_mask_per_chunk` | graph-speed: `ms_per_step` beside `upstream eager (the old path)`, `ms_per_step_operations` |
| (issue 24) only one step captured: every step paid its copies, `dt` and a replay of its own | test_gpu_paths: `test_a_multi_chunk_synthesis_is_one_replay_per_chunk_with_eager_audio`; test_chunk_graphs: `test_a_chunk_is_one_replay_of_all_its_steps`, `test_the_step_count_is_part_of_the_layout`, `test_cancellation_is_asked_once_per_replayed_chunk_and_before_each_eager_step` | paths: `cuda-graphs-*-equals-eager-nothing-new-after-warm-up` (a real whole-chunk capture); graph-speed: `ms_per_step` (cuda-graphs: one replay of the timed loop), `ms_per_step_by_bucket` |
| (issue 23) the fp32 fallback ran without TF32 | test_gpu_paths: `test_the_fp32_fallback_runs_its_matmuls_in_tf32_and_nothing_else_does` | - |
| (issue 23) every model load first filled the DiT with random numbers | test_checkpoints: `test_the_dit_is_built_without_random_weights_and_holds_the_files_own`, `test_loading_the_model_imports_no_compiler`; BENCHMARKS.md "Model load" | server: `defaults_ready_s` (figure) |
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions, Voice, hardware
from wyoming_ishowtts.engine import batch as batch_module
from wyoming_ishowtts.engine.chunk_graphs import EagerRecorder, Recorder
from wyoming_ishowtts.engine.sampler import guided_step
from wyoming_ishowtts.engine.voice import tone_clip
from wyoming_ishowtts.errors import EngineFailure
from wyoming_ishowtts.server.worker import EngineWorker, SegmentDone
from wyoming_ishowtts.tools.random_model import write_random_model
from wyoming_ishowtts.voices.folder import VoiceInfo

TEXT = "The fox jumps over the lazy dog. It runs back home at night, and then it sleeps until dawn."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_model(tmp_path_factory.mktemp("tiny"), "tiny", seed=4)


def load(model_dir: Path, recorder: Recorder | None = None, **settings: Any) -> Engine:
    settings = {"device": "cpu", "precision": "fp32", **settings}
    return Engine.load(EngineSettings(model_dir=model_dir, **settings), recorder=recorder)


def voice_of(engine: Engine, seconds: float = 2.0) -> Voice:
    return engine.prepare_voice(tone_clip(seconds, level=0.2), 24000, "Hello world, this is me.", trim=False)


# ---------------------------------------------------------------------------------------------- machine checks
def test_recompile_limit_has_its_name_of_the_torch_at_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch < 2.7 (the Jetson's 2.5) calls dynamo's limit `cache_size_limit`; later ones `recompile_limit`."""
    import torch._dynamo

    from wyoming_ishowtts.engine.loading import raise_recompile_limit

    old, new = SimpleNamespace(cache_size_limit=8), SimpleNamespace(recompile_limit=8, cache_size_limit=8)
    for config in (old, new):
        monkeypatch.setattr(torch._dynamo, "config", config)
        raise_recompile_limit(256)
    assert old.cache_size_limit == 256 and new.recompile_limit == 256 and new.cache_size_limit == 8


def test_a_torch_build_without_kernels_for_the_gpu_is_named_clearly() -> None:
    cu130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    problem = hardware.cuda_arch_problem("NVIDIA GeForce GTX 1080", (6, 1), cu130)
    assert (
        problem is not None and "no CUDA kernels for NVIDIA GeForce GTX 1080" in problem and "6.1" in problem
    )
    assert hardware.cuda_arch_problem("NVIDIA H100", (9, 0), cu130) is None


def test_compile_without_a_compiler_runs_eagerly_and_says_so(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hardware.shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    with caplog.at_level(logging.ERROR, logger="wyoming_ishowtts.engine.acceleration"):
        engine = load(model_dir, compile=True)
    assert engine.acceleration.name == "eager" and engine.acceleration.bucket == 1
    assert any("needs a C++ compiler" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert len(engine.synthesize_all(voice_of(engine), "Hello there.", SynthesisOptions(nfe=2, seed=1))) > 0


def test_length_bucket_alone_is_ignored_with_a_warning(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="wyoming_ishowtts.engine.acceleration"):
        engine = load(model_dir, length_bucket=64)
    assert engine.acceleration.bucket == 1 and engine.acceleration.chunk_graphs is None
    assert any("--length-bucket is ignored" in r.getMessage() for r in caplog.records)


def test_cuda_graphs_on_a_cpu_are_refused_with_a_warning(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="wyoming_ishowtts.engine.acceleration"):
        engine = load(model_dir, cuda_graphs=True)
    assert engine.acceleration.chunk_graphs is None and engine.acceleration.bucket == 1
    assert any("--cuda-graphs needs a CUDA GPU" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------- warm-up
class BrokenRecorder:
    def record(self, step: Any) -> Any:
        raise RuntimeError("capture failed (injected)")


def test_a_failed_warm_up_of_the_graphs_leaves_a_working_eager_engine(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = SynthesisOptions(nfe=3, seed=5)
    eager = load(model_dir)
    expected = eager.synthesize_all(voice_of(eager), TEXT, options)
    engine = load(model_dir, recorder=BrokenRecorder())
    voice = voice_of(engine)
    assert engine.acceleration.chunk_graphs is not None and engine.acceleration.bucket == 256
    with caplog.at_level(logging.ERROR, logger="wyoming_ishowtts.engine.acceleration"):
        engine.warm_up(voice)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "every step now runs eagerly" in errors[0].getMessage() and errors[0].exc_info
    assert engine.acceleration.chunk_graphs is None and engine.acceleration.bucket == 1
    np.testing.assert_array_equal(engine.synthesize_all(voice, TEXT, options), expected)


def test_warm_up_records_every_layout_the_voices_and_batches_reach(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The default voice, another voice with its own chunk budget (longer chunks), later chunks two at a
    time and two clients' chunks in one batch: after the warm-up none of it records or runs eagerly."""
    engine = load(model_dir, EagerRecorder(), batch_chunks=2, length_bucket=256)
    short, long = voice_of(engine, 2.0), voice_of(engine, 4.0)
    short_options = SynthesisOptions(seed=1, nfe=2)
    long_options = SynthesisOptions(seed=2, nfe=2, speed=0.8, max_chars=200)
    engine.warm_up(short, options=short_options, others=[(long, long_options)], max_requests=2)
    chunk_graphs = engine.acceleration.chunk_graphs
    assert chunk_graphs is not None and chunk_graphs.batch_sizes == [1, 2, 4]
    recorded = len(chunk_graphs)
    text = " ".join(["The fox jumps over the lazy dog, and it runs back home at night."] * 5)
    a, b = engine.begin(short, text, short_options), engine.begin(long, text, long_options)
    longest = 0
    while True:
        jobs = [job for job in (a.next_job(), b.next_job()) if job is not None]
        if not jobs:
            break
        longest = max([longest, *jobs[-1].totals])
        for job, waves in zip(jobs, engine.run_batch(jobs), strict=True):
            job.synthesis.deliver(job, waves, 0.1)
    assert (
        longest > engine.acceleration.length_range(short, short_options)[1]
    )  # beyond the default voice's lengths
    assert chunk_graphs.eager_steps == 0 and len(chunk_graphs) == recorded  # nothing recorded, nothing eager
    # A sentence longer than any chunk budget is one chunk longer than any warmed length: eager, logged.
    with caplog.at_level(logging.WARNING, logger="wyoming_ishowtts.engine.chunk_graphs"):
        engine.synthesize_all(short, "word " * 200 + ".", short_options)
    assert chunk_graphs.eager_steps > 0 and any("not warmed" in r.getMessage() for r in caplog.records)


class CountingRecorder(EagerRecorder):
    """The stand-in recorder, counting the replays of the graphs it made (whatever `ChunkGraphs` counts)."""

    def __init__(self) -> None:
        self.replays = 0

    def record(self, loop: Any) -> Any:
        replay, out = super().record(loop)

        def counted() -> None:
            self.replays += 1
            replay()

        return counted, out


def test_a_multi_chunk_synthesis_is_one_replay_per_chunk_with_eager_audio(model_dir: Path) -> None:
    """--cuda-graphs, played by its CPU stand-in: after the warm-up a request of several chunks replays one
    recorded loop per chunk (all its steps in one replay), runs no step eagerly, and gives the eager
    engine's audio (padded to the bucket, masked: equal to float rounding)."""
    options = SynthesisOptions(nfe=4, seed=3, max_chars=20)
    text = "One short line here. A second line here. A third line now. And the last one."  # 4 chunks
    eager = load(model_dir)
    expected = eager.synthesize_all(voice_of(eager), text, options)
    recorder = CountingRecorder()
    engine = load(model_dir, recorder)
    voice = voice_of(engine)
    engine.warm_up(voice, options=options)
    graphs = engine.acceleration.chunk_graphs
    assert graphs is not None and len(graphs) > 0
    chunks = len(engine.plan(voice, text, options))
    assert chunks >= 3
    replays, counted, recorded = recorder.replays, graphs.replays, len(graphs)
    steps: list[int] = []
    hook = engine.model.input_embed.register_forward_pre_hook(lambda *_: steps.append(1))
    try:
        wave = engine.synthesize_all(voice, text, options)
    finally:
        hook.remove()
    assert recorder.replays - replays == chunks, (recorder.replays - replays, chunks)
    assert graphs.replays - counted == chunks and len(graphs) == recorded
    assert graphs.eager_steps == 0, f"{graphs.eager_steps} steps ran eagerly"
    assert len(steps) == chunks * 4  # each replay ran the chunk's every step
    assert wave.shape == expected.shape
    assert np.abs(wave - expected).max() < 1e-4 * np.abs(expected).max()


# ---------------------------------------------------------------------------------------------- out of memory
def test_out_of_memory_leaves_nothing_of_the_batch_alive(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = load(model_dir)
    voice = voice_of(engine)
    held: list[weakref.ref[torch.Tensor]] = []

    def step_out_of_memory(*args: Any) -> torch.Tensor:
        activations = torch.empty(1 << 20)  # what a real failed step would have allocated
        held.append(weakref.ref(activations))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(batch_module, "guided_step", step_out_of_memory)
    jobs = [engine.begin(voice, TEXT, SynthesisOptions(nfe=2, seed=s)).next_job() for s in (1, 2)]
    with pytest.raises(EngineFailure, match="ran out of memory") as caught:
        engine.run_batch([job for job in jobs if job is not None])
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert held and held[0]() is None  # freed before the caller even sees the error


class FailingBatchEngine:
    """A batch of two fails holding a tensor (as a failed GPU batch holds its activations); each retry
    alone notes whether that tensor is still alive."""

    def __init__(self) -> None:
        self.held: list[weakref.ref[torch.Tensor]] = []
        self.alive_at_retry: list[bool] = []

    def begin(self, voice: Any, text: str, options: Any, cancelled: Any = None) -> Any:
        return _OneChunk()

    def run_batch(self, jobs: list[Any]) -> list[list[np.ndarray]]:
        if len(jobs) > 1:
            self._fail()
        self.alive_at_retry.append(self.held[0]() is not None)
        return [[np.zeros(8, dtype=np.float32)] for _ in jobs]

    def _fail(self) -> None:
        activations = torch.empty(1 << 20)
        self.held.append(weakref.ref(activations))
        raise EngineFailure("the GPU ran out of memory for this text (injected)")


class _OneChunk:
    finished = False

    def next_job(self) -> Any:
        return SimpleNamespace(synthesis=self, texts=["x"], nfe=2, batch_key=(2, 2.0, -1.0))

    def deliver(self, job: Any, waves: list[np.ndarray], spent: float) -> list[np.ndarray]:
        self.finished = True
        return waves


class _Voices:
    voices: dict[str, Any] = {}  # noqa: RUF012

    def scan(self) -> dict[str, Any]:
        return {}

    def default(self) -> Any:
        raise LookupError("no voices here")


class _Prepared:
    def get(self, engine: Any, info: Any) -> None:
        return None

    def discard_partial(self) -> None:
        pass


def _worker(fake: Any, loop: Any, **kw: Any) -> EngineWorker:
    return EngineWorker(
        lambda: fake,
        _Voices(),  # type: ignore[arg-type]
        _Prepared(),  # type: ignore[arg-type]
        loop,
        max_queued_per_client=4,
        max_queued_total=32,
        max_buffered_pieces=8,
        **kw,
    )


def test_a_failed_batch_is_retried_one_by_one_after_its_tensors_are_freed() -> None:
    fake = FailingBatchEngine()
    voice = VoiceInfo(name="v", reference_audio=Path("unused.wav"), transcript="unused")

    async def main() -> None:
        worker = _worker(fake, asyncio.get_running_loop(), warm_up=False, max_batch=2)
        worker.start()
        assert await asyncio.to_thread(worker.ready.wait, 30)
        with worker._cond:  # both requests queued before the worker looks: one batch of two
            requests = [worker.open_request(i, voice, streaming=False) for i in range(2)]
            for request in requests:
                worker.submit(request, "one chunk")
        for request in requests:
            while not isinstance(await asyncio.wait_for(request.results.get(), 30), SegmentDone):
                worker.taken(request)
        worker.stop()
        assert await asyncio.to_thread(worker.join, 30)

    asyncio.run(main())
    assert fake.alive_at_retry == [False, False]


class FailingWarmUpEngine:
    warm_up_needs_voices = False

    def warm_up(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("CUDA error: no kernel image is available (injected)")


def test_an_eager_warm_up_failure_stops_the_server_instead_of_serving_errors() -> None:
    fatal: list[BaseException] = []
    done = threading.Event()

    def on_fatal(err: BaseException) -> None:
        fatal.append(err)
        done.set()

    async def main() -> None:
        worker = _worker(FailingWarmUpEngine(), asyncio.get_running_loop(), warm_up=True, on_fatal=on_fatal)
        worker.start()
        assert await asyncio.to_thread(done.wait, 30)
        assert not worker.ready.is_set()

    asyncio.run(main())
    assert "no kernel image" in str(fatal[0])


# ---------------------------------------------------------------------------------------------- fp32 fallback
def test_the_fp32_fallback_is_a_true_fp32_rerun(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A half-precision run that produces NaN reruns in fp32 from the checkpoint's own weights and the voice's
    float32 mel (never rounded to the half precision): the same audio as an engine that ran fp32 from the
    start, and no graphs left over."""
    options = SynthesisOptions(nfe=3, seed=7)
    fp32 = load(model_dir)
    expected = fp32.synthesize_all(voice_of(fp32), TEXT, options)

    def nan_in_half_precision(model: Any, x: torch.Tensor, *args: Any) -> torch.Tensor:
        out = guided_step(model, x, *args)
        return out * float("nan") if model.input_dtype != torch.float32 else out

    half = load(model_dir, EagerRecorder(), precision="bf16")
    voice = voice_of(half)
    half.warm_up(voice, options=options)
    assert half.acceleration.chunk_graphs is not None and half.model.input_dtype == torch.bfloat16
    assert voice.mel.dtype == torch.float32  # the sampler casts what the model reads; the voice keeps fp32
    monkeypatch.setattr(batch_module, "guided_step", nan_in_half_precision)
    monkeypatch.setattr(half.acceleration.chunk_graphs, "step", nan_in_half_precision)
    wave = half.synthesize_all(voice, TEXT, options)
    assert half.dtype == torch.float32 and half.acceleration.chunk_graphs is None
    assert half.model.input_dtype == torch.float32
    gc.collect()
    np.testing.assert_array_equal(wave, expected)


def test_the_fp32_fallback_runs_its_matmuls_in_tf32_and_nothing_else_does(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TF32 is on while the fallback's fp32 model samples, and only then: not in the half-precision run
    before it, not in an engine that is fp32 from the start (upstream's numbers), and the process's own
    setting is back after each request. (On a CPU the flag changes no number; on Hopper it is the
    difference between true fp32 and TF32 matrix multiplies.)"""
    from wyoming_ishowtts.engine.loading import tf32_enabled

    seen: list[tuple[torch.dtype, bool]] = []

    def watching(model: Any, x: torch.Tensor, *args: Any) -> torch.Tensor:
        seen.append((model.input_dtype, tf32_enabled()))
        out = guided_step(model, x, *args)
        return out * float("nan") if model.input_dtype != torch.float32 else out

    monkeypatch.setattr(batch_module, "guided_step", watching)
    options = SynthesisOptions(nfe=2, seed=7)
    assert not tf32_enabled()
    fp32 = load(model_dir)
    fp32.synthesize_all(voice_of(fp32), "Hello there.", options)
    assert seen and all(not tf32 for _, tf32 in seen) and not fp32.fell_back
    seen.clear()
    half = load(model_dir, precision="bf16")
    half.synthesize_all(voice_of(half), "Hello there.", options)
    assert half.fell_back and half.dtype == torch.float32
    assert {dtype: tf32 for dtype, tf32 in seen} == {torch.bfloat16: False, torch.float32: True}
    assert not tf32_enabled()  # restored after the request
    seen.clear()
    half.synthesize_all(voice_of(half), "Hello there.", options)  # the next request: fp32, TF32 again
    assert seen and all(dtype == torch.float32 and tf32 for dtype, tf32 in seen)
    assert not tf32_enabled()


# ---------------------------------------------------------------------------------------------- images
@pytest.mark.parametrize("dockerfile", ["docker/Dockerfile", "docker/Dockerfile.jetson"])
def test_images_keep_compiled_kernels_in_the_data_volume(dockerfile: str) -> None:
    """Inductor's cache defaults to /tmp, lost at every container restart (and every start recompiles)."""
    text = (Path(__file__).resolve().parents[1] / dockerfile).read_text()
    assert 'VOLUME ["/data"]' in text
    assert "TORCHINDUCTOR_CACHE_DIR=/data/cache/torchinductor" in text
