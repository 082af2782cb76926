"""The benchmark's outputs: a plain-text table (printed and saved), results.json, events.json, chart.png.

Extrapolated figures are marked wherever they appear ("~" and "extrapolated" in the table, hatched bars
in the chart), so that nobody reads them as measurements.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .measure import median, write_json

SYSTEM_ORDER = {"ours": 0, "upstream-stream": 1, "upstream-infer": 2}
TEXT_ORDER = {"short": 0, "medium": 1, "long": 2}
NOISY_SHARE = 0.10
"""Above this share of CPU taken by other processes, the report calls a run noisy."""
COLORS = {"ours": "#1f77b4", "upstream-stream": "#ff7f0e", "upstream-infer": "#7f7f7f"}


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _gpu(row: dict[str, Any]) -> str:
    """Peak GPU memory: allocated / reserved by the allocator / per nvidia-smi (with the CUDA context)."""
    figures = (row.get("peak_gpu_mb"), row.get("peak_gpu_reserved_mb"), row.get("gpu_smi_mb"))
    return "-" if all(f is None for f in figures) else "/".join(_mb(f) for f in figures)


def _sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        rows,
        key=lambda r: (
            r["comparison"] != "equal",
            TEXT_ORDER.get(r["text"], 9),
            SYSTEM_ORDER.get(r["system"], 9),
        ),
    )


def format_table(result: dict[str, Any]) -> str:
    meta = result["meta"]
    machine = meta["machine"]
    settings = meta["settings"]
    lines = [
        f"wyoming-ishowtts benchmark, {meta['date']}",
        f"machine: {machine['cpu']} ({machine['cpu_count']} CPUs, torch threads {machine['torch_threads']}), "
        f"{machine['memory_gib']} GiB; GPU: {', '.join(machine['gpus']) or 'none'}; torch {machine['torch']}, "
        f"f5-tts {machine['f5_tts']}",
        f"device {settings['device']}, model {settings['size']} ({settings['model_dir']}), "
        f"repeats {settings['repeats']} (median), command: {meta['command']}",
        "",
        "TTFA = time to first audio (ours: first audio-chunk over Wyoming; upstream-stream: first piece of "
        "infer_batch_process(streaming=True); upstream-infer: F5TTS.infer returns everything at once).",
        "",
    ]
    header = (
        f"{'comparison':<10} {'text':<7} {'system':<16} {'settings':<24} {'TTFA s':>8} {'total s':>8} "
        f"{'audio s':>8} {'RTF':>6} {'RSS MB':>7} {'GPU MB a/r/smi':>15} {'other%':>6}  status"
    )
    lines += [header, "-" * len(header)]
    for r in _sorted_rows(result["rows"]):
        mark = "~" if r["status"] == "extrapolated" else " "
        lines.append(
            f"{r['comparison']:<10} {r['text']:<7} {r['system']:<16} {r['settings']:<24} "
            f"{mark}{_num(r['ttfa_s']):>7} {mark}{_num(r['total_s']):>7} {_num(r['audio_s']):>8} "
            f"{_num(r['rtf']):>6} {_mb(r['peak_rss_mb']):>7} {_gpu(r):>15} "
            f"{_pct(r.get('others_cpu_max')):>6}  {r['status']}"
        )
    noisy = max((r.get("others_cpu_max") or 0.0 for r in result["rows"]), default=0.0)
    lines.append(
        "other% = the largest share of the machine's CPU that other processes used during any timed run of "
        "that row. GPU MB a/r/smi = peak allocated / peak reserved by torch's allocator / what nvidia-smi charges "
        "the process (its CUDA context included)."
    )
    if noisy > NOISY_SHARE:
        lines.append(
            f"WARNING: other processes used up to {noisy:.0%} of the CPU during timed runs: these figures are "
            "noisy; run again on a quiet machine before recording them."
        )
    if result["ratios"]:
        lines += [
            "",
            "ours / upstream (TTFA x: against upstream's streaming first piece; TTFA x*: against whichever "
            "upstream path gave audio first; total: against the faster of upstream's two paths):",
        ]
        header = (
            f"{'comparison':<10} {'text':<7} {'TTFA x':>7} {'TTFA x*':>7} {'total x':>8} {'RTF x':>6}  "
            "targets (medium)"
        )
        lines += [header, "-" * (len(header) + 20)]
        for q in sorted(
            result["ratios"], key=lambda q: (q["comparison"] != "equal", TEXT_ORDER.get(q["text"], 9))
        ):
            targets = []
            for metric in ("ttfa", "total"):
                if f"{metric}_target" in q:
                    ok = "met" if q[f"{metric}_target_met"] else "NOT met"
                    targets.append(f"{metric} <= {q[f'{metric}_target']}x {ok}")
            suffix = "  (upstream extrapolated)" if q["upstream_status"] == "extrapolated" else ""
            lines.append(
                f"{q['comparison']:<10} {q['text']:<7} {q['ttfa_vs_upstream_stream']:>7.3f} "
                f"{q['ttfa_vs_upstream_best']:>7.3f} "
                f"{q['total_vs_upstream_best']:>8.3f} {q['rtf_vs_upstream_best']:>6.3f}  "
                f"{'; '.join(targets)}{suffix}"
            )
    for check in result.get("extrapolation_checks", []):
        lines.append(
            f"extrapolation check ({check['mode']}, {check['text']}): total measured "
            f"{check['measured_total_s']:.2f}s vs extrapolated {check['extrapolated_total_s']:.2f}s; "
            f"TTFA {check['measured_ttfa_s']:.2f}s vs {check['extrapolated_ttfa_s']:.2f}s"
        )
    for load in load_runs(result):
        lines += [
            "",
            f"Load run: server '{load['config']}' configuration{_batch_label(load)}, text '{load['text']}', "
            f"every client released at once; describe idle median {load['describe_idle_ms']:.1f} ms",
        ]
        header = (
            f"{'clients':>7} {'TTFA med s':>10} {'TTFA max s':>10} {'total max s':>11} "
            f"{'audio s/s':>9} {'describe med/p95/max ms':>24} {'RSS MB':>7} {'GPU MB a/r/smi':>15} {'other%':>6}"
        )
        lines += [header, "-" * len(header)]
        for lv in load["levels"]:
            d = lv["describe_ms"]
            describe = f"{d['median']:.1f}/{d['p95']:.1f}/{d['max']:.1f}"
            lines.append(
                f"{lv['clients']:>7} {median(lv['ttfa_s']):>10.2f} {max(lv['ttfa_s']):>10.2f} "
                f"{max(lv['total_s']):>11.2f} {lv['throughput_audio_s_per_s']:>9.2f} {describe:>24} "
                f"{_mb(lv['peak_rss_mb']):>7} {_gpu(lv):>15} {_pct(lv.get('others_cpu')):>6}"
            )
            lines.append(f"{'':>7} per-client TTFA s: {', '.join(f'{t:.2f}' for t in sorted(lv['ttfa_s']))}")
    return "\n".join(lines) + "\n"


def load_runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The load run, then its repeats on servers that batch requests (``--load-batch``)."""
    first = result.get("load")
    return ([first] if first else []) + list(result.get("load_batched") or [])


