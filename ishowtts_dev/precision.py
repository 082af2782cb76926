"""How much does half precision change the audio? Same model, voice, text, seed and steps; fp32 as reference.

    python -m ishowtts_dev.precision --model-dir DIR [--device cpu] [--nfe 4] [--precisions bf16,fp16]
        [--repeats 3] [--baseline CHECKOUT]
    python -m ishowtts_dev.precision --vocoder --model-dir DIR [--device cuda] [--precisions fp16]

Prints, per precision, the signal-to-noise ratio of its waveform against fp32 (higher is closer; identical
output is infinite) and its synthesis time, and writes them as JSON with --out. BENCHMARKS.md quotes it.
Every engine is loaded first and warmed up with one synthesis; then the timed syntheses run in rounds,
one per engine per round in alternating order, so the machine's drift hits them all alike; a time is the
median over the rounds. --baseline names another source checkout of this project (for example a git
worktree of an older commit): its engine runs each precision too, interleaved in the same process, and
each of ours is reported as the median of its per-round time ratios against the baseline's.
With --vocoder only the vocoder is measured (the DiT stays out of it): the median time of --repeats decodes
of the same mel, and the SNR of the half-precision waveform, which is what decides whether the engine
should run the vocoder in half precision (it runs it in fp32).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wyoming_ishowtts.engine import Engine, EngineSettings
from wyoming_ishowtts.engine.options import SAMPLE_RATE
from wyoming_ishowtts.engine.vocoder import Vocos

from .clips import reference_clip

CLIP_SECONDS = 4.0

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back home."
REF_TEXT = "This reference clip says one short sentence about the weather today."


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    n = min(len(reference), len(other))
    noise = float(np.sum((reference[:n].astype(np.float64) - other[:n]) ** 2))
    signal = float(np.sum(reference[:n].astype(np.float64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def import_checkout(root: Path, alias: str = "baseline_wyoming_ishowtts") -> Any:
    """The `engine` module of another checkout's `wyoming_ishowtts`, imported under `alias` beside ours."""
    package = root / "wyoming_ishowtts"
    spec = importlib.util.spec_from_file_location(
        alias, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"--baseline {root}: no wyoming_ishowtts package there")
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{alias}.engine")


@dataclass
class Runner:
    """One engine, warmed up, ready to speak the same text with the same seed."""

    label: str
    precision: str
    engine: Any
    voice: Any
    options: Any
    times: list[float] = field(default_factory=list)
    wave: np.ndarray | None = None

    @classmethod
    def load(
        cls,
        label: str,
        engine_module: Any,
        model_dir: Path | None,
        device: str,
        precision: str,
        nfe: int,
        seed: int,
    ) -> Runner:
        settings = engine_module.EngineSettings(
            model_dir=model_dir, device=device, precision=precision, warmup=False
        )
        engine = engine_module.Engine.load(settings)
        voice = engine.prepare_voice(reference_clip(CLIP_SECONDS), SAMPLE_RATE, REF_TEXT, trim=False)
        runner = cls(label, precision, engine, voice, engine_module.SynthesisOptions(nfe=nfe, seed=seed))
        runner.speak()  # warm-up, not counted
        runner.times.clear()
        return runner

    def speak(self) -> None:
        started = time.perf_counter()
        self.wave = self.engine.synthesize_all(self.voice, TEXT, self.options)
        if self.engine.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - started)

    @property
    def dtype(self) -> str:
        """The precision the engine runs now, in --precision's names."""
        names = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
        name = str(self.engine.dtype).replace("torch.", "")
        return names.get(name, name)


def interleaved(runners: list[Runner], repeats: int) -> None:
    for round_ in range(repeats):
        for runner in runners if round_ % 2 == 0 else runners[::-1]:
            runner.speak()
        print(
            f"round {round_ + 1}: " + ", ".join(f"{r.label} {r.times[-1]:.2f} s" for r in runners), flush=True
        )


