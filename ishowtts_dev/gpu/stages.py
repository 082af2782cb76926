"""The stages of script/gpu-check, each run in a process of its own by ``ishowtts_dev.gpu`` (which gives each a time
limit, so one hang cannot eat the device's budget):

    python -m ishowtts_dev.gpu.stages STAGE CONFIG.json RESULT.json

Every stage rewrites RESULT.json after each measurement, so a stage stopped at its limit still hands back
what it finished. A result holds ``values`` (figures) and ``checks`` (pass/fail facts that must hold on any
GPU; the performance targets are judged later, in ``ishowtts_dev.gpu``).

On ``--device cpu`` the same code runs on the CPU (the CI smoke run); figures that only mean something on a
GPU (CUDA against CPU, nvidia-smi) are then recorded as such, not faked.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from wyoming_ishowtts.engine.hardware import arch_supported

from ..bench.measure import median, nvidia_smi, write_json
from ..precision import snr_db

# Four short sentences: four chunks at max_chars=40, so batching and several lengths are exercised.
FOUR = (
    "The fox jumps over the lazy dog. It runs back home at night. "
    "The moon is bright and full. Everyone sleeps well until dawn."
)
SECOND_VOICE = "other"
"""A second voice with a longer reference and its own speed, so warm-up coverage of other voices is tested."""


@dataclass(frozen=True)
class Plan:
    """What the stages run, decided by the device and --quick in one place."""

    device: str
    quick: bool
    work: Path

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def main_size(self) -> str:
        return "tiny" if self.quick else "base"

    @property
    def sizes(self) -> tuple[str, ...]:
        """One model: the tiny one adds nothing a GPU needs to show, and costs device time."""
        return (self.main_size,)

    @property
    def serving_precision(self) -> str:
        """What the server runs at its defaults: fp16 on a GPU; fp32 on a CPU (the stand-in run)."""
        return "fp16" if self.cuda else "fp32"

    def model_dir(self, size: str) -> Path:
        return self.work / f"model-{size}"

    @property
    def voices_dir(self) -> Path:
        return self.work / "voices"

    @property
    def equal_nfe(self) -> int:
        return 2 if self.quick else 32

    @property
    def equal_precision(self) -> str:
        """Upstream's own choice on a GPU (fp16 from compute capability 7), fp32 on a CPU."""
        return "fp16" if self.cuda else "fp32"

    @property
    def load_levels(self) -> tuple[int, ...]:
        return (1, 2) if self.quick else (1, 2, 4, 8)

    @property
    def load_text(self) -> str:
        return "short" if self.quick else "medium"

    @property
    def long_text(self) -> str:
        return "short" if self.quick else "long"


