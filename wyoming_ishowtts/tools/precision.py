"""How much does half precision change the audio? Same model, voice, text, seed and steps; fp32 as reference.

    python -m wyoming_ishowtts.tools.precision --model-dir DIR [--device cpu] [--nfe 4] [--precisions bf16,fp16]

Prints, per precision, the signal-to-noise ratio of its waveform against fp32 (higher is closer; identical
output is infinite) and the wall time of each run, and writes them as JSON with --out. BENCHMARKS.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from ..engine import Engine, EngineSettings, SynthesisOptions

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back home."
REF_TEXT = "This reference clip says one short sentence about the weather today."


def reference_clip(seconds: float = 4.0, rate: int = 24000) -> np.ndarray:
    """A voiced-like clip (harmonics, syllable-rate envelope, a little noise): deterministic, no files needed."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    return (0.2 * voiced * envelope + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    n = min(len(reference), len(other))
    noise = float(np.sum((reference[:n].astype(np.float64) - other[:n]) ** 2))
    signal = float(np.sum(reference[:n].astype(np.float64) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


def run(model_dir: Path | None, device: str, precision: str, nfe: int, seed: int) -> tuple[np.ndarray, float]:
    engine = Engine.load(
        EngineSettings(model_dir=model_dir, device=device, precision=precision, warmup=False)
    )
    voice = engine.prepare_voice(reference_clip(), 24000, REF_TEXT, trim=False)
    options = SynthesisOptions(nfe=nfe, seed=seed)
    started = time.perf_counter()
    wave = engine.synthesize_all(voice, TEXT, options)
    return wave, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nfe", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--precisions", default="bf16,fp16")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    reference, seconds = run(args.model_dir, args.device, "fp32", args.nfe, args.seed)
    results: dict[str, dict[str, float | None]] = {"fp32": {"seconds": seconds, "snr_db": None}}
    print(f"fp32: {seconds:.2f} s for {len(reference) / 24000:.2f} s of audio")
    for precision in args.precisions.split(","):
        wave, seconds = run(args.model_dir, args.device, precision, args.nfe, args.seed)
        snr = snr_db(reference, wave)
        results[precision] = {"seconds": seconds, "snr_db": snr}
        print(f"{precision}: {seconds:.2f} s, SNR against fp32 {snr:.1f} dB")
    if args.out:
        args.out.write_text(
            json.dumps({"device": args.device, "nfe": args.nfe, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