def vocoder_run(
    model_dir: Path | None, device: str, precisions: list[str], seconds: float, repeats: int
) -> dict[str, dict[str, float | None]]:
    """Decode the mel of a `seconds`-long clip with the vocoder in fp32 and in each of `precisions`."""
    import copy

    import torch

    from wyoming_ishowtts.engine.loading import pick_dtype

    engine = Engine.load(EngineSettings(model_dir=model_dir, device=device, precision="fp32", warmup=False))
    tiles = math.ceil(seconds / CLIP_SECONDS)
    clip = np.tile(reference_clip(CLIP_SECONDS), tiles)[: int(seconds * SAMPLE_RATE)]
    with torch.inference_mode():
        mel = engine.mel(torch.from_numpy(clip)[None].to(engine.device))  # (1, 100, frames)

    def timed(vocoder: Vocos) -> tuple[np.ndarray, float]:
        times = []
        for _ in range(repeats + 1):  # the first run warms up and is not counted
            if engine.device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            wave = vocoder.decode(mel)
            if engine.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
        return wave[0].cpu().numpy(), float(np.median(times[1:]))

    reference, base = timed(engine.vocoder)
    print(f"vocoder fp32: {base * 1000:.1f} ms for {seconds:.1f} s of audio")
    results: dict[str, dict[str, float | None]] = {"fp32": {"seconds": base, "snr_db": None}}
    for precision in precisions:
        half = copy.deepcopy(engine.vocoder).to(pick_dtype(precision, engine.device))
        wave, spent = timed(half)
        snr = snr_db(reference, wave)
        results[precision] = {"seconds": spent, "snr_db": snr}
        print(f"vocoder {precision}: {spent * 1000:.1f} ms ({spent / base:.2f}x fp32), SNR {snr:.1f} dB")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nfe", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--precisions", default="bf16,fp16")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--vocoder", action="store_true", help="measure the vocoder alone")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length for --vocoder")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 1; 5 for --vocoder)")
    parser.add_argument("--baseline", type=Path, help="another checkout of this project, run interleaved")
    args = parser.parse_args(argv)

    engine_module = importlib.import_module("wyoming_ishowtts.engine")
    if args.vocoder:
        precisions = args.precisions.split(",")
        found = vocoder_run(args.model_dir, args.device, precisions, args.seconds, args.repeats or 5)
        if args.out:
            report = {"device": args.device, "vocoder": True, "seconds_of_audio": args.seconds}
            args.out.write_text(json.dumps({**report, "results": found}, indent=2))
        return

    precisions = args.precisions.split(",")
    runners = [Runner.load("fp32", engine_module, args.model_dir, args.device, "fp32", args.nfe, args.seed)]
    runners += [
        Runner.load(p, engine_module, args.model_dir, args.device, p, args.nfe, args.seed) for p in precisions
    ]
    if args.baseline:
        baseline = import_checkout(args.baseline)
        runners += [
            Runner.load(f"baseline {p}", baseline, args.model_dir, args.device, p, args.nfe, args.seed)
            for p in ["fp32", *precisions]
        ]
    args.repeats = args.repeats or 1
    interleaved(runners, args.repeats)
    reference = runners[0].wave
    assert reference is not None
    print(f"{len(reference) / SAMPLE_RATE:.2f} s of audio, {args.nfe} steps, {args.repeats} rounds")
    results: dict[str, dict[str, Any]] = {}
    by_label = {r.label: r for r in runners}
    for runner in runners:
        assert runner.wave is not None
        snr = snr_db(reference, runner.wave)
        row: dict[str, Any] = {
            "precision": runner.precision,
            "ran_as": runner.dtype,  # differs from `precision` when the engine fell back to fp32
            "seconds": float(np.median(runner.times)),
            "runs": runner.times,
            "snr_db": None if runner is runners[0] else snr,
        }
        base = by_label.get(f"baseline {runner.precision}")
        if base is not None and base is not runner:
            row["ratio_to_baseline"] = float(np.median(np.array(runner.times) / np.array(base.times)))
        results[runner.label] = row
        note = "" if runner.dtype == runner.precision else f" (ran as {runner.dtype}!)"
        ratio = f", {row['ratio_to_baseline']:.3f}x the baseline's" if "ratio_to_baseline" in row else ""
        print(f"{runner.label}: {row['seconds']:.2f} s{ratio}, SNR against fp32 {snr:.1f} dB{note}")
    if args.out:
        report = {"device": args.device, "nfe": args.nfe, "repeats": args.repeats, "results": results}
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
