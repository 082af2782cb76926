"""Speed on a plain CPU: precisions, threads and reference length, each interleaved in one process.

    python -m ishowtts_dev.bench.cpu precision --model-dir bench-results/model-base [--precisions int8]
        [--frames 891] [--texts short,medium] [--nfe 7] [--repeats 3] [--out FILE]
    python -m ishowtts_dev.bench.cpu threads --model-dir DIR [--threads 1,2,default] [--frames 891]
    python -m ishowtts_dev.bench.cpu frames --model-dir DIR [--frames 400,600,891,1200] [--precisions int8]

``precision``: one classifier-free guided step at `--frames` frames (the engine's own step, text features
cached), then each whole text through ``Engine.synthesize`` (time to the first piece, real-time factor,
and the waveform's SNR against fp32 on the same seed, voice and steps), fp32 and each of `--precisions`
taking turns round after round. ``threads``: the fp32 step with each thread count in turn (``default`` is
what the engine sets without ``--threads``: one per physical core). ``frames``: the step at each length,
and the least-squares cost of one more frame, which is what each second of reference (93.75 frames) adds
to every step of every chunk. bf16 belongs in `--precisions` only on a CPU with native bf16 (elsewhere it
is emulated, 7.6x slower). Every figure is a median over rounds; the share of the machine's CPU that other
processes used meanwhile is printed beside it (on a shared machine, read the ratios, not the seconds).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions
from wyoming_ishowtts.engine.checkpoints import resolve_model_files
from wyoming_ishowtts.engine.hardware import cpu_class, cpu_flags, default_threads
from wyoming_ishowtts.engine.loading import load_dit, pick_dtype, set_threads
from wyoming_ishowtts.engine.options import DEFAULT_MODEL, HOP_LENGTH, SAMPLE_RATE
from wyoming_ishowtts.engine.quantize import needs_reduced_range, quantize_dit
from wyoming_ishowtts.engine.tokenizer import Vocab

from ..precision import snr_db
from .measure import OtherCpu, machine_info, median, utc_now, write_json
from .texts import REFERENCE_TEXT, TEXTS, reference_clip

FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH
"""Mel frames per second of audio (93.75): what a second of reference adds to every chunk's sequence."""


def interleave(runs: dict[str, Callable[[], float]], repeats: int) -> tuple[dict[str, list[float]], float]:
    """Each callable once per round, the order reversed every other round, after one warm-up each; returns
    the times per name and the share of the CPU other processes used meanwhile."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    others = OtherCpu(["self"])
    others.start()
    order = list(runs.items())
    for round_ in range(repeats):
        for name, fn in order if round_ % 2 == 0 else order[::-1]:
            times[name].append(fn())
        print(
            f"  round {round_ + 1}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()), flush=True
        )
    return times, others.stop() or 0.0


def ratio(slow: list[float], fast: list[float]) -> float:
    """The median of per-round ratios slow/fast (drift within a round hits both alike)."""
    return float(np.median(np.array(slow) / np.array(fast)))


# --------------------------------------------------------------------------- one guided step


def load_step_model(model_dir: Path, precision: str) -> Any:
    """The engine's DiT as `load_model` makes it for `precision` on the CPU (no vocoder)."""
    files = resolve_model_files(DEFAULT_MODEL, model_dir)
    vocab = Vocab.from_file(files.vocab)
    model = load_dit(files, vocab, torch.device("cpu"), pick_dtype(precision, torch.device("cpu")))
    if precision == "int8":
        quantize_dit(model, reduce_range=needs_reduced_range(cpu_flags()))
    return model


@dataclass
class Step:
    """One guided forward (conditional and null text in one batch of two) at n frames, fixed inputs."""

    model: Any
    n: int
    output: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        gen = torch.Generator().manual_seed(self.n)
        self.x = torch.randn(1, self.n, 100, generator=gen)
        self.cond = torch.randn(1, self.n, 100, generator=gen) * 0.5
        vocab = self.model.cfg.text_num_embeds
        text = torch.randint(0, vocab, (1, min(150, self.n - 1)), generator=gen)
        with torch.inference_mode():
            self.features = self.model.embed_text(text, torch.tensor([self.n]))

    def __call__(self) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            self.output = self.model(self.x, self.cond, self.features, torch.tensor([0.5]))
        return time.perf_counter() - started