class Record:
    """A stage's result file: figures and checks, rewritten after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"values": {}, "checks": []}
        self.flush()

    def flush(self) -> None:
        write_json(self.path, self.data)

    def value(self, key: str, value: Any) -> None:
        self.data["values"][key] = value
        print(f"VALUE {key} {json.dumps(value, default=str)}", flush=True)
        self.flush()

    def check(self, name: str, ok: bool, **info: Any) -> bool:
        self.data["checks"].append({"name": name, "ok": bool(ok), **info})
        print(f"{'PASS' if ok else 'FAIL'} {name} {json.dumps(info, default=str)}", flush=True)
        self.flush()
        return bool(ok)


# ---------------------------------------------------------------------------------------------- helpers
def strict_fp32() -> None:
    """No TF32 anywhere (matrix products and cuDNN convolutions), so CUDA fp32 can be compared with CPU
    fp32. torch >= 2.9 has one switch per backend; older torch the two legacy flags (mixing them errs)."""
    import torch

    try:
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"  # type: ignore[attr-defined]
    except AttributeError:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def rel_l2(reference: np.ndarray, other: np.ndarray) -> float:
    """||other - reference|| / ||reference|| over their common length (inf when the lengths differ)."""
    if len(reference) != len(other):
        return math.inf
    ref = reference.astype(np.float64)
    norm = float(np.linalg.norm(ref))
    return float(np.linalg.norm(other.astype(np.float64) - ref)) / norm if norm > 0 else math.inf


def worst_gap_s(times: Sequence[float], audio: Sequence[float]) -> float | None:
    """How late a client's audio arrived against a player that starts at the first chunk and then plays
    without pause: the largest (arrival - moment it is needed) over every chunk after the first. Negative:
    the stream stayed ahead of playback by at least that much; None: a single chunk (nothing to wait for)."""
    if len(times) < 2:
        return None
    start, played, worst = times[0], audio[0], -math.inf
    for arrived, seconds in zip(times[1:], audio[1:], strict=True):
        worst = max(worst, arrived - (start + played))
        played += seconds
    return worst


def cuda_memory() -> dict[str, float] | None:
    import torch

    if not torch.cuda.is_initialized():
        return None
    return {
        "peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
        "peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
    }


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """Wall seconds of the block (synchronized on CUDA), appended to the yielded list."""
    import torch

    box: list[float] = []
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    started = time.perf_counter()
    yield box
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
    box.append(time.perf_counter() - started)


def free_cuda() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def load_engine(
    plan: Plan, size: str, device: str, precision: str, recorder: Any = None, **settings: Any
) -> tuple[Any, Any]:
    """An engine and the precision tool's voice (deterministic clip, not trimmed); `recorder`: its steps
    recorded with it (`Engine.load`)."""
    from wyoming_ishowtts.engine import Engine, EngineSettings

    from ..precision import REF_TEXT, reference_clip

    engine = Engine.load(
        EngineSettings(
            model_dir=plan.model_dir(size), device=device, precision=precision, warmup=False, **settings
        ),
        recorder=recorder,
    )
    voice = engine.prepare_voice(reference_clip(), 24000, REF_TEXT, trim=False)
    return engine, voice


# ---------------------------------------------------------------------------------------------- stages
def stage_setup(plan: Plan, rec: Record) -> None:
    """The machine, the torch build against the GPU, SDPA's kernels; writes the random models and voices."""
    import platform

    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "device": plan.device,
        "quick": plan.quick,
    }
    if plan.cuda:
        capability = torch.cuda.get_device_capability()
        env |= {
            "gpu": torch.cuda.get_device_name(),
            "capability": list(capability),
            "arch_list": torch.cuda.get_arch_list(),
            "total_memory_mib": torch.cuda.get_device_properties(0).total_memory / 2**20,
            "nvidia_smi": nvidia_smi("--query-gpu=name,memory.total,driver_version,clocks.max.sm"),
        }
        rec.value("env", env)
        rec.check(
            "torch-has-kernels-for-this-gpu",
            arch_supported(capability, env["arch_list"]),
            capability=capability,
            arch_list=env["arch_list"],
        )
        sdpa_kernels(rec)
        device_binding(rec, torch.cuda)
    else:
        rec.value("env", env)

    from wyoming_ishowtts.tools.random_model import write_random_model

    from ..bench.texts import write_voice

    for size in plan.sizes:
        folder = plan.model_dir(size)
        if not (folder / "model.safetensors").exists():
            with timed() as spent:
                write_random_model(folder, size, seed=0)
            rec.value(f"model_{size}_written_s", spent[0])
    write_voice(plan.voices_dir, "bench", seed=0)
    write_second_voice(plan.voices_dir)
    rec.check(
        "models-and-voices-written",
        all((plan.model_dir(s) / "model.safetensors").exists() for s in plan.sizes),
    )


def write_second_voice(voices_dir: Path) -> Path:
    """A 9-second reference with its own speed: chunks of other lengths than the bench voice's."""
    import soundfile as sf

    from wyoming_ishowtts.engine.options import SAMPLE_RATE

    from ..bench.texts import reference_clip

    folder = voices_dir / SECOND_VOICE
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "reference.wav", reference_clip(9.0, seed=1), SAMPLE_RATE, subtype="PCM_16")
    text = (
        "Good evening, this is a second and somewhat longer recording of a voice, "
        "made so that the speech system has another reference to learn from."
    )
    (folder / "reference.txt").write_text(text + "\n", encoding="utf-8")
    (folder / "voice.toml").write_text('languages = ["en"]\nseed = 0\nspeed = 0.9\n', encoding="utf-8")
    return folder


def sdpa_kernels(rec: Record) -> None:
    """The DiT's attention (16 heads of 64, fp16): flash on the unmasked form, the masked form (batches and
    buckets) on whatever kernel SDPA picks, both against fp32."""
    import torch
    import torch.nn.functional as F

    q = torch.randn(4, 16, 1024, 64, device="cuda", dtype=torch.float16)
    mask = torch.ones(4, 1, 1, 1024, dtype=torch.bool, device="cuda")
    mask[1::2, ..., 700:] = False
    for name, m in (("unmasked", None), ("masked", mask)):
        ref = F.scaled_dot_product_attention(q.float(), q.float(), q.float(), attn_mask=m)
        try:
            out = F.scaled_dot_product_attention(q, q, q, attn_mask=m)
            err = float((out.float() - ref).abs().max())
            rec.check(f"sdpa-{name}-fp16", err < 1e-2, max_abs_err=err)
        except RuntimeError as exc:
            rec.check(f"sdpa-{name}-fp16", False, error=str(exc)[:300])
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            F.scaled_dot_product_attention(q, q, q)
        rec.value("sdpa_flash_unmasked", True)
    except (ImportError, RuntimeError) as exc:
        rec.value("sdpa_flash_unmasked", f"unavailable: {str(exc)[:200]}")


