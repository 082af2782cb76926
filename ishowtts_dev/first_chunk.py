"""Where should the first text chunk end? Time to first audio and gaps in the stream, per rule and device speed.

    python -m ishowtts_dev.first_chunk --model-dir DIR [--speeds 3.5,0.35,0.1,0.03,0.01] [--measure]

The first chunk decides the time to first audio; what follows must be ready before the listener runs out
of audio. Two rules are compared on the same texts:

- `longest` (the engine's): the longest clause or sentence prefix within 60 bytes (`shorten_first_chunk`);
- `first`: the first complete sentence or clause of at least two words and 10 bytes (never mid-phrase,
  and, like `longest`, never leaving a scrap of under three words / 20 bytes behind it).

Each text is run through the engine's own `Synthesis` (its chunking, its adaptive step policy, its
cross-fade) on a simulated clock: a chunk of N frames (reference included) at s steps costs
s * c * N * (1 + N / K) seconds, where c is the device's speed and K where attention's quadratic share
equals the rest (fitted on this CPU: `--measure` fits both from real forward passes). The device is named
by its seconds per step at 1,000 frames (`--speeds`): ~3.5 s is this 2-core CPU in bf16, ~0.01 s a
datacenter GPU. Printed per rule and speed: time to first audio, and the stream's stalls (time the
listener waits after playback started: the sum, and the worst), summed over the texts.

Only the clock is simulated: the chunk plans, frame counts, step counts and audio lengths are the engine's.
"""

from __future__ import annotations

import argparse
import json
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions
from wyoming_ishowtts.engine import synthesis as synthesis_module
from wyoming_ishowtts.engine.chunking import (
    _CLAUSE_END,
    _acceptable_first,
    _acceptable_rest,
    chunk_text,
    shorten_first_chunk,
)
from wyoming_ishowtts.engine.options import HOP_LENGTH, SAMPLE_RATE

from .bench.texts import REFERENCE_TEXT, TEXTS, reference_clip

# Replies a voice assistant gives, beyond the benchmark's three: several with short opening clauses,
# where the two rules differ.
REPLIES: dict[str, str] = {
    "timer": "Sure. I've set a timer for ten minutes, and I'll let you know when it's done.",
    "morning": (
        "Good morning! It's seven o'clock, the coffee machine is warming up, and the living room is at "
        "twenty-one degrees."
    ),
    "garage": "The garage door is open. Do you want me to close it before you leave for work?",
    "music": "Playing your evening playlist in the living room, starting with a song you liked last week.",
    "lights": (
        "Done, all three lights in the bedroom are now dimmed to thirty percent, and the blinds are closing."
    ),
    "weather": (
        "Right now it's cloudy, eleven degrees. Later today, expect showers from about two, clearing by the "
        "evening, with a low of five overnight."
    ),
    "calendar": (
        "You have two things today. At ten, the dentist, and at four, a call with Sam about the holiday "
        "plans. Nothing else is scheduled."
    ),
}

FIRST_CHUNK_BYTES = 60  # the engine's default cap, SynthesisOptions.first_chunk_max_chars


def first_clause(chunks: list[str], max_chars: int) -> list[str]:
    """The `first` rule: end the first chunk at its first acceptable clause end."""
    if not chunks:
        return chunks
    text = chunks[0]
    for match in _CLAUSE_END.finditer(text):
        head, tail = text[: match.end()].strip(), text[match.end() :].strip()
        if _acceptable_first(head, len(text.encode())) and _acceptable_rest(tail):
            return [head, *chunk_text(tail, max_chars), *chunks[1:]]
    return list(chunks)


RULES: dict[str, Callable[[list[str], int], list[str]]] = {
    "longest": lambda chunks, max_chars: shorten_first_chunk(chunks, FIRST_CHUNK_BYTES, max_chars),
    "first": first_clause,
}


@dataclass(frozen=True)
class CostModel:
    """Seconds for one sampler step over N frames: c * N * (1 + N / K)."""

    per_frame: float
    attention_frames: float

    def step(self, frames: int) -> float:
        return self.per_frame * frames * (1 + frames / self.attention_frames)

    def scaled_to(self, seconds_at_1000: float) -> CostModel:
        return CostModel(seconds_at_1000 / (1000 * (1 + 1000 / self.attention_frames)), self.attention_frames)


CPU_FIT = CostModel(per_frame=6.207e-3, attention_frames=9130.0)
"""bench.step on the base model, fp32, 2 cores (BENCHMARKS.md): 6.07 s at 891 frames, 11.39 s at 1566."""