def step_table(
    model_dir: Path, precisions: list[str], frames: list[int], repeats: int
) -> list[dict[str, Any]]:
    models = {p: load_step_model(model_dir, p) for p in ["fp32", *precisions]}
    rows = []
    for n in frames:
        steps = {p: Step(model, n) for p, model in models.items()}
        print(f"one guided step, {n} frames:", flush=True)
        times, others = interleave(dict(steps.items()), repeats)
        reference = steps["fp32"].output
        assert reference is not None
        row: dict[str, Any] = {"frames": n, "other_cpu": others}
        for p, step in steps.items():
            assert step.output is not None
            row[p] = {
                "seconds": median(times[p]),
                "runs": times[p],
                "speedup": ratio(times["fp32"], times[p]),
                "output_snr_db": snr_db(reference.flatten().numpy(), step.output.float().flatten().numpy()),
            }
            print(
                f"  {p}: {row[p]['seconds']:.3f} s per step, {row[p]['speedup']:.2f}x fp32's speed, "
                f"step output SNR {row[p]['output_snr_db']:.1f} dB",
                flush=True,
            )
        print(f"  other processes used {others:.0%} of the CPU meanwhile", flush=True)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- whole texts


@dataclass
class Speaker:
    """An engine in one precision, speaking a text as the server would: pieces as each chunk is vocoded."""

    engine: Engine
    voice: Any
    nfe: int
    seed: int
    wave: np.ndarray | None = None
    first: float = 0.0

    @classmethod
    def load(cls, model_dir: Path, precision: str, nfe: int, seed: int) -> Speaker:
        engine = Engine.load(
            EngineSettings(model_dir=model_dir, device="cpu", precision=precision, warmup=False)
        )
        voice = engine.prepare_voice(reference_clip(), SAMPLE_RATE, REFERENCE_TEXT)
        return cls(engine, voice, nfe, seed)

    def speak(self, text: str) -> float:
        """Seconds for the whole text; `first` becomes the time to its first piece."""
        started = time.perf_counter()
        pieces: list[np.ndarray] = []
        for piece in self.engine.synthesize(self.voice, text, SynthesisOptions(nfe=self.nfe, seed=self.seed)):
            if not pieces:
                self.first = time.perf_counter() - started
            pieces.append(piece)
        self.wave = np.concatenate(pieces)
        return time.perf_counter() - started


def text_table(
    model_dir: Path, precisions: list[str], texts: list[str], nfe: int, repeats: int, seed: int
) -> list[dict[str, Any]]:
    speakers = {p: Speaker.load(model_dir, p, nfe, seed) for p in ["fp32", *precisions]}
    rows = []
    for name in texts:
        text = TEXTS[name]
        firsts: dict[str, list[float]] = {p: [] for p in speakers}

        def timed(p: str, text: str = text, firsts: dict[str, list[float]] = firsts) -> Callable[[], float]:
            def run() -> float:
                spent = speakers[p].speak(text)
                firsts[p].append(speakers[p].first)
                return spent

            return run

        chunks = len(speakers["fp32"].engine.plan(speakers["fp32"].voice, text))
        print(f"{name} text ({chunks} chunks, {nfe} steps each):", flush=True)
        times, others = interleave({p: timed(p) for p in speakers}, repeats)
        reference = speakers["fp32"].wave
        assert reference is not None
        row: dict[str, Any] = {"text": name, "chunks": chunks, "other_cpu": others}
        for p, speaker in speakers.items():
            assert speaker.wave is not None
            first = firsts[p][1:]  # the warm-up's is not counted
            audio_s = len(speaker.wave) / SAMPLE_RATE
            row[p] = {
                "ttfa_s": median(first),
                "total_s": median(times[p]),
                "audio_s": audio_s,
                "rtf": median(times[p]) / audio_s,
                "ttfa_speedup": ratio(firsts["fp32"][1:], first),
                "total_speedup": ratio(times["fp32"], times[p]),
                "snr_db": snr_db(reference, speaker.wave),
                "same_length": len(speaker.wave) == len(reference),
            }
            print(
                f"  {p}: first audio {row[p]['ttfa_s']:.2f} s, whole {row[p]['total_s']:.2f} s for "
                f"{audio_s:.2f} s (RTF {row[p]['rtf']:.2f}), {row[p]['total_speedup']:.2f}x fp32's speed, "
                f"SNR {row[p]['snr_db']:.1f} dB",
                flush=True,
            )
        print(f"  other processes used {others:.0%} of the CPU meanwhile", flush=True)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- threads and frames