def device_binding(rec: Record, cuda: Any) -> bool:
    """``--device cuda:N`` on real GPUs (tests/test_device.py plays it with a stand-in for `cuda`): loading
    on a worker thread makes the last GPU that thread's current device and leaves this thread's alone, and
    a GPU past the last is refused with the reason. On a one-GPU machine the last GPU is cuda:0, so only the
    binding and the refusal are shown, not that another thread keeps its own device."""
    import threading

    from wyoming_ishowtts.engine.loading import bind_thread
    from wyoming_ishowtts.errors import ModelLoadError

    count = int(cuda.device_count())
    before = int(cuda.current_device())
    seen: list[int] = []
    errors: list[str] = []

    def worker() -> None:
        try:
            bind_thread(f"cuda:{count - 1}", cuda)
            seen.append(int(cuda.current_device()))
        except Exception as exc:  # reported by the check
            errors.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=worker, name="engine-worker")
    thread.start()
    thread.join()
    refused = ""
    try:
        bind_thread(f"cuda:{count}", cuda)
    except ModelLoadError as exc:
        refused = str(exc)
    after = int(cuda.current_device())
    return rec.check(
        "device-cuda-N-binds-the-loading-thread-only",
        seen == [count - 1] and after == before and "this process sees" in refused and not errors,
        gpus=count,
        worker_current=seen,
        this_thread_before_after=[before, after],
        refused=refused[:200],
        errors=errors,
    )


def stage_equivalence(plan: Plan, rec: Record) -> None:
    """Our fp32 on the device against our fp32 on the CPU (TF32 off), same seed: the same computation."""
    from wyoming_ishowtts.engine import SynthesisOptions

    strict_fp32()
    for size in plan.sizes:
        if size == "tiny":
            text, options = FOUR, SynthesisOptions(nfe=4, seed=1, max_chars=40)
        else:  # base on the CPU is slow: one chunk, two steps
            text, options = "Hello there, this is a short test.", SynthesisOptions(nfe=2, seed=1)
        waves = {}
        for device in ("cpu", plan.device):
            engine, voice = load_engine(plan, size, device, "fp32")
            waves[device] = engine.synthesize_all(voice, text, options)
            del engine, voice
            free_cuda()
        rel = rel_l2(waves["cpu"], waves[plan.device])
        info = {
            "relative_l2": rel,
            "max_abs": float(np.max(np.abs(waves["cpu"] - waves[plan.device])))
            if len(waves["cpu"]) == len(waves[plan.device])
            else None,
            "samples": [len(waves["cpu"]), len(waves[plan.device])],
            "compared": f"cpu vs {plan.device}",
        }
        rec.value(f"fp32_vs_cpu_{size}", info)
        rec.check(f"{plan.device}-fp32-equals-cpu-fp32-{size}", rel <= 1e-3, **info)


def stage_precision(plan: Plan, rec: Record) -> None:
    """fp16 and bf16 against fp32 on the device: SNR, the time of a warm run (each engine warmed up first),
    and whether the engine silently fell back to fp32 (then its SNR would be meaningless)."""
    import torch

    from wyoming_ishowtts.engine import SynthesisOptions

    from ..precision import TEXT

    options = SynthesisOptions(nfe=4 if plan.quick else 16, seed=1)
    reference: np.ndarray | None = None
    wanted = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    for precision, dtype in wanted.items():
        free_cuda()
        engine, voice = load_engine(plan, plan.main_size, plan.device, precision)
        engine.warm_up(voice)
        with timed() as spent:
            wave = engine.synthesize_all(voice, TEXT, options)
        reference = reference if reference is not None else wave
        fell_back = engine.dtype != dtype
        info = {
            "size": plan.main_size,
            "nfe": options.nfe,
            "warm_s": spent[0],
            "audio_s": len(wave) / 24000,
            "dtype_after": str(engine.dtype).replace("torch.", ""),
            "snr_db_vs_fp32": None if precision == "fp32" or fell_back else snr_db(reference, wave),
            "memory": cuda_memory(),
        }
        rec.value(f"precision_{precision}", info)
        rec.check(f"{precision}-no-silent-fallback", not fell_back, dtype_after=info["dtype_after"])
        del engine, voice


PATHS: dict[str, dict[str, Any]] = {
    "cuda-graphs": {"cuda_graphs": True},
    "compiled": {"compile": True},
    "compiled-cuda-graphs": {"compile": True, "cuda_graphs": True},
}


def accelerated_engine(plan: Plan, size: str, precision: str, path: str, **settings: Any) -> tuple[Any, Any]:
    """An engine on `path` (see PATHS). On a CPU the CUDA graphs are played by the eager stand-in recorder
    (chunk_graphs.EagerRecorder): the same buffers, layouts and warm-up, without the GPU's speed-up."""
    from wyoming_ishowtts.engine.chunk_graphs import EagerRecorder

    wanted = dict(PATHS[path])
    stand_in = not plan.cuda and wanted.pop("cuda_graphs", False)
    recorder = EagerRecorder() if stand_in else None
    return load_engine(plan, size, plan.device, precision, recorder, **wanted, **settings)


def stage_paths(plan: Plan, rec: Record) -> None:
    """The main model in its serving precision with CUDA graphs gives eager's audio, and after the warm-up a
    request of the warmed voice records nothing and falls back to eager nowhere (either fails the check).
    The compiled paths are the optional compile stage's: compiling takes minutes."""
    path_checks(plan, rec, ["cuda-graphs"])


