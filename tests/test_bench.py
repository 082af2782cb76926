"""Smoke test of the benchmark (script/bench --quick): every stage runs and every output is well formed.

It runs the real thing end to end (tiny random model, upstream f5-tts in its own process, our server over
Wyoming, a 1- and 2-client load run) and checks the structure and sanity of the outputs. It asserts
nothing about speed: timings on a shared CI machine mean nothing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ishowtts_dev.bench.__main__ import _extrapolate, ratios
from ishowtts_dev.bench.client import Timeline
from ishowtts_dev.bench.measure import median, percentile

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {
    "comparison",
    "system",
    "text",
    "settings",
    "status",
    "ttfa_s",
    "total_s",
    "audio_s",
    "rtf",
    "runs",
}


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "ishowtts_dev.bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), out, proc.stdout


def test_quick_run_writes_every_output(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    result, out, stdout = quick_run
    for name in ("results.json", "events.json", "table.txt", "chart.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "comparison" in stdout and "Load run" in stdout
    meta = result["meta"]
    assert meta["date"] and meta["command"].startswith("script/bench")
    assert meta["machine"]["cpu_count"] >= 1 and meta["machine"]["f5_tts"]


def test_quick_run_rows_are_complete_and_positive(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    result, _, _ = quick_run
    rows = result["rows"]
    systems = {(r["comparison"], r["system"]) for r in rows}
    for comparison in ("equal", "defaults"):
        for system in ("ours", "upstream-infer", "upstream-stream"):
            assert (comparison, system) in systems, (comparison, system)
    for row in rows:
        assert set(row) >= ROW_KEYS, set(ROW_KEYS) - set(row)
        assert row["status"] == "measured"  # --quick measures upstream's defaults too
        for key in ("ttfa_s", "total_s", "audio_s", "rtf"):
            assert _positive(row[key]), (row["system"], key, row[key])
        assert row["ttfa_s"] <= row["total_s"] + 1e-9
        assert _positive(row["peak_rss_mb"])
        assert row["peak_gpu_mb"] is None or _positive(row["peak_gpu_mb"])
        assert row["runs"] and all(_positive(run["total_s"]) for run in row["runs"])
    assert len(result["ratios"]) == 2
    for entry in result["ratios"]:
        for key in (
            "ttfa_vs_upstream_stream",
            "ttfa_vs_upstream_best",
            "total_vs_upstream_infer",
            "total_vs_upstream_best",
        ):
            assert _positive(entry[key]), key


def test_quick_run_load_levels(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    result, out, _ = quick_run
    load: dict[str, Any] = result["load"]
    batched: list[dict[str, Any]] = result["load_batched"]
    assert load["batch_requests"] == 1
    # --quick repeats the load run on a server started with --batch-requests 2.
    assert [b["batch_requests"] for b in batched] == [2] and "--batch-requests 2" in batched[0]["command"]
    for run in (load, *batched):
        assert _positive(run["describe_idle_ms"])
        assert [lv["clients"] for lv in run["levels"]] == [1, 2]
        for level in run["levels"]:
            assert len(level["ttfa_s"]) == len(level["total_s"]) == level["clients"]
            assert all(_positive(t) for t in level["ttfa_s"] + level["total_s"] + level["audio_s"])
            assert _positive(level["throughput_audio_s_per_s"]) and _positive(level["wall_s"])
            assert level["describe_ms"]["n"] >= 1 and _positive(level["describe_ms"]["max"])
    assert "with `--batch-requests 2`" in (out / "table.txt").read_text()
    servers = result["servers"]
    assert set(servers) == {"equal", "defaults"}
    assert all(s["exit_code"] == 0 for s in servers.values()), servers


def test_extrapolation_adds_only_scaled_dit_time() -> None:
    run = {
        "ttfa_s": 3.0,
        "total_s": 5.0,
        "audio_s": 4.0,
        "rtf": 1.25,
        "dit_busy_s": 4.0,
        "dit_busy_at_first_s": 2.0,
    }
    (moved,) = _extrapolate([run], nfe=4)
    assert moved["total_s"] == pytest.approx(5.0 + 7 * 4.0)
    assert moved["ttfa_s"] == pytest.approx(3.0 + 7 * 2.0)
    assert moved["rtf"] == pytest.approx(moved["total_s"] / 4.0)


def test_ratios_and_targets() -> None:
    def row(system: str, ttfa: float, total: float, status: str = "measured") -> dict[str, Any]:
        return {
            "comparison": "equal",
            "system": system,
            "text": "medium",
            "ttfa_s": ttfa,
            "total_s": total,
            "rtf": total / 10,
            "status": status,
        }

    (entry,) = ratios(
        [row("ours", 1.0, 8.0), row("upstream-stream", 4.0, 10.0), row("upstream-infer", 9.0, 9.0)]
    )
    assert entry["ttfa_vs_upstream_stream"] == pytest.approx(0.25)
    assert entry["total_vs_upstream_best"] == pytest.approx(8 / 9)
    assert entry["ttfa_target_met"] and entry["total_target_met"]
    assert entry["upstream_status"] == "measured"


def test_statistics_and_timeline() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0 and percentile([5.0], 50) == 5.0
    timeline = Timeline(times=[0.50, 0.51, 0.52, 1.40, 1.41], audio=[0.04, 0.04, 0.02, 0.04, 0.04])
    pieces = timeline.pieces()
    assert [round(t, 2) for t, _ in pieces] == [0.5, 1.4]
    assert [round(a, 2) for _, a in pieces] == [0.1, 0.08]


def test_server_args_reach_every_configuration() -> None:
    from ishowtts_dev.bench.__main__ import build_parser, resolve, server_args

    args = build_parser().parse_args(["--server-args", "--compile --length-bucket 256", "--device", "cpu"])
    cfg = resolve(args)
    for config in ("equal", "defaults"):
        assert server_args(cfg, config, Path("voices"))[-3:] == ["--compile", "--length-bucket", "256"]
    assert server_args(cfg, "equal", Path("voices"), batch_requests=4)[-5:-3] == ["--batch-requests", "4"]


def test_step_ab_runs_both_models_interleaved(tiny_model_dir: Path, tmp_path: Path) -> None:
    """bench.step times ours and upstream's step on the same weights; only structure is asserted."""
    from ishowtts_dev.bench.step import main as step_main

    out = tmp_path / "step.json"
    step_main(["--model-dir", str(tiny_model_dir), "--frames", "64,128", "--repeats", "2", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [r["frames"] for r in rows] == [64, 128]
    for row in rows:
        assert len(row["runs"]["ours"]) == len(row["runs"]["upstream"]) == 2
        assert _positive(row["ours_s"]) and _positive(row["upstream_s"]) and _positive(row["ratio"])


def test_ttfa_ab_runs_both_systems_interleaved(tiny_model_dir: Path, tmp_path: Path) -> None:
    """bench.ttfa times our first piece and upstream's streaming first piece in turns; only structure is
    asserted."""
    from ishowtts_dev.bench.ttfa import main as ttfa_main

    out = tmp_path / "ttfa.json"
    ttfa_main(["--model-dir", str(tiny_model_dir), "--size", "tiny", "--repeats", "2", "--out", str(out)])
    report = json.loads(out.read_text())
    assert len(report["runs"]["ours"]) == len(report["runs"]["upstream"]) == 2
    assert all(_positive(t) for t in report["runs"]["ours"] + report["runs"]["upstream"])
    assert _positive(report["ratio"]) and report["text"] == "medium" and report["nfe"] == 4


def test_the_benchmark_parent_asks_cuda_nothing_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU question goes to a child process: a CUDA context in the parent would hold half a gigabyte
    of the GPU beside the servers it measures (issue 12). Here the parent's torch.cuda refuses every call."""
    import torch

    from ishowtts_dev.bench import __main__ as bench

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the benchmark's parent process asked torch.cuda")

    for name in ("is_available", "device_count", "get_device_capability", "init", "current_device"):
        monkeypatch.setattr(torch.cuda, name, refuse)
    cfg = bench.resolve(bench.build_parser().parse_args(["--device", "auto", "--quick"]))
    assert cfg["device"] == "cpu"  # the child saw no GPU here
    assert bench.cuda_capability("cuda") is None


def test_on_a_gpu_every_text_is_measured_not_extrapolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream's DiT-busy clock sees only kernel launches on a GPU (it would have to synchronize), so no
    figure there is extrapolated from it: every text is measured, and asking otherwise is refused."""
    from ishowtts_dev.bench import __main__ as bench

    monkeypatch.setattr(bench, "cuda_capability", lambda device: (9, 0))
    cfg = bench.resolve(bench.build_parser().parse_args(["--device", "cuda"]))
    assert cfg["defaults_texts"] == cfg["texts"] and cfg["equal_precision"] == "fp16"
    with pytest.raises(SystemExit, match="on a GPU every text is measured"):
        bench.resolve(bench.build_parser().parse_args(["--device", "cuda", "--defaults-texts", "short"]))


def test_profile_prints_where_a_step_goes(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bench.profile (quoted in BENCHMARKS.md) profiles one real guided step, counts its operations, and its shares add up."""
    import re

    from ishowtts_dev.bench import profile

    profile.main(["--model-dir", str(tiny_model_dir), "--frames", "64", "--rows", "5"])
    out = capsys.readouterr().out
    assert "one guided sampler step, 64 frames" in out and "torch.float32" in out
    assert re.search(r"^operations per guided step: \d+$", out, re.M), out
    assert "aten::addmm" in out  # the profiler saw the model's matrix multiplies
    last = out.splitlines()[-1]
    shares = [int(s) for s in re.findall(r"(\d+) %", last)]
    assert "matrix multiplies" in last and len(shares) >= 4, last
    assert all(share >= 0 for share in shares) and abs(sum(shares) - 100) <= len(shares), last