def thread_table(model_dir: Path, counts: list[str], frames: int, repeats: int) -> dict[str, Any]:
    """The fp32 step with each thread count in turn (``torch.set_num_threads`` between runs)."""
    model = load_step_model(model_dir, "fp32")
    step = Step(model, frames)
    resolved = {c: default_threads() if c == "default" else int(c) for c in counts}

    def with_threads(count: int) -> Callable[[], float]:
        def run() -> float:
            torch.set_num_threads(count)
            return step()

        return run

    print(f"one fp32 guided step, {frames} frames, by intra-op threads ({resolved}):", flush=True)
    times, others = interleave({c: with_threads(n) for c, n in resolved.items()}, repeats)
    first = counts[0]
    rows = {
        c: {
            "threads": resolved[c],
            "seconds": median(times[c]),
            "speedup_over_" + first: ratio(times[first], times[c]),
        }
        for c in counts
    }
    for c, row in rows.items():
        print(
            f"  {c} ({row['threads']} threads): {row['seconds']:.3f} s, {row['speedup_over_' + first]:.2f}x {first}'s"
        )
    print(f"  other processes used {others:.0%} of the CPU meanwhile", flush=True)
    return {
        "frames": frames,
        "rows": rows,
        "other_cpu": others,
        "interop_threads": torch.get_num_interop_threads(),
    }


def per_frame_cost(rows: list[dict[str, Any]], precision: str) -> float:
    """Least-squares slope of step seconds against frames: the cost of one more frame in every step."""
    frames = np.array([r["frames"] for r in rows], dtype=float)
    seconds = np.array([r[precision]["seconds"] for r in rows])
    return float(np.polyfit(frames, seconds, 1)[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("precision", "threads", "frames"))
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--precisions", default="int8", help="against fp32, comma-separated")
    parser.add_argument("--frames", default=None, help="sequence lengths (reference + generated)")
    parser.add_argument("--texts", default="short,medium")
    parser.add_argument("--nfe", type=int, default=7, help="steps per chunk of the whole texts (fixed)")
    parser.add_argument("--threads", default="1,2,default", help="for `threads`; `default`: the engine's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    set_threads(None)  # as the engine starts: one thread per physical core, one inter-op thread
    flags = cpu_flags()
    report: dict[str, Any] = {
        "date": utc_now(),
        "machine": machine_info(),
        "cpu_class": cpu_class(flags),
        "cpu_flags": sorted(f for f in flags if f.startswith(("avx", "fma", "f16c", "amx", "asimd", "sve"))),
    }
    print(f"{report['machine']['cpu']}, class {report['cpu_class']}, flags {' '.join(report['cpu_flags'])}")
    precisions = [p for p in args.precisions.split(",") if p and p != "fp32"]
    if args.what == "precision":
        frames = [int(f) for f in (args.frames or "891").split(",")]
        report["steps"] = step_table(args.model_dir, precisions, frames, args.repeats)
        texts = [t for t in args.texts.split(",") if t]
        report["texts"] = text_table(args.model_dir, precisions, texts, args.nfe, args.repeats, args.seed)
    elif args.what == "threads":
        report["threads"] = thread_table(
            args.model_dir, args.threads.split(","), int(args.frames or 891), args.repeats
        )
    else:
        frames = [int(f) for f in (args.frames or "400,600,891,1200").split(",")]
        rows = step_table(args.model_dir, precisions, frames, args.repeats)
        report["steps"] = rows
        for p in ["fp32", *precisions]:
            slope = per_frame_cost(rows, p)
            report[f"{p}_seconds_per_reference_second_per_step"] = slope * FRAMES_PER_SECOND
            print(
                f"{p}: one more second of reference ({FRAMES_PER_SECOND:.2f} frames) costs "
                f"{slope * FRAMES_PER_SECOND:.3f} s in every guided step"
            )
    report["load_average_after"] = list(os.getloadavg())
    if args.out:
        write_json(args.out, report)


if __name__ == "__main__":
    main()