def measure_cost(engine: Engine, frames: tuple[int, ...] = (500, 1000, 2000), repeats: int = 2) -> CostModel:
    """Fit c and K from real guided forward passes of `engine`'s model (median of `repeats` each)."""
    import torch

    model = engine.model
    seconds = []
    for n in frames:
        x = torch.randn(1, n, 100)
        text = torch.randint(0, engine.vocab.size, (1, n // 4))
        with torch.inference_mode():
            features = model.embed_text(text, torch.tensor([n]))
            runs = []
            for _ in range(repeats + 1):
                started = time.perf_counter()
                model(x, x, features, torch.tensor([0.5]))
                runs.append(time.perf_counter() - started)
        seconds.append(float(np.median(runs[1:])))
        print(f"  measured: {n} frames, {seconds[-1]:.3f} s per step", flush=True)
    # seconds / N = c + (c / K) N: a straight line in N.
    slope, intercept = np.polyfit(np.array(frames, dtype=float), np.array(seconds) / np.array(frames), 1)
    return CostModel(float(intercept), float(intercept / slope) if slope > 0 else float("inf"))


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@dataclass
class Stream:
    chunks: list[str]
    ttfa: float
    stall_total: float
    stall_worst: float
    steps: list[int]
    audio: float


def simulate(engine: Engine, voice: Any, text: str, rule: str, cost: CostModel) -> Stream:
    """Speak `text` through the engine's Synthesis on a simulated clock; audio is silence of the right length."""
    clock = SimulatedClock()
    real_time = synthesis_module.time
    synthesis_module.time = types.SimpleNamespace(monotonic=clock.monotonic)  # type: ignore[assignment]
    try:
        synthesis = engine.begin(voice, text, SynthesisOptions(seed=0, first_chunk_max_chars=None))
        max_chars = int(synthesis.options.max_chars or 0) or _budget(voice)
        synthesis.chunks = RULES[rule](synthesis.chunks, max_chars)
        arrivals: list[tuple[float, float]] = []
        steps: list[int] = []
        while (job := synthesis.next_job()) is not None:
            spent = job.nfe * sum(cost.step(total) for total in job.totals)
            clock.now += spent
            waves = [
                np.zeros((total - voice.ref_frames - 1) * HOP_LENGTH, np.float32) for total in job.totals
            ]
            steps.append(job.nfe)
            for piece in synthesis.deliver(job, waves, spent):
                arrivals.append((clock.now, len(piece) / SAMPLE_RATE))
    finally:
        synthesis_module.time = real_time
    return _stream(synthesis.chunks, arrivals, steps)


def _budget(voice: Any) -> int:
    from wyoming_ishowtts.engine.chunking import max_chars_for

    return max(1, max_chars_for(voice.ref_text, voice.source_seconds, 1.0))


def _stream(chunks: list[str], arrivals: list[tuple[float, float]], steps: list[int]) -> Stream:
    """Playback starts with the first piece; each later piece is needed when the audio before it runs out."""
    ttfa = arrivals[0][0]
    playing_until = ttfa
    stalls = []
    for arrived, seconds in arrivals:
        stall = max(0.0, arrived - playing_until)
        stalls.append(stall)
        playing_until = max(playing_until, arrived) + seconds
    return Stream(chunks, ttfa, sum(stalls), max(stalls), steps, sum(s for _, s in arrivals))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument(
        "--speeds", default="3.5,1.0,0.35,0.1,0.03,0.01", help="seconds per sampler step at 1,000 frames"
    )
    parser.add_argument("--measure", action="store_true", help="fit the cost curve on this machine first")
    parser.add_argument("--precision", default="auto", help="for --measure")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--verbose", action="store_true", help="print each text's chunks and stream")
    args = parser.parse_args(argv)

    engine = Engine.load(
        EngineSettings(model_dir=args.model_dir, device="cpu", precision=args.precision, warmup=False)
    )
    voice = engine.prepare_voice(reference_clip(), SAMPLE_RATE, REFERENCE_TEXT)
    cost = measure_cost(engine) if args.measure else CPU_FIT
    print(f"cost per step: {cost.per_frame * 1000:.3f} ms x N x (1 + N / {cost.attention_frames:.0f})")
    texts = {**TEXTS, **REPLIES}
    results: list[dict[str, Any]] = []
    print(
        f"{'s/step@1000':>11} {'rule':>8} {'TTFA sum s':>10} {'TTFA max s':>10} {'stall sum s':>11} "
        f"{'stall worst s':>13} {'texts stalled':>13} {'steps':>6}"
    )
    for speed in (float(s) for s in args.speeds.split(",")):
        device = cost.scaled_to(speed)
        for rule in RULES:
            streams = {name: simulate(engine, voice, text, rule, device) for name, text in texts.items()}
            for name, stream in streams.items():
                results.append({"speed": speed, "rule": rule, "text": name, **stream.__dict__})
                if args.verbose:
                    print(
                        f"    {name}: {stream.chunks} ttfa {stream.ttfa:.3f} stall {stream.stall_total:.3f}"
                    )
            print(
                f"{speed:>11} {rule:>8} {sum(s.ttfa for s in streams.values()):>10.3f} "
                f"{max(s.ttfa for s in streams.values()):>10.3f} "
                f"{sum(s.stall_total for s in streams.values()):>11.3f} "
                f"{max(s.stall_worst for s in streams.values()):>13.3f} "
                f"{sum(s.stall_total > 1e-9 for s in streams.values()):>13d} "
                f"{sum(sum(s.steps) for s in streams.values()):>6d}",
                flush=True,
            )
    if args.out:
        args.out.write_text(json.dumps({"cost": cost.__dict__, "results": results}, indent=2))


if __name__ == "__main__":
    main()
