"""ishowtts_dev.first_chunk: the study behind the first-chunk rule (BENCHMARKS.md) must keep measuring what
it says: the engine's own plan and step policy on a simulated clock, and stalls counted as a listener hears them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ishowtts_dev.bench.texts import REFERENCE_TEXT, reference_clip
from ishowtts_dev.first_chunk import CPU_FIT, _stream, first_clause, simulate
from wyoming_ishowtts.engine import Engine, EngineSettings


def test_stalls_are_what_the_listener_waits() -> None:
    # 2 s of audio at t=1, then 1 s arriving at t=4 (1 s late), then 1 s at t=4.5 (on time: plays until 5).
    stream = _stream(["a", "b", "c"], [(1.0, 2.0), (4.0, 1.0), (4.5, 1.0)], [7, 7, 7])
    assert stream.ttfa == 1.0 and stream.stall_total == pytest.approx(1.0) and stream.stall_worst == 1.0
    assert stream.audio == 4.0


def test_first_clause_rule_ends_at_the_first_acceptable_clause() -> None:
    text = "Good morning! It's seven o'clock, the coffee machine is warming up, and the room is warm."
    assert first_clause([text], 300) == [
        "Good morning!",
        "It's seven o'clock, the coffee machine is warming up, and the room is warm.",
    ]
    # "Okay," is one word: no acceptable clause end before the sentence's end, so nothing is cut.
    short = "Okay, the kitchen lights are off and the front door is locked."
    assert first_clause([short], 300) == [short]


def test_simulation_runs_the_engines_plan_and_policy(tiny_model_dir: Path) -> None:
    engine = Engine.load(
        EngineSettings(model_dir=tiny_model_dir, device="cpu", precision="fp32", warmup=False)
    )
    voice = engine.prepare_voice(reference_clip(), 24000, REFERENCE_TEXT)
    text = "Good morning! It's seven o'clock, the coffee machine is warming up, and the room is warm."
    fast = simulate(engine, voice, text, "first", CPU_FIT.scaled_to(0.001))
    assert fast.chunks[0] == "Good morning!" and fast.stall_total == 0.0
    assert fast.steps[0] == 7 and fast.steps[1] == 16  # plenty of slack: the policy's most steps
    slow = simulate(engine, voice, text, "first", CPU_FIT.scaled_to(3.5))
    assert slow.steps == [7, 7] and slow.stall_worst > 1.0  # a slow device cannot keep ahead
    # Time to first audio is the first chunk's 7 steps over its frames (reference + new).
    assert slow.ttfa > fast.ttfa * 1000
