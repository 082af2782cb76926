"""script/gpu-check: the whole GPU proof in one command, for a lent H100/H200 (one device call).

    script/gpu-check --device cuda --out "$OUT"   # on the device: everything, in under 400 s
    script/gpu-check --device cpu --quick         # here and in CI: the same code, tiny model, on the CPU
    script/gpu-check --only setup,server          # a rerun of some stages

It checks the wheels ``script/gpu-wheels`` fetched (``.gpu-wheels/``) before anything touches the GPU,
installs them (offline, next to the device's own torch), then runs each stage of ``stages`` in a process of
its own under its own time limit, within one overall budget, so a hang costs one stage and not the device's
fifteen minutes. The stages that matter most run first. ``results.json``, ``table.txt`` and ``stages.log``
are written to the output folder at start (the environment) and again, atomically, every few seconds while a
stage runs and after each one: a run killed at any moment leaves a parseable record of everything it
finished, and a stage, install or probe that fails is a failed row, never an empty folder. ``chart.png`` is
drawn at the end (four files: the device tool brings back at most eight).

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
import traceback
from collections.abc import Callable
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
    Stage("setup", 40, 120, "environment, torch build vs GPU, SDPA kernels, random model, voices"),
    Stage("paths", 45, 120, "the main model with CUDA graphs equals eager, nothing new after warm-up"),
    Stage("graph-speed", 40, 150, "ms per sampler step: eager unpadded and padded, CUDA graphs, buckets"),
    Stage("server", 70, 300, "the server over Wyoming at defaults: TTFA, RTF, memory, 1/2/4/8 clients"),
    Stage("server-graphs", 60, 30, "the same with --cuda-graphs"),
    Stage("upstream", 60, 300, "throughput against upstream f5-tts at equal steps and precision"),
    Stage("precision", 30, 120, "fp16 and bf16 SNR against fp32, warm times, no silent fallback"),
    Stage("equivalence", 30, 90, "our fp32 on the device equals our fp32 on the CPU (TF32 off)"),
    Stage("server-batch", 60, 300, "the load run with --batch-requests 4 (and --cuda-graphs)", optional=True),
    Stage("compile", 150, 30, "compiled steps equal eager, and their ms per step", optional=True),
)
"""In order of what a cut-short device call must not lose: the GPU paths the defaults are chosen by first,
the slow stages that a CPU can stand in for (precision, equivalence) last. The limits are guesses made
without a GPU (no session has had one); a stage that needs more is cut at its limit and says so."""
OPTIONAL_SKIP = "skipped: budget spent (optional)"
INSTALL_S = {True: 25, False: 60}
"""Time set aside for installing the carried wheels (cuda run: True)."""
BUDGET_S = {True: 400, False: 1500}
"""The whole run, wheels included: on a GPU 400 s, so that a 15-minute lease leaves time for the machine's
start, a second start and a rerun of a few stages."""
WRITE_EVERY_S = 5.0
"""How often the outputs are rewritten while a stage runs (its partial figures and log included)."""


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


def limit_of(stage: Stage, cuda: bool) -> int:
    return stage.gpu_limit_s if cuda else stage.cpu_limit_s


def plan_lines(cuda: bool, budget: float, wanted: list[str]) -> list[str]:
    """The stage order and limits, printed at start: the required stages' limits and the install must fit
    the budget (tests/test_gpu_check.py holds both kinds of run to it)."""
    chosen = [s for s in STAGES if s.name in wanted]
    required = INSTALL_S[cuda] + sum(limit_of(s, cuda) for s in chosen if not s.optional)
    lines = [f"gpu-check plan ({'cuda' if cuda else 'cpu'}, budget {budget:.0f} s):"]
    lines.append(f"   {'install':<14} {INSTALL_S[cuda]:>4} s  the carried wheels (set aside)")
    for stage in chosen:
        extra = " (optional: with what the budget leaves)" if stage.optional else ""
        lines.append(f"   {stage.name:<14} {limit_of(stage, cuda):>4} s  {stage.what}{extra}")
    fits = "fits" if required <= budget else "DOES NOT FIT"
    lines.append(f"   required stages and install: {required} s, {fits} the {budget:.0f} s budget")
    return lines


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
    parser.add_argument(
        "--fail",
        default="",
        help="comma-separated stages whose process fails at once (to show what a failure leaves behind)",
    )
    return parser


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def atomic_write(path: Path, text: str) -> None:
    """Readers (the device tool copying the folder back at a kill) see the old file or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def cuda_visible(python: str, env: dict[str, str]) -> bool:
    """Asked in a child process, so this one never initializes CUDA (a context holds ~0.5 GB)."""
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([python, "-c", probe], env=env, check=False, timeout=60).returncode == 0