def path_checks(plan: Plan, rec: Record, paths: Sequence[str]) -> None:
    """Each of `paths` against eager on the main model, in the serving precision."""
    import torch
    import torch._dynamo

    from wyoming_ishowtts.engine import SynthesisOptions

    options = SynthesisOptions(nfe=4, seed=1, max_chars=40)
    size, precision = plan.main_size, plan.serving_precision
    engine, voice = load_engine(plan, size, plan.device, precision, batch_chunks=2)
    reference = engine.synthesize_all(voice, FOUR, options)
    del engine
    for path in paths:
        torch._dynamo.reset()
        free_cuda()
        started = time.perf_counter()
        error, waves, layouts, eager_steps, acceleration = None, [], 0, None, "-"
        try:
            engine, voice = accelerated_engine(plan, size, precision, path, batch_chunks=2)
            engine.warm_up(voice, options=options)
            chunk_graphs = engine.acceleration.chunk_graphs
            layouts = len(chunk_graphs) if chunk_graphs is not None else 0
            with torch._dynamo.config.patch(error_on_recompile=True):
                waves = [engine.synthesize_all(voice, FOUR, options) for _ in range(2)]
            chunk_graphs = engine.acceleration.chunk_graphs  # None if the warm-up or a request dropped them
            eager_steps = None if chunk_graphs is None else chunk_graphs.eager_steps
            acceleration = engine.acceleration.name
            del engine
        except Exception as exc:  # reported as a failed check
            error = f"{type(exc).__name__}: {exc}"[:400]
        floor = 60.0 if precision == "fp32" else 30.0
        snrs = [snr_db(reference, w) for w in waves]
        rec.check(
            f"{path}-{size}-{precision}-equals-eager-nothing-new-after-warm-up",
            error is None
            and acceleration != "eager"
            and eager_steps == 0
            and all(len(w) == len(reference) for w in waves)
            and min(snrs, default=0) >= floor,
            snr_db=snrs,
            floor_db=floor,
            warm_s=time.perf_counter() - started,
            layouts=layouts,
            eager_steps_after_warm_up=eager_steps,
            acceleration=acceleration,
            error=error,
        )
    torch._dynamo.reset()


STEP_RUNS = 5
"""Timed runs of each step loop; the median counts (one untimed run first)."""


def time_steps(run: Callable[[], Any], cuda: bool) -> float:
    """Seconds one call of `run` takes on the device: CUDA events around it on a GPU (the GPU's own
    clock, no host sync inside), perf_counter with a synchronize on a CPU."""
    import torch

    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        run()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / 1000
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def profile_step(run: Callable[[], Any], cuda: bool, rows: int = 12) -> str:
    """torch.profiler's table of one call of `run`: the top kernels (CUDA) or operators (CPU) by self time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        run()
        if cuda:
            torch.cuda.synchronize()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return str(prof.key_averages().table(sort_by=sort, row_limit=rows, max_name_column_width=60))


def run_steps(model: Any, loop: Any, inputs: Any, n: int) -> None:
    """`sample`'s loop (`loop`: `sampler.euler_loop`, or a `ChunkGraphs` that replays it) over the first `n`
    Euler steps of prepared `inputs` (sampler.StepInputs): one replay for a recorded layout of `n` steps."""
    import torch

    with torch.inference_mode():
        loop(model, inputs.x, inputs.chunk, inputs.modulation[:n], inputs.dt[:n])


UPSTREAM_PATH = "upstream eager (the old path)"
"""f5-tts's own step on the same weights: the step as ours was before issue 24 (time embedding and every
layer's modulation in each step, q and k rotated apart, the input layer once per half), unpadded."""


def upstream_step_ms(
    plan: Plan, layouts: Sequence[tuple[int, int]], steps: int
) -> tuple[dict[str, Any], int | None]:
    """ms per step of upstream's guided forward at `layouts` (the same timing as ours), and the
    operations one step of it dispatches (ishowtts_dev.bench.profile)."""
    import torch

    from ..bench.profile import count_operations
    from ..bench.step import upstream_transformer

    model = upstream_transformer(plan.model_dir(plan.main_size), plan.device)
    dtype = next(model.parameters()).dtype
    row: dict[str, Any] = {"dtype": str(dtype).replace("torch.", ""), "masked": False}
    operations = None
    generator = torch.Generator().manual_seed(0)
    for batch, frames in layouts:
        x, cond = (torch.randn(batch, frames, 100, generator=generator).to(plan.device) for _ in range(2))
        text = torch.randint(0, 100, (batch, 20), generator=generator).to(plan.device)
        times = list(torch.linspace(0, 1, steps + 1, device=plan.device)[:steps, None].expand(-1, batch))
        model.clear_cache()

        def loop(x: Any = x, cond: Any = cond, text: Any = text, times: Any = times, up: Any = model) -> None:
            with torch.inference_mode():
                for time in times:  # (B,) each: upstream joins its halves' times too
                    up(x=x, cond=cond, text=text, time=time, cfg_infer=True, cache=True)

        loop()  # untimed; fills upstream's text cache
        if operations is None:
            operations = count_operations(partial(loop, times=times[:1])).total
        runs = [time_steps(loop, plan.cuda) for _ in range(STEP_RUNS)]
        layout = f"batch {batch} x {frames} frames"
        row[layout] = 1000 * median(runs) / steps
        row.setdefault("runs_ms", {})[layout] = [1000 * t / steps for t in runs]
    del model
    return row, operations