def _batch_label(load: dict[str, Any]) -> str:
    n = load.get("batch_requests", 1)
    return f" with `--batch-requests {n}`" if n > 1 else ""


def write_chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    comparisons = [c for c in ("equal", "defaults") if any(r["comparison"] == c for r in rows)]
    load = result.get("load")
    panels = len(comparisons) * 2 + (1 if load else 0)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(4.2 * max(panels, 1), 4.2), squeeze=False)
    ax_iter = iter(axes[0])
    for comparison in comparisons:
        subset = [r for r in rows if r["comparison"] == comparison]
        texts = sorted({r["text"] for r in subset}, key=lambda t: TEXT_ORDER.get(t, 9))
        systems = sorted({r["system"] for r in subset}, key=lambda s: SYSTEM_ORDER.get(s, 9))
        for metric, title in (("ttfa_s", "time to first audio"), ("total_s", "total time")):
            ax = next(ax_iter)
            width = 0.8 / max(len(systems), 1)
            for i, system in enumerate(systems):
                for j, text in enumerate(texts):
                    match = [r for r in subset if r["system"] == system and r["text"] == text]
                    if not match:
                        continue
                    r = match[0]
                    ax.bar(
                        j + i * width,
                        r[metric],
                        width,
                        color=COLORS.get(system, "#333"),
                        hatch="//" if r["status"] == "extrapolated" else None,
                        edgecolor="white" if r["status"] == "extrapolated" else None,
                        label=system if j == 0 else None,
                    )
            ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(texts))], texts)
            ax.set_ylabel("seconds")
            settings = next((r["settings"] for r in subset if r["system"] == "ours"), "")
            ax.set_title(f"{comparison}: {title}\n(ours: {settings}; hatched = extrapolated)", fontsize=9)
            ax.legend(fontsize=7)
    if load:
        ax = next(ax_iter)
        twin = ax.twinx()
        shades = ["#1f77b4", "#9467bd", "#8c564b", "#e377c2"]
        for k, run in enumerate(load_runs(result)):
            levels = run["levels"]
            xs = [lv["clients"] for lv in levels]
            n = run.get("batch_requests", 1)
            tag = "" if n == 1 else f", batch {n}"
            color = shades[k % len(shades)]
            for lv in levels:
                ax.scatter([lv["clients"]] * len(lv["ttfa_s"]), lv["ttfa_s"], color=color, s=12)
            ax.plot(xs, [median(lv["ttfa_s"]) for lv in levels], color=color, label=f"TTFA per client{tag}")
            twin.plot(
                xs,
                [lv["throughput_audio_s_per_s"] for lv in levels],
                color=color,
                linestyle="--",
                marker="o",
                label=f"throughput{tag}",
            )
            ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("time to first audio, s (solid)")
        ax.set_xscale("log", base=2)
        twin.set_ylim(bottom=0)  # a zoomed axis would make noise look like a trend
        ax.set_ylim(bottom=0)
        twin.set_ylabel("audio seconds per second (dashed)")
        ax.legend(fontsize=6, loc="upper left")
        twin.legend(fontsize=6, loc="lower right")
        ax.set_title(
            f"load run ({load['config']}, '{load['text']}')\np95 describe: "
            + ", ".join(f"{lv['describe_ms']['p95']:.0f}" for lv in load["levels"])
            + " ms",
            fontsize=9,
        )
    meta = result["meta"]
    fig.suptitle(
        f"wyoming-ishowtts vs f5-tts {meta['machine']['f5_tts']} - {meta['settings']['device']}, "
        f"{meta['settings']['size']} model - {meta['date']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(result: dict[str, Any], events: dict[str, Any], out: Path) -> str:
    """Write every output file; returns the table text."""
    table = format_table(result)
    files = {
        "json": out / "results.json",
        "events": out / "events.json",
        "table": out / "table.txt",
        "chart": out / "chart.png",
    }
    result["meta"]["files"] = {k: str(v) for k, v in files.items()}
    write_json(files["json"], result)
    write_json(files["events"], events)
    files["table"].write_text(table, encoding="utf-8")
    write_chart(result, files["chart"])
    return table


def format_markdown(result: dict[str, Any]) -> str:
    """The figures as Markdown, for BENCHMARKS.md (so nothing is copied by hand)."""
    meta = result["meta"]
    machine = meta["machine"]
    settings = meta["settings"]
    gpus = ", ".join(machine["gpus"]) or "none"
    load_avg = machine.get("load_average")
    lines = [
        f"- Date: {meta['date']}",
        f"- Command: `{meta['command']}`",
        f"- Machine: {machine['cpu']}, {machine['cpu_count']} CPUs (torch threads {machine['torch_threads']}), "
        f"{machine['memory_gib']} GiB RAM; GPU: {gpus}",
        f"- Software: Python {machine['python']}, torch {machine['torch']}, f5-tts {machine['f5_tts']}, "
        f"wyoming {machine['wyoming']}",
        f"- Device {settings['device']}; model `{settings['size']}` (random weights"
        f"{', F5TTS_v1_Base shapes' if settings['size'] == 'base' else ''}); "
        f"equal settings: nfe {settings['nfe_equal']}, {settings['equal_precision']}; "
        f"median of {settings['repeats']} run(s) after one warm-up "
        f"(upstream at 32 steps: {settings['defaults_repeats']} run(s))",
        f"- Load average at start: {', '.join(f'{x:.2f}' for x in load_avg) if load_avg else 'n/a'}; "
        f"run took {meta.get('elapsed_s', float('nan')) / 60:.1f} min",
        "",
        "| comparison | text | system | settings | TTFA s | total s | audio s | RTF | peak RSS MB | peak GPU MB (allocated/reserved/nvidia-smi) "
        "| other CPU % |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in _sorted_rows(result["rows"]):
        mark = " (extrapolated)" if r["status"] == "extrapolated" else ""
        lines.append(
            f"| {r['comparison']} | {r['text']} | {r['system']}{mark} | {r['settings']} | {_num(r['ttfa_s'])} | "
            f"{_num(r['total_s'])} | {_num(r['audio_s'])} | {_num(r['rtf'])} | {_mb(r['peak_rss_mb'])} | "
            f"{_gpu(r)} | {_pct(r.get('others_cpu_max'))} |"
        )
    if result["ratios"]:
        lines += [
            "",
            "| comparison | text | TTFA ours/upstream-stream | TTFA ours/first upstream audio "
            "| total ours/best upstream | target (medium) |",
            "|---|---|---:|---:|---:|---|",
        ]
        for q in sorted(
            result["ratios"], key=lambda q: (q["comparison"] != "equal", TEXT_ORDER.get(q["text"], 9))
        ):
            targets = [
                f"{m} <= {q[f'{m}_target']}x: {'met' if q[f'{m}_target_met'] else 'NOT met'}"
                for m in ("ttfa", "total")
                if f"{m}_target" in q
            ]
            if q["upstream_status"] == "extrapolated":
                targets.append("upstream extrapolated")
            lines.append(
                f"| {q['comparison']} | {q['text']} | {q['ttfa_vs_upstream_stream']:.3f} | "
                f"{q['ttfa_vs_upstream_best']:.3f} | "
                f"{q['total_vs_upstream_best']:.3f} | {'; '.join(targets)} |"
            )
    for load in load_runs(result):
        lines += [
            "",
            f"Load run: server `{load['config']}` configuration{_batch_label(load)}, text `{load['text']}`; "
            f"`describe` on an idle server: {load['describe_idle_ms']:.1f} ms (median).",
            "",
            "| clients | TTFA median s | TTFA max s | slowest total s | audio s per s | describe median / p95 / max ms |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for lv in load["levels"]:
            d = lv["describe_ms"]
            lines.append(
                f"| {lv['clients']} | {median(lv['ttfa_s']):.2f} | {max(lv['ttfa_s']):.2f} | "
                f"{max(lv['total_s']):.2f} | {lv['throughput_audio_s_per_s']:.2f} | "
                f"{d['median']:.1f} / {d['p95']:.1f} / {d['max']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """`python -m ishowtts_dev.bench.report RESULTS.json`: print a results file as Markdown."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    print(format_markdown(json.loads(args.results.read_text())), end="")


if __name__ == "__main__":
    main()
