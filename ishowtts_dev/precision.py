"""How much does half precision change the audio? Same model, voice, text, seed and steps; fp32 as reference.

    python -m ishowtts_dev.precision --model-dir DIR [--device cpu] [--nfe 4] [--precisions bf16,fp16]
    python -m ishowtts_dev.precision --vocoder --model-dir DIR [--device cuda] [--precisions fp16]

Prints, per precision, the signal-to-noise ratio of its waveform against fp32 (higher is closer; identical
output is infinite) and the wall time of each run, and writes them as JSON with --out. BENCHMARKS.md quotes it.
With --vocoder only the vocoder is measured (the DiT stays out of it): the median time of --repeats decodes
of the same mel, and the SNR of the half-precision waveform, which is what decides whether the engine
should run the vocoder in half precision (it runs it in fp32).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions
from wyoming_ishowtts.engine.options import SAMPLE_RATE
from wyoming_ishowtts.engine.vocoder import Vocos

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back home."
REF_TEXT = "This reference clip says one short sentence about the weather today."


def reference_clip(seconds: float = 4.0, rate: int = SAMPLE_RATE) -> np.ndarray:
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
    voice = engine.prepare_voice(reference_clip(), SAMPLE_RATE, REF_TEXT, trim=False)
    options = SynthesisOptions(nfe=nfe, seed=seed)
    started = time.perf_counter()
    wave = engine.synthesize_all(voice, TEXT, options)
    return wave, time.perf_counter() - started


def vocoder_run(
    model_dir: Path | None, device: str, precisions: list[str], seconds: float, repeats: int
) -> dict[str, dict[str, float | None]]:
    """Decode the mel of a `seconds`-long clip with the vocoder in fp32 and in each of `precisions`."""
    import copy

    import torch

    from wyoming_ishowtts.engine.loading import pick_dtype

    engine = Engine.load(EngineSettings(model_dir=model_dir, device=device, precision="fp32", warmup=False))
    clip = np.tile(reference_clip(), math.ceil(seconds / 4.0))[: int(seconds * SAMPLE_RATE)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nfe", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--precisions", default="bf16,fp16")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--vocoder", action="store_true", help="measure the vocoder alone")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length for --vocoder")
    parser.add_argument("--repeats", type=int, default=5, help="timed decodes for --vocoder")
    args = parser.parse_args()

    if args.vocoder:
        precisions = args.precisions.split(",")
        found = vocoder_run(args.model_dir, args.device, precisions, args.seconds, args.repeats)
        if args.out:
            report = {"device": args.device, "vocoder": True, "seconds_of_audio": args.seconds}
            args.out.write_text(json.dumps({**report, "results": found}, indent=2))
        return

    reference, seconds = run(args.model_dir, args.device, "fp32", args.nfe, args.seed)
    results: dict[str, dict[str, float | None]] = {"fp32": {"seconds": seconds, "snr_db": None}}
    print(f"fp32: {seconds:.2f} s for {len(reference) / SAMPLE_RATE:.2f} s of audio")
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