def step_inputs(
    engine: Any, voice: Any, batch: int, frames: int, steps: int, pad_to: int, generator: Any
) -> Any:
    """`sampler.prepare_steps` for `batch` items of `frames` frames of `voice`, padded to a multiple of
    `pad_to` (masked when > 1): what the timed step loops run on."""
    import torch

    from wyoming_ishowtts.engine.sampler import draw_noise, prepare_steps

    ids = torch.tensor([engine.vocab.encode(list("Warm up the step."))], device=engine.device)
    noise = draw_noise([frames] * batch, engine.model.cfg.mel_dim, generator)
    with torch.inference_mode():
        return prepare_steps(
            engine.model,
            voice.mel.expand(batch, -1, -1),
            torch.full((batch,), int(voice.mel.shape[1]), device=engine.device),
            ids.expand(batch, -1),
            torch.full((batch,), frames, device=engine.device),
            noise,
            nfe=steps,
            pad_to=pad_to,
        )


def step_speed(plan: Plan, rec: Record, paths: Sequence[str], key: str) -> None:
    """Milliseconds per sampler step at a few batch layouts of the main model in its serving precision:
    only the step loop is timed (noise, the text encoder and the inputs prepared before it), with CUDA
    events on a GPU, the median of STEP_RUNS runs after one untimed. Eager runs twice: padded to the
    length bucket (masked, as a graph replays it) and unpadded (the server's eager path, where nothing is
    masked and SDPA may pick FlashAttention); beside them the old path (`UPSTREAM_PATH`, eager graph-speed
    only). A recorded path records just the timed layouts (in the untimed run), each one graph of the whole
    loop, not the warm-up's every length. The first layout's eager and replayed loop are profiled, and each
    path's operations per step counted (`key` + "_operations")."""
    import torch

    from wyoming_ishowtts.engine.sampler import euler_loop

    from ..bench.profile import count_operations

    bucket = 512
    layouts = [(1, 500), (2, 1000)] if plan.quick else [(1, 1000), (1, 2000), (4, 1000), (8, 2000)]
    steps = 4 if plan.quick else 16
    table: dict[str, dict[str, Any]] = {}
    operations: dict[str, int | None] = {}
    if "cuda-graphs" in paths:
        free_cuda()
        # Batch 1 only: enough to show the gain, and the stage's device time is short; on a CPU (the smoke
        # run) one layout and one step, only so that the code runs (bench.step compares steps on a CPU).
        table[UPSTREAM_PATH], operations[UPSTREAM_PATH] = (
            upstream_step_ms(plan, layouts[:2], steps)
            if plan.cuda
            else upstream_step_ms(plan, layouts[:1], 1)
        )
        rec.value(key, table)
        rec.value(f"{key}_operations", operations)
    for path in ["eager padded", "eager unpadded", *paths]:
        free_cuda()
        if path.startswith("eager"):
            engine, voice = load_engine(plan, plan.main_size, plan.device, plan.serving_precision)
        else:
            engine, voice = accelerated_engine(
                plan, plan.main_size, plan.serving_precision, path, length_bucket=bucket
            )
        chunk_loop = engine.acceleration.chunk_graphs or euler_loop
        generator = torch.Generator().manual_seed(0)
        row: dict[str, Any] = {}
        for batch, frames in layouts:
            inputs = step_inputs(
                engine, voice, batch, frames, steps, 1 if path == "eager unpadded" else bucket, generator
            )
            loop = partial(run_steps, engine.model, chunk_loop, inputs, steps)
            with engine.acceleration.recording():  # untimed: records (or compiles) this layout, or for
                loop()  # eager the allocations and kernel choice; a recorded loop is one graph of all steps
            if path not in operations:  # a replay dispatches none of the steps' operations itself
                operations[path] = round(count_operations(loop).total / steps)
            times = [time_steps(loop, plan.cuda) for _ in range(STEP_RUNS)]
            layout = f"batch {batch} x {frames} frames"
            row[layout] = 1000 * median(times) / steps
            row.setdefault("runs_ms", {})[layout] = [1000 * t / steps for t in times]
            if (batch, frames) == layouts[0] and path != "eager padded":
                rec.value(f"profile_{path.replace(' ', '_')}", profile_step(loop, plan.cuda))
        row["masked"] = path != "eager unpadded"
        if engine.acceleration.chunk_graphs is not None:
            row["eager steps (not warmed)"] = engine.acceleration.chunk_graphs.eager_steps
        table[path] = row
        rec.value(key, table)
        rec.value(f"{key}_operations", operations)
        del engine, voice
    torch.compiler.reset()