def stage_command(stage: str, config: Path, result: Path) -> list[str]:
    return [sys.executable, "-m", "ishowtts_dev.gpu.stages", stage, str(config), str(result)]


class Terminated(Exception):
    """gpu-check itself was sent SIGTERM (a device call at its limit): the running stage is killed, the
    outputs written, and the run ends."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(signal.Signals(signum).name)


def run_stage(
    command: list[str],
    log: Path,
    limit: float,
    env: dict[str, str],
    tick: Callable[[], object] | None = None,
) -> tuple[str, float]:
    """Run one stage in a process group of its own; at its limit the whole group (a server it started too)
    is killed, and so is anything of it left running when it ends. `tick` is called every WRITE_EVERY_S
    while it runs. Returns (status, seconds): "ok", "failed (exit N)" or "timed out at N s"."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            while True:
                left = limit - (time.monotonic() - started)
                if left <= 0:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return f"timed out at {limit:.0f} s", time.monotonic() - started
                try:
                    code = proc.wait(timeout=min(left, WRITE_EVERY_S))
                    break
                except subprocess.TimeoutExpired:
                    if tick is not None:
                        tick()
        finally:  # anything the stage left running (a server) goes with it, also when this one is stopped
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return ("ok" if code == 0 else f"failed (exit {code})"), time.monotonic() - started


def failed_row(status: str, seconds: float, error: str) -> dict[str, Any]:
    """A step that is not a stage process (install, probe) or that never wrote a result, as a table row."""
    return {"status": status, "seconds": seconds, "values": {"error": error[-2000:]}, "checks": []}


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
    what = {stage.name: stage.what for stage in STAGES}
    what |= {"install": "the carried wheels, offline", "probe": "whether torch sees a CUDA GPU"}
    for name, info in result["stages"].items():
        lines.append(f"{name:<13} {info['status']:<22} {info['seconds']:>7.1f}  {what.get(name, '')}")
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
    profiles = []
    for name, info in result["stages"].items():
        for key, value in info.get("values", {}).items():
            if key.startswith("profile_") and isinstance(value, str):
                profiles.append(f"{name}/{key}:\n{value}")
            elif key != "env":
                lines.append(f"  {name}/{key}: {_short(value, 300)}")
    if profiles:
        lines += [
            "",
            "profiles (torch.profiler, one chunk's step loop each, top kernels by time):",
            *profiles,
        ]
    return "\n".join(lines) + "\n"


def speed_lines(stages: dict[str, Any]) -> list[str]:
    """ms per step of each path beside the eager rows', and each server configuration's headline figures.
    Each path is compared with both eager rows: padded (what graphs replace; masked, so no FlashAttention)
    and unpadded (what the server runs eagerly: FlashAttention where nothing is padded)."""
    lines = []
    for stage, key in (("graph-speed", "ms_per_step"), ("compile", "ms_per_step_compiled")):
        table = stages.get(stage, {}).get("values", {}).get(key)
        if not isinstance(table, dict):
            continue
        eagers = {k: v for k, v in table.items() if k.startswith("eager")}
        for path, row in table.items():
            if not isinstance(row, dict):
                continue
            cells = []
            for layout, ms in row.items():
                if layout == "runs_ms":
                    continue  # in results.json
                if not isinstance(ms, float):
                    cells.append(f"{layout}: {ms}")
                    continue
                ratios = [
                    f"{eager[layout] / ms:.2f}x {name}"
                    for name, eager in eagers.items()
                    if name != path and isinstance(eager.get(layout), float) and ms > 0
                ]
                cells.append(f"{layout}: {ms:.3f} ms" + (f" ({', '.join(ratios)})" if ratios else ""))
            lines.append(f"  step {path:<22} " + "; ".join(cells))
    lines += bucket_lines(stages.get("graph-speed", {}).get("values", {}).get("ms_per_step_by_bucket"))
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


