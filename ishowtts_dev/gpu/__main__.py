"""script/gpu-check: the whole GPU proof in one command, for a lent H100/H200 (one device call).

    script/gpu-check --out "$OUT"            # on the device: everything, in under 8 minutes
    script/gpu-check --device cpu --quick    # here and in CI: the same code, tiny model, on the CPU
    script/gpu-check --only server,upstream  # a rerun of some stages

It installs the wheels ``script/gpu-wheels`` fetched (``.gpu-wheels/``, offline, next to the device's own
torch), then runs each stage of ``stages`` in a process of its own under its own time limit, within one
overall budget, so a hang costs one stage and not the device's fifteen minutes. It prints a table and writes
``table.txt``, ``results.json``, ``chart.png`` and ``stages.log`` to the output folder (four files: the device
tool brings back at most eight).

Checks (correctness, must pass on any GPU) decide the exit status; targets (issue 12's GPU goals) are
reported as met or missed with the measured figure, and are not judged on a CPU.

This module imports only the standard library (and matplotlib for the chart) so that it runs before the
wheels are installed and never holds a CUDA context of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import CHECKOUT
from . import wheels as gpu_wheels

ROOT = CHECKOUT


@dataclass(frozen=True)
class Stage:
    name: str
    gpu_limit_s: int
    cpu_limit_s: int
    what: str
    optional: bool = False
    """Run only if the budget leaves time for it; skipping it is no problem."""


STAGES = (
    Stage("setup", 90, 180, "environment, torch build vs GPU, SDPA kernels, random models"),
    Stage("equivalence", 90, 180, "our fp32 on the device equals our fp32 on the CPU (TF32 off)"),
    Stage("precision", 60, 180, "fp16 and bf16 SNR against fp32, warm times, no silent fallback"),
    Stage("paths", 120, 180, "CUDA graphs and compiled steps equal eager, nothing new after warm-up"),
    Stage("graph-speed", 60, 180, "ms per sampler step, eager against CUDA graphs"),
    Stage("server", 120, 400, "the server over Wyoming at defaults: TTFA, RTF, memory, 1/2/4/8 clients"),
    Stage("server-graphs", 120, 60, "the same with --cuda-graphs"),
    Stage("upstream", 100, 400, "throughput against upstream f5-tts at equal steps and precision"),
    Stage("server-batch", 90, 300, "the load run with --batch-requests 4 (and --cuda-graphs)", optional=True),
    Stage("compile-speed", 150, 60, "ms per step of the compiled paths, base model", optional=True),
)
OPTIONAL_SKIP = "skipped: budget spent (optional)"
GPU_BUDGET_S = 450
"""The whole run on a GPU, wheels included: under 8 minutes, so a device call of 9 leaves time to spare."""
CPU_BUDGET_S = 1500


@dataclass(frozen=True)
class Target:
    key: str
    goal: str
    unit: str


TARGETS = (
    Target("short_ttfa_s", "<= 0.080", "s"),
    Target("long_rtf", "<= 0.01", ""),
    Target("throughput_vs_upstream", ">= 3", "x"),
    Target("clients_ahead_of_playback", "all", ""),
    Target("fp16_long_peak_reserved_mib", "< 2048", "MiB"),
    Target("cuda_fp32_vs_cpu_relative", "<= 1e-4", ""),
    Target("fp16_snr_db", "reported", "dB"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="script/gpu-check",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny model, few requests (the CPU smoke run)")
    parser.add_argument(
        "--out", type=Path, default=Path("gpu-check-results"), help="table, JSON, chart, logs"
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / ".gpu-check-work",
        help="models, caches, server logs (default: .gpu-check-work in the checkout, git-ignored; a device "
        "call keeps it for a rerun)",
    )
    parser.add_argument("--wheels", type=Path, default=ROOT / ".gpu-wheels", help="from script/gpu-wheels")
    parser.add_argument(
        "--only", default="", help=f"comma-separated stages ({', '.join(s.name for s in STAGES)})"
    )
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole run")
    return parser


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cuda_visible(python: str, env: dict[str, str]) -> bool:
    """Asked in a child process, so this one never initializes CUDA (a context holds ~0.5 GB)."""
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([python, "-c", probe], env=env, check=False, timeout=120).returncode == 0


def stage_command(stage: str, config: Path, result: Path) -> list[str]:
    return [sys.executable, "-m", "ishowtts_dev.gpu.stages", stage, str(config), str(result)]


def run_stage(command: list[str], log: Path, limit: float, env: dict[str, str]) -> tuple[str, float]:
    """Run one stage in a process group of its own; at its limit the whole group (a server it started too)
    is killed, and so is anything of it left running when it ends. Returns (status, seconds): "ok",
    "failed (exit N)" or "timed out at N s"."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return f"timed out at {limit:.0f} s", time.monotonic() - started
        finally:  # anything the stage left running (a server) goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return ("ok" if code == 0 else f"failed (exit {code})"), time.monotonic() - started