BUCKETS = (64, 128, 256)
"""The length buckets `bucket_speed` compares (DEFAULT_LENGTH_BUCKET is one of them)."""
BUCKET_FRAMES = (891, 947)
"""The chunk lengths it times them at: 891 frames, a typical chunk of the base model (issue 24), where 64
and 128 both pad to 896 and 256 to 1024; and 947, where 64 pads to 960 and 128 and 256 to 1024."""


def bucket_speed(plan: Plan, rec: Record, key: str = "ms_per_step_by_bucket") -> None:
    """ms per step of the main model in its serving precision, batch 1, at each length bucket of BUCKETS:
    the CUDA-graph loop and the eager loop, both padded to the bucket (masked, as the server runs them),
    beside the eager loop unpadded (no mask: the fastest attention kernel). A finer bucket pads less but
    records more layouts; which is fastest is what this shows. One engine: the bucket decides only the
    padded length a layout has, so each is recorded here for just its one length (no warm-up over every
    length). Timed as `step_speed` times (CUDA events, median of STEP_RUNS after one untimed run). The
    table is written after each bucket, and a bucket that fails is an error in its row, not a lost stage."""
    import torch

    from wyoming_ishowtts.engine.sampler import euler_loop

    steps = 4 if plan.quick else 16
    lengths = BUCKET_FRAMES[:1] if plan.quick else BUCKET_FRAMES
    free_cuda()
    engine, voice = accelerated_engine(plan, plan.main_size, plan.serving_precision, "cuda-graphs")
    graphs = engine.acceleration.chunk_graphs
    generator = torch.Generator().manual_seed(0)
    table: dict[str, dict[str, Any]] = {}
    for bucket in (1, *BUCKETS):
        name = "eager unpadded" if bucket == 1 else f"bucket {bucket}"
        row: dict[str, Any] = {}
        table[name] = row
        try:
            for frames in lengths:
                inputs = step_inputs(engine, voice, 1, frames, steps, bucket, generator)
                cell: dict[str, Any] = {"padded_frames": int(inputs.x.shape[1])}
                row[f"{frames} frames"] = cell
                loops: dict[str, Any] = {"eager": euler_loop}
                if bucket > 1:
                    loops = {"eager padded": euler_loop, "cuda-graphs": graphs or euler_loop}
                for label, chunk_loop in loops.items():
                    loop = partial(run_steps, engine.model, chunk_loop, inputs, steps)
                    if chunk_loop is graphs:
                        with engine.acceleration.recording():
                            loop()  # records this layout
                    loop()  # untimed: allocations, kernel choice
                    times = [time_steps(loop, plan.cuda) for _ in range(STEP_RUNS)]
                    cell[label] = 1000 * median(times) / steps
        except Exception as exc:  # this bucket's row says so; the others still run
            row["error"] = f"{type(exc).__name__}: {exc}"[:400]
        if graphs is not None:
            row["eager steps (not warmed)"] = graphs.eager_steps
        rec.value(key, table)
    del engine, voice, graphs


def stage_graph_speed(plan: Plan, rec: Record) -> None:
    """Per-step time, eager against CUDA graphs (on a CPU: the stand-in, which is no faster), then the
    length buckets against each other (`bucket_speed`; it runs even when the first part fails)."""
    try:
        step_speed(plan, rec, ["cuda-graphs"], "ms_per_step")
    finally:
        bucket_speed(plan, rec)


def stage_compile(plan: Plan, rec: Record) -> None:
    """The compiled paths on the main model: equal to eager, nothing compiled after the warm-up, and their
    ms per step (compiling the base model takes minutes: an optional stage, last)."""
    if not plan.cuda:
        rec.value(
            "ms_per_step_compiled", "skipped on the CPU (tests/test_gpu_paths.py compiles the tiny model)"
        )
        return
    path_checks(plan, rec, ["compiled", "compiled-cuda-graphs"])
    step_speed(plan, rec, ["compiled", "compiled-cuda-graphs"], "ms_per_step_compiled")


# ---------------------------------------------------------------------------------------------- server
def server_args(plan: Plan, size: str, name: str, *extra: str) -> list[str]:
    return [
        "--model-dir",
        str(plan.model_dir(size)),
        "--voices-dir",
        str(plan.voices_dir),
        "--voice",
        "bench",
        "--no-builtin-voice",
        "--cache-dir",
        str(plan.work / f"cache-{name}"),
        "--audio-cache-mb",  # every repeat and every client of a burst is timed as a synthesis
        "0",
        "--device",
        "cuda" if plan.cuda else "cpu",
        *extra,
    ]


async def _burst(server: Any, text: str, clients: int) -> tuple[float, list[Any]]:
    from ..bench import client as wy

    go = asyncio.Event()
    tasks = [
        asyncio.create_task(wy.synthesize(server.host, server.port, text, "bench", start_event=go))
        for _ in range(clients)
    ]
    await asyncio.sleep(0.3)  # every client connected before the release
    started = time.perf_counter()
    go.set()
    timings = await asyncio.gather(*tasks)
    return time.perf_counter() - started, list(timings)