def bucket_lines(table: Any) -> list[str]:
    """graph-speed's `ms_per_step_by_bucket` (stages.bucket_speed), a line per bucket: each length, the
    length it pads to, and ms per step of each loop; an error as it came."""
    if not isinstance(table, dict):
        return []
    lines = []
    for name, row in table.items():
        if not isinstance(row, dict):
            continue
        cells = []
        for length, cell in row.items():
            if not isinstance(cell, dict):
                cells.append(f"{length}: {_short(cell)}")
                continue
            times = ", ".join(f"{k} {v:.3f} ms" for k, v in cell.items() if isinstance(v, float))
            cells.append(f"{length} (padded {cell.get('padded_frames', '-')}): {times or '-'}")
        lines.append(f"  length {name:<20} " + "; ".join(cells))
    return lines


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
class Run:
    """What one run knows so far, and the one way it reaches --out (`write`): results.json first (plain
    JSON of the stages, the thing a reader needs most), then table.txt and stages.log, each atomically."""

    def __init__(self, args: argparse.Namespace, command: list[str], out: Path, work: Path) -> None:
        self.out, self.work = out, work
        self.started = time.monotonic()
        self.device: str = args.device
        self.meta: dict[str, Any] = {
            "date": utc_now(),
            "command": shlex.join(["script/gpu-check", *command]),
            "device": args.device,
            "quick": args.quick,
            "host": platform.node(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "placeholders": [],
            "budget_s": None,
        }
        self.stages: dict[str, Any] = {}
        self.logs: list[Path] = []
        self.running: tuple[str, Path, float] | None = None
        """The stage in progress: its name, its result file (rewritten after each figure) and its start."""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def result(self) -> dict[str, Any]:
        stages = dict(self.stages)
        if self.running is not None:
            name, path, since = self.running
            stages[name] = {"status": "running", "seconds": time.monotonic() - since, **read_result(path)}
        result: dict[str, Any] = {
            "meta": {**self.meta, "device": self.device, "elapsed_s": self.elapsed(), "updated": utc_now()},
            "stages": stages,
        }
        try:
            figure = figures(stages)
            result |= {"figures": figure, "targets": judge(figure, self.device == "cuda")}
        except Exception as err:  # a stage's odd value must not cost the record of the others
            result |= {"figures": {}, "targets": [], "judging_error": f"{type(err).__name__}: {err}"}
        return result

    def write(self) -> tuple[dict[str, Any], str]:
        result = self.result()
        atomic_write(self.out / "results.json", json.dumps(result, indent=2, default=str) + "\n")
        try:
            table = format_table(result)
        except Exception:
            table = "gpu-check: the table could not be formatted (results.json has everything):\n"
            table += traceback.format_exc() + "\n" + json.dumps(result["stages"], indent=1, default=str)
        atomic_write(self.out / "table.txt", table)
        atomic_write(self.out / "stages.log", collect_logs(self.work, self.logs))
        return result, table

    def row(self, name: str, info: dict[str, Any]) -> None:
        self.stages[name] = info
        self.write()


def read_result(path: Path) -> dict[str, Any]:
    """A stage's result file, or empty figures where it wrote none (or half of one: it is rewritten
    atomically, but a stage killed before its first write leaves nothing)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"values": {}, "checks": []}
    return data if isinstance(data, dict) else {"values": {}, "checks": []}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    wanted = [s for s in args.only.split(",") if s] or [s.name for s in STAGES]
    unknown = sorted((set(wanted) | {s for s in args.fail.split(",") if s}) - {s.name for s in STAGES})
    if unknown:
        print(f"gpu-check: unknown stage(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    out: Path = args.out.resolve()
    work: Path = args.work.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    run = Run(args, sys.argv[1:] if argv is None else argv, out, work)
    run.write()  # the environment, before anything can go wrong
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _run(args, run, wanted)
    except Terminated as stop:
        if run.running is not None:
            name, path, since = run.running
            run.running = None
            run.stages[name] = {
                "status": f"killed ({stop})",
                "seconds": time.monotonic() - since,
                **read_result(path),
            }
        run.write()
        print(f"gpu-check: stopped by {stop}; what it finished is in {out}", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, run: Run, wanted: list[str]) -> int:
    out, work = run.out, run.work
    # 1. The carried wheels, before the GPU is touched: without them every stage fails on its first import.
    problem = gpu_wheels.missing(args.wheels)
    if problem:
        run.row("install", failed_row("failed: wheel set incomplete", 0.0, problem))
        print(f"gpu-check: {problem}", file=sys.stderr)
        return 2
    site = work / "site"
    started = time.monotonic()
    try:
        run.meta["placeholders"] = gpu_wheels.install(args.wheels, site)
    except (subprocess.CalledProcessError, OSError) as err:
        run.row("install", failed_row("failed", time.monotonic() - started, f"{type(err).__name__}: {err}"))
        print(f"gpu-check: installing the carried wheels failed: {err}", file=sys.stderr)
        return 1
    run.row("install", {"status": "ok", "seconds": time.monotonic() - started, "values": {}, "checks": []})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(site), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(work / "inductor"))

    # 2. Whether torch sees a GPU, asked in a child process.
    device = args.device
    if device != "cpu":
        started = time.monotonic()
        try:
            visible = cuda_visible(sys.executable, env)
        except subprocess.TimeoutExpired:
            run.row("probe", failed_row("timed out at 60 s", time.monotonic() - started, "torch hung"))
            print("gpu-check: asking torch for a CUDA GPU hung for 60 s", file=sys.stderr)
            return 1
        if device == "cuda" and not visible:
            run.row("probe", failed_row("failed: no CUDA GPU", time.monotonic() - started, "none visible"))
            print("gpu-check: --device cuda, but torch sees no CUDA GPU here", file=sys.stderr)
            return 2
        device = "cuda" if visible else "cpu"
    run.device = device
    cuda = device == "cuda"
    budget = args.budget or BUDGET_S[cuda]
    run.meta["budget_s"] = budget
    print("\n".join(plan_lines(cuda, budget, wanted)), flush=True)

    # 3. The stages, in order, each under its limit; the outputs are rewritten as they go.
    config = work / "config.json"
    fail = [s for s in args.fail.split(",") if s]
    config.write_text(json.dumps({"device": device, "quick": args.quick, "work": str(work), "fail": fail}))
    for stage in STAGES:
        if stage.name not in wanted:
            continue
        left = budget - run.elapsed()
        limit = min(limit_of(stage, cuda), left)
        result_path, log = work / f"stage-{stage.name}.json", work / f"stage-{stage.name}.log"
        if limit < 10:
            status = OPTIONAL_SKIP if stage.optional else "skipped: budget spent"
            run.row(stage.name, {"status": status, "seconds": 0.0, "values": {}, "checks": []})
            continue
        result_path.unlink(missing_ok=True)
        run.logs.append(log)
        print(
            f"== {stage.name} (limit {limit:.0f} s, {run.elapsed():.0f} s elapsed): {stage.what}", flush=True
        )
        run.running = (stage.name, result_path, time.monotonic())
        status, seconds = run_stage(
            stage_command(stage.name, config, result_path), log, limit, env, run.write
        )
        run.running = None
        data = read_result(result_path)
        run.row(stage.name, {"status": status, "seconds": seconds, **data})
        for check in data.get("checks", []):
            print(f"   {'PASS' if check['ok'] else 'FAIL'} {check['name']}", flush=True)
        if status != "ok":
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            print(f"   {stage.name} {status}; last lines of {log}:\n     " + "\n     ".join(tail), flush=True)

    # 4. The chart last: the figures are safe on disk already, so a chart that cannot be drawn costs only it.
    result, _ = run.write()
    try:
        run.meta["chart"] = write_chart(result, out / "chart.png") or "chart.png"
    except Exception as err:
        run.meta["chart"] = f"no chart: {type(err).__name__}: {err}"
    _, table = run.write()
    print(table)
    stages = run.stages
    failed = [f"{n} ({s['status']})" for n, s in stages.items() if s["status"] not in ("ok", OPTIONAL_SKIP)]
    failed += [f"{n}/{c['name']}" for n, s in stages.items() for c in s.get("checks", []) if not c["ok"]]
    if failed:
        print(f"gpu-check: {len(failed)} problem(s): {', '.join(failed)}")
    print(f"gpu-check: outputs in {out} ({run.elapsed():.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