# ---------------------------------------------------------------------------------------------- judging
def figures(stages: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets name, picked out of the stages' values (None where not measured)."""

    def values(stage: str) -> dict[str, Any]:
        return dict(stages.get(stage, {}).get("values", {}))

    server, precision, upstream, equivalence = (
        values("server"),
        values("precision"),
        values("upstream"),
        values("equivalence"),
    )
    load = server.get("defaults_load") or []
    top = max(load, key=lambda level: level["clients"]) if load else None
    rels = [v["relative_l2"] for k, v in equivalence.items() if k.startswith("fp32_vs_cpu_")]
    long = server.get("defaults_long") or {}
    return {
        "short_ttfa_s": (server.get("defaults_short") or {}).get("ttfa_s"),
        "long_rtf": long.get("rtf"),
        "throughput_vs_upstream": (upstream.get("throughput_ratio") or {}).get("ours_over_upstream"),
        "clients_ahead_of_playback": None
        if top is None
        else {"clients": top["clients"], "all_ahead": top["all_ahead"], "worst_gap_s": top["worst_gap_s"]},
        "fp16_long_peak_reserved_mib": long.get("peak_reserved_mib")
        if server.get("defaults_dtype") == "float16"
        else None,
        "cuda_fp32_vs_cpu_relative": max(rels) if rels else None,
        "fp16_snr_db": (precision.get("precision_fp16") or {}).get("snr_db_vs_fp32"),
    }


def judge(figure: dict[str, Any], cuda: bool) -> list[dict[str, Any]]:
    """Each target with its measured figure and verdict: met, missed (by how much), not measured; on a CPU
    run the figures are shown but not judged (the targets are for an H100/H200)."""
    rows = []
    for target in TARGETS:
        value = figure.get(target.key)
        shown, verdict = _show(target, value), "not measured"
        if value is not None and target.goal == "reported":
            verdict = "reported"
        elif value is not None and not cuda:
            verdict = "not judged (cpu run)"
        elif value is not None:
            verdict = _verdict(target, value)
        rows.append(
            {"target": target.key, "goal": target.goal, "measured": shown, "verdict": verdict, "value": value}
        )
    return rows


def _show(target: Target, value: Any) -> str:
    if value is None:
        return "-"
    if target.key == "clients_ahead_of_playback":
        gaps = [g for g in value["worst_gap_s"] if g is not None]
        worst = f", worst gap {max(gaps):+.3f} s" if gaps else ""
        return f"{value['clients']} clients, {'all ahead' if value['all_ahead'] else 'some late'}{worst}"
    if target.key == "cuda_fp32_vs_cpu_relative":
        return f"{value:.2e}"
    if target.key == "short_ttfa_s":
        return f"{value * 1000:.0f} ms"
    return f"{value:.3g} {target.unit}".strip()


def _verdict(target: Target, value: Any) -> str:
    if target.key == "clients_ahead_of_playback":
        if not value["all_ahead"]:
            return "missed"
        return "met" if value["clients"] >= 8 else f"met at {value['clients']} clients (8 not measured)"
    op, bound = target.goal.split()
    limit = float(bound)
    met = {"<=": value <= limit, "<": value < limit, ">=": value >= limit}[op]
    if met:
        return "met"
    if target.key == "short_ttfa_s":
        return f"missed by {(value - limit) * 1000:.0f} ms"
    if op == ">=":
        return f"missed ({value / limit:.2f} of the goal)"
    return f"missed ({value / limit:.1f}x the goal)"


# ---------------------------------------------------------------------------------------------- output
def format_table(result: dict[str, Any]) -> str:
    meta = result["meta"]
    env = result["stages"].get("setup", {}).get("values", {}).get("env", {})
    lines = [
        f"wyoming-ishowtts gpu-check, {meta['date']}, {meta['elapsed_s']:.0f} s",
        f"command: {meta['command']}",
        f"device: {meta['device']} {env.get('gpu', '')} (capability {env.get('capability', '-')}); "
        f"torch {env.get('torch', '-')}, CUDA {env.get('cuda', '-')}, Python {env.get('python', '-')}; "
        f"placeholders: {', '.join(meta['placeholders']) or 'none'}",
        "",
        f"{'stage':<12} {'status':<22} {'seconds':>7}  what",
    ]
    for stage in STAGES:
        info = result["stages"].get(stage.name)
        if info is not None:
            lines.append(f"{stage.name:<12} {info['status']:<22} {info['seconds']:>7.1f}  {stage.what}")
    lines += ["", "checks (must pass):"]
    for name, info in result["stages"].items():
        for check in info.get("checks", []):
            detail = {k: v for k, v in check.items() if k not in ("name", "ok")}
            lines.append(f"  {'PASS' if check['ok'] else 'FAIL'} {name}/{check['name']} {_short(detail)}")
    lines += ["", "targets (issue 12, one H100/H200, server defaults unless said):"]
    lines.append(f"  {'target':<30} {'goal':<9} {'measured':<46} verdict")
    for row in result["targets"]:
        lines.append(f"  {row['target']:<30} {row['goal']:<9} {row['measured']:<46} {row['verdict']}")
    lines += ["", "paths and server configurations (choose the GPU defaults by these):"]
    lines += speed_lines(result["stages"])
    lines += ["", "figures:"]
    for name, info in result["stages"].items():
        for key, value in info.get("values", {}).items():
            if key != "env":
                lines.append(f"  {name}/{key}: {_short(value, 300)}")
    return "\n".join(lines) + "\n"


def speed_lines(stages: dict[str, Any]) -> list[str]:
    """ms per step of each path beside eager's, and each server configuration's headline figures."""
    lines = []
    for stage, key in (("graph-speed", "ms_per_step"), ("compile-speed", "ms_per_step_compiled")):
        table = stages.get(stage, {}).get("values", {}).get(key)
        if not isinstance(table, dict) or "eager" not in table:
            continue
        eager = table["eager"]
        for path, row in table.items():
            cells = []
            for layout, ms in row.items():
                if layout in eager and path != "eager" and isinstance(ms, float):
                    cells.append(f"{layout}: {ms:.2f} ms ({eager[layout] / ms:.2f}x eager)")
                elif isinstance(ms, float):
                    cells.append(f"{layout}: {ms:.2f} ms")
                else:
                    cells.append(f"{layout}: {ms}")
            lines.append(f"  step {path:<22} " + "; ".join(cells))
    for stage in ("server", "server-graphs", "server-batch"):
        values = stages.get(stage, {}).get("values", {})
        for label in sorted({k.rsplit("_", 1)[0] for k in values if k.endswith("_load")}):
            short = values.get(f"{label}_short") or {}
            long = values.get(f"{label}_long") or {}
            load = values.get(f"{label}_load") or []
            top = load[-1] if load else {}
            ttfa = short.get("ttfa_s")
            lines.append(
                f"  server {label:<20} TTFA short {'-' if ttfa is None else f'{ttfa * 1000:.0f} ms'}, "
                f"RTF long {_short(long.get('rtf'))}, {top.get('clients', '-')} clients: "
                f"{_short(top.get('throughput_audio_s_per_s'))} audio s/s, "
                f"{'all ahead' if top.get('all_ahead') else 'some late'}"
            )
    return lines or ["  (not measured)"]


def _short(value: Any, limit: int = 160) -> str:
    def tidy(v: Any) -> Any:
        if isinstance(v, float):
            return float(f"{v:.4g}") if math.isfinite(v) else str(v)
        if isinstance(v, dict):
            return {k: tidy(x) for k, x in v.items()}
        if isinstance(v, list):
            return [tidy(x) for x in v]
        return v

    text = json.dumps(tidy(value), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_chart(result: dict[str, Any], path: Path) -> str | None:
    """Four panels: latency, clients against playback, precision SNR, memory. None if it could not draw."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        return f"no chart: {err}"
    values = {name: info.get("values", {}) for name, info in result["stages"].items()}
    server = {**values.get("server", {}), **values.get("server-graphs", {}), **values.get("server-batch", {})}
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    configs = sorted({k.rsplit("_", 1)[0] for k in server if k.endswith(("_short", "_load"))})
    timed = [c for c in configs if f"{c}_short" in server]

    ax = axes[0][0]
    ttfa = [server[f"{c}_short"]["ttfa_s"] * 1000 for c in timed]
    rtf = [(server.get(f"{c}_long") or {}).get("rtf", math.nan) for c in timed]
    ax.bar([f"{c}\nTTFA short" for c in timed], ttfa, color="#1f77b4")
    ax.axhline(80, color="red", linestyle="--", linewidth=1, label="target 80 ms")
    ax.set_ylabel("ms")
    ax.set_title(
        "time to first audio (short text)"
        + "".join(f"\n{c}: RTF long {r:.3g}" for c, r in zip(timed, rtf, strict=True))
    )
    ax.legend()

    ax = axes[0][1]
    for color, c in zip(("#1f77b4", "#ff7f0e", "#2ca02c"), configs, strict=False):
        points = [
            (level["clients"], gap)
            for level in server.get(f"{c}_load", [])
            for gap in level["worst_gap_s"]
            if gap is not None
        ]
        ax.scatter([p[0] for p in points], [p[1] for p in points], color=color, label=c)
    ax.axhline(0, color="red", linewidth=1)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("worst (arrival - playback need), s; below 0: ahead")
    ax.set_title("each client against playback")
    if configs:
        ax.legend()

    ax = axes[1][0]
    precision = values.get("precision", {})
    names = [p for p in ("fp16", "bf16") if f"precision_{p}" in precision]
    snrs = [precision[f"precision_{p}"]["snr_db_vs_fp32"] for p in names]
    ax.bar(names, [s if s is not None and math.isfinite(s) else 0 for s in snrs], color="#2ca02c")
    ax.set_ylabel("dB")
    ax.set_title("SNR against fp32 (same seed)")

    ax = axes[1][1]
    bars: dict[str, float] = {}
    for c in configs:
        long = server.get(f"{c}_long") or {}
        for key, label in (
            ("peak_allocated_mib", "allocated"),
            ("peak_reserved_mib", "reserved"),
            ("nvidia_smi_used_mib", "nvidia-smi"),
        ):
            if long.get(key) is not None:
                bars[f"{c}\n{label}"] = long[key]
    if bars:
        ax.bar(list(bars), list(bars.values()), color="#9467bd")
        ax.axhline(2048, color="red", linestyle="--", linewidth=1, label="target < 2048 MiB (fp16)")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no GPU memory figures", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("MiB")
    ax.set_title("peak GPU memory, long text")

    fig.suptitle(f"wyoming-ishowtts gpu-check {result['meta']['date']} ({result['meta']['device']})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def collect_logs(work: Path, stage_logs: list[Path], lines: int = 400) -> str:
    """Each stage's output and each server log, the last `lines` lines of each: one file for the device
    tool to bring back."""
    parts = []
    for log in [*stage_logs, *sorted(work.glob("server-*.log"))]:
        try:
            text = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        cut = f" (last {lines} of {len(text)} lines)" if len(text) > lines else ""
        parts.append(f"===== {log.name}{cut}\n" + "\n".join(text[-lines:]))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    out: Path = args.out.resolve()
    work: Path = args.work.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)

    site = work / "site"
    placeholders = gpu_wheels.install(args.wheels, site)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(site), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(work / "inductor"))

    device = args.device
    if device == "auto":
        device = "cuda" if cuda_visible(sys.executable, env) else "cpu"
    elif device == "cuda" and not cuda_visible(sys.executable, env):
        print("gpu-check: --device cuda, but torch sees no CUDA GPU here", file=sys.stderr)
        return 2
    cuda = device == "cuda"
    budget = args.budget or (GPU_BUDGET_S if cuda else CPU_BUDGET_S)
    wanted = [s for s in args.only.split(",") if s] or [s.name for s in STAGES]
    unknown = sorted(set(wanted) - {s.name for s in STAGES})
    if unknown:
        print(f"gpu-check: unknown stage(s) {', '.join(unknown)}", file=sys.stderr)
        return 2

    config = work / "config.json"
    config.write_text(json.dumps({"device": device, "quick": args.quick, "work": str(work)}))
    stages: dict[str, Any] = {}
    logs: list[Path] = []
    for stage in STAGES:
        if stage.name not in wanted:
            continue
        left = budget - (time.monotonic() - started)
        limit = min(stage.gpu_limit_s if cuda else stage.cpu_limit_s, left)
        result_path, log = work / f"stage-{stage.name}.json", work / f"stage-{stage.name}.log"
        logs.append(log)
        if limit < 10:
            stages[stage.name] = {
                "status": "skipped: budget spent",
                "seconds": 0.0,
                "values": {},
                "checks": [],
            }
            continue
        result_path.unlink(missing_ok=True)
        print(
            f"== {stage.name} (limit {limit:.0f} s, {time.monotonic() - started:.0f} s elapsed): {stage.what}",
            flush=True,
        )
        status, seconds = run_stage(stage_command(stage.name, config, result_path), log, limit, env)
        try:
            data = json.loads(result_path.read_text())
        except (OSError, ValueError):
            data = {"values": {}, "checks": []}
        stages[stage.name] = {"status": status, "seconds": seconds, **data}
        for check in data.get("checks", []):
            print(f"   {'PASS' if check['ok'] else 'FAIL'} {check['name']}", flush=True)
        if status != "ok":
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            print(f"   {stage.name} {status}; last lines of {log}:\n     " + "\n     ".join(tail), flush=True)

    figure = figures(stages)
    result: dict[str, Any] = {
        "meta": {
            "date": utc_now(),
            "command": shlex.join(["script/gpu-check", *(sys.argv[1:] if argv is None else argv)]),
            "device": device,
            "quick": args.quick,
            "host": platform.node(),
            "placeholders": placeholders,
            "budget_s": budget,
            "elapsed_s": time.monotonic() - started,
        },
        "stages": stages,
        "figures": figure,
        "targets": judge(figure, cuda),
    }
    table = format_table(result)
    (out / "table.txt").write_text(table, encoding="utf-8")
    (out / "stages.log").write_text(collect_logs(work, logs), encoding="utf-8")
    try:  # the figures are safe on disk first: a chart that cannot be drawn costs only the chart
        result["meta"]["chart"] = write_chart(result, out / "chart.png") or "chart.png"
    except Exception as err:
        result["meta"]["chart"] = f"no chart: {type(err).__name__}: {err}"
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(table)
    failed = [f"{n} ({s['status']})" for n, s in stages.items() if s["status"] not in ("ok", OPTIONAL_SKIP)]
    failed += [f"{n}/{c['name']}" for n, s in stages.items() for c in s.get("checks", []) if not c["ok"]]
    if failed:
        print(f"gpu-check: {len(failed)} problem(s): {', '.join(failed)}")
    print(f"gpu-check: outputs in {out} ({time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