async def _short_and_long(plan: Plan, rec: Record, label: str, server: Any) -> None:
    """Time to first audio of the short text (median of 3), then the long text's RTF and peak memory."""
    from ..bench import client as wy
    from ..bench.texts import TEXTS

    short = [await wy.synthesize(server.host, server.port, TEXTS["short"], "bench") for _ in range(3)]
    rec.value(
        f"{label}_short",
        {
            "ttfa_s": median([t.ttfa_s for t in short]),
            "ttfa_runs_s": [t.ttfa_s for t in short],
            "total_s": median([t.total_s for t in short]),
        },
    )
    server.reset_peaks()
    long = await wy.synthesize(server.host, server.port, TEXTS[plan.long_text], "bench")
    rss, allocated = server.peaks()
    memory = server.gpu_memory()
    rec.value(
        f"{label}_long",
        {
            "text": plan.long_text,
            "rtf": long.rtf,
            "ttfa_s": long.ttfa_s,
            "total_s": long.total_s,
            "audio_s": long.audio_s,
            "worst_gap_s": worst_gap_s(long.timeline.times, long.timeline.audio),
            "peak_rss_mib": rss,
            "peak_allocated_mib": allocated,
            "peak_reserved_mib": memory["peak_gpu_reserved_mb"],
            "nvidia_smi_used_mib": memory["gpu_smi_mb"],
        },
    )


async def _load(plan: Plan, rec: Record, label: str, server: Any) -> None:
    """1/2/4/8 clients released together, each level after an untimed burst of the same size (so batched
    kernels and layouts are warm): each client's worst gap against playback, and the throughput."""
    from ..bench.texts import TEXTS

    levels = []
    for clients in plan.load_levels:
        await _burst(server, TEXTS[plan.load_text], clients)
        wall, timings = await _burst(server, TEXTS[plan.load_text], clients)
        gaps = [worst_gap_s(t.timeline.times, t.timeline.audio) for t in timings]
        levels.append(
            {
                "clients": clients,
                "text": plan.load_text,
                "wall_s": wall,
                "throughput_audio_s_per_s": sum(t.audio_s for t in timings) / wall,
                "ttfa_s": [t.ttfa_s for t in timings],
                "worst_gap_s": gaps,
                "all_ahead": all(g is None or g <= 0 for g in gaps),
            }
        )
        rec.value(f"{label}_load", levels)


async def _serve_and_measure(
    plan: Plan, rec: Record, label: str, extra: Sequence[str], load_only: bool = False
) -> None:
    from ..bench import client as wy
    from ..bench.server import ServerProcess
    from ..bench.texts import TEXTS

    args = server_args(plan, plan.main_size, label, *extra)
    with ServerProcess(args, plan.work, label, plan.device) as server:
        rec.value(f"{label}_command", server.display_command)
        try:
            started = time.perf_counter()
            await server.wait_listening()
            await asyncio.to_thread(server.wait_for_log, "Model ready", 600)
            rec.value(f"{label}_ready_s", time.perf_counter() - started)
            loaded = re.search(r"loaded on (\S+) \((\w+)\)", server.log())
            rec.value(f"{label}_dtype", loaded.group(2) if loaded else None)
            await wy.synthesize(server.host, server.port, TEXTS["short"], "bench")  # not counted
            await wy.synthesize(server.host, server.port, TEXTS["short"], SECOND_VOICE)  # the other voice
            if not load_only:
                await _short_and_long(plan, rec, label, server)
            await _load(plan, rec, label, server)
            log = server.log()
            ready_at = log.find("Model ready")
            after = log[ready_at:] if ready_at >= 0 else log
            bad = [s for s in ("Traceback", "ERROR", "Warm-up failed") if s in log]
            rec.check(f"{label}-log-clean", not bad, found=bad, log=str(server.log_path))
            rec.value(f"{label}_eager_fallbacks_after_ready", after.count("not warmed"))
        except BaseException:
            print(f"server log tail ({server.log_path}):\n{server.log_tail(60)}", flush=True)
            raise


def stage_server(plan: Plan, rec: Record) -> None:
    """The server over Wyoming at its defaults: time to first audio, RTF, memory, 1/2/4/8 clients."""
    asyncio.run(_serve_and_measure(plan, rec, "defaults", []))


def stage_server_graphs(plan: Plan, rec: Record) -> None:
    """The same with --cuda-graphs (GPU only: on a CPU the server refuses it and runs eagerly)."""
    if not plan.cuda:
        rec.value("graphs", "skipped on the CPU")
        return
    asyncio.run(_serve_and_measure(plan, rec, "graphs", ["--cuda-graphs"]))


def stage_server_batch(plan: Plan, rec: Record) -> None:
    """The load run with --batch-requests 4 (and --cuda-graphs on a GPU): four clients' chunks per step."""
    extra = ["--batch-requests", "4"] + (["--cuda-graphs"] if plan.cuda else [])
    asyncio.run(_serve_and_measure(plan, rec, "batch4", extra, load_only=True))


# Timed runs of each side in the upstream stage; each side's best counts. Two were too few: on a busy CPU
# one descheduled thread made a whole 0.08 s run ten times slower, and the ratio swung from 0.09x to 1.2x.
UPSTREAM_REPEATS = 5


def stage_upstream(plan: Plan, rec: Record) -> None:
    """Throughput against upstream f5-tts on the same weights at equal steps and precision: upstream's
    F5TTS.infer in its own process (bench.upstream), then our engine in this one, on the same text."""
    from wyoming_ishowtts.engine import SynthesisOptions

    from ..bench.texts import REFERENCE_TEXT, TEXTS

    text_name = plan.long_text
    job = {
        "model_dir": str(plan.model_dir(plan.main_size)),
        "size": plan.main_size,
        "device": plan.device,
        "ref_wav": str(plan.voices_dir / "bench" / "reference.wav"),
        "ref_text": REFERENCE_TEXT,
        "seed": 0,
        "texts": {text_name: TEXTS[text_name]},
        "modes": ["infer"],
        "configs": [
            {"label": "equal", "nfe": plan.equal_nfe, "texts": [text_name], "repeats": UPSTREAM_REPEATS}
        ],
        "threads": None,
        "warmup": True,
    }
    job_path, result_path = plan.work / "upstream-job.json", plan.work / "upstream-result.json"
    write_json(job_path, job)
    result_path.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "ishowtts_dev.bench.upstream", str(job_path), str(result_path)],
        check=False,
    )
    if proc.returncode != 0:
        rec.check("upstream-ran", False, exit_code=proc.returncode)
        return
    upstream = json.loads(result_path.read_text())
    runs = upstream["results"][0]["runs"]
    up = {
        "dtype": upstream["dtype"],
        "nfe": plan.equal_nfe,
        "total_s": min(r["total_s"] for r in runs),
        "runs_s": [r["total_s"] for r in runs],
        "audio_s": runs[0]["audio_s"],
        "peak_gpu_mib": upstream["results"][0]["peak_gpu_mb"],
    }
    up["throughput_audio_s_per_s"] = up["audio_s"] / up["total_s"]
    rec.value("upstream_infer", up)

    free_cuda()
    from wyoming_ishowtts.engine import Engine, EngineSettings
    from wyoming_ishowtts.engine.reference import load_audio

    engine = Engine.load(
        EngineSettings(
            model_dir=plan.model_dir(plan.main_size),
            device=plan.device,
            precision=plan.equal_precision,
            warmup=False,
        )
    )
    voice = engine.prepare_voice(
        *load_audio(plan.voices_dir / "bench" / "reference.wav"), REFERENCE_TEXT
    )  # as the server does
    options = SynthesisOptions(nfe=plan.equal_nfe, seed=0)
    engine.warm_up(voice)
    engine.synthesize_all(voice, TEXTS[text_name], options)  # upstream's run is warmed on this text too
    times, audio = [], 0.0
    for _ in range(UPSTREAM_REPEATS):
        with timed() as spent:
            wave = engine.synthesize_all(voice, TEXTS[text_name], options)
        times.append(spent[0])
        audio = len(wave) / 24000
    ours = {
        "dtype": str(engine.dtype).replace("torch.", ""),
        "nfe": plan.equal_nfe,
        "total_s": min(times),
        "runs_s": times,
        "audio_s": audio,
        "throughput_audio_s_per_s": audio / min(times),
    }
    rec.value("ours_engine", ours)
    rec.value(
        "throughput_ratio",
        {
            "text": text_name,
            "nfe": plan.equal_nfe,
            "precision": plan.equal_precision,
            "ours_over_upstream": ours["throughput_audio_s_per_s"] / up["throughput_audio_s_per_s"],
        },
    )
    rec.check(
        "same-precision-as-upstream",
        ours["dtype"] == upstream["dtype"],
        ours=ours["dtype"],
        upstream=upstream["dtype"],
    )


STAGES = {
    "setup": stage_setup,
    "paths": stage_paths,
    "graph-speed": stage_graph_speed,
    "server": stage_server,
    "server-graphs": stage_server_graphs,
    "upstream": stage_upstream,
    "precision": stage_precision,
    "equivalence": stage_equivalence,
    "server-batch": stage_server_batch,
    "compile": stage_compile,
}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] not in STAGES:
        raise SystemExit(
            f"usage: python -m ishowtts_dev.gpu.stages {{{','.join(STAGES)}}} CONFIG.json RESULT.json"
        )
    name, config_path, result_path = args[0], Path(args[1]), Path(args[2])
    config = json.loads(config_path.read_text())
    plan = Plan(device=config["device"], quick=bool(config["quick"]), work=Path(config["work"]))
    rec = Record(result_path)
    if name in config.get("fail", []):
        raise SystemExit(f"stage {name}: failed on purpose (--fail)")
    STAGES[name](plan, rec)


if __name__ == "__main__":
    main()
