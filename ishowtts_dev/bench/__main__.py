"""Benchmark: our Wyoming server end to end against upstream f5-tts on the same weights, plus a load run.

    script/bench                      # base-size random model, CPU-sized settings when there is no GPU
    script/bench --quick              # tiny model, one text: a smoke run (CI)
    script/bench --skip-upstream --texts medium --load 1,2

What is timed (all on loopback, one process at a time, so they never compete for the CPU):

* ours: the server (``python -m wyoming_ishowtts``, unmodified) in a subprocess, driven by a Wyoming
  client that sends ``synthesize`` and times each event: first ``audio-chunk`` (time to first audio) and
  ``audio-stop`` (total). Two configurations: *equal* (``--nfe N --precision P``, upstream's precision)
  and *defaults* (``--nfe auto --precision auto``).
* upstream: ``F5TTS.infer`` and the ``infer_batch_process(streaming=True)`` generator, in a subprocess of
  their own (see ``upstream.py`` for exactly what runs), at N steps (*equal*) and at upstream's default
  32 steps (*defaults*). On a CPU, 32 steps over the long texts take many minutes; texts not in
  ``--defaults-texts`` are then *extrapolated* from the N-step runs (measured time plus the DiT-busy time
  scaled by 32/N - 1) and every such figure is labelled "extrapolated" in the table, JSON and chart.

Each figure is the median of ``--repeats`` runs after one warm-up request that is not counted. Seeds are
fixed (the bench voice's voice.toml sets ``seed = 0`` for our server; upstream gets the same seed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from wyoming_ishowtts.arguments import device as device_argument
from wyoming_ishowtts.arguments import positive_int

from .. import child_env
from . import client as wy
from .measure import OtherCpu, machine_info, median, percentile, utc_now, write_json
from .report import write_outputs
from .server import ServerProcess
from .texts import REFERENCE_SECONDS, REFERENCE_TEXT, TEXTS, write_voice

UPSTREAM_DEFAULT_NFE = 32
VOICE = "bench"
TARGETS = {
    # (comparison, metric) -> ours / upstream must be at most this, for the medium text (issue 4).
    ("equal", "ttfa"): 0.35,
    ("defaults", "ttfa"): 0.1,
    ("equal", "total"): 1.0,
    ("defaults", "total"): 0.3,
}


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _levels(text: str) -> list[int]:
    levels = [int(part) for part in _csv(text)]
    if any(n < 1 for n in levels):
        raise argparse.ArgumentTypeError("client counts must be at least 1")
    return levels


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="script/bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="model files (default: a random model of --size, made once in OUT/model-SIZE)",
    )
    parser.add_argument(
        "--size", choices=("tiny", "base"), default=None, help="random model size (default: base)"
    )
    parser.add_argument(
        "--device",
        type=device_argument,
        default="auto",
        help="auto | cpu | cuda | cuda:N (default: cuda if available)",
    )
    parser.add_argument(
        "--nfe-equal",
        type=positive_int,
        default=None,
        help="steps for the equal comparison (default: 4 on CPU, 32 on GPU)",
    )
    parser.add_argument("--texts", type=_csv, default=None, help="short,medium,long (default: all)")
    parser.add_argument(
        "--defaults-texts",
        type=_csv,
        default=None,
        help="texts upstream runs at 32 steps; the others are extrapolated "
        "(default: all on GPU, short on CPU; 'none' for none)",
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=None, help="timed runs per figure (default 3 GPU, 2 CPU)"
    )
    parser.add_argument(
        "--defaults-repeats",
        type=int,
        default=None,
        help="timed runs of upstream at 32 steps (default: --repeats on GPU, 1 on CPU)",
    )
    parser.add_argument("--skip-upstream", action="store_true", help="time our server only")
    parser.add_argument(
        "--load",
        type=_levels,
        default=None,
        help="concurrent clients (default 1,2,4,8; empty string: no load run)",
    )
    parser.add_argument("--load-text", choices=sorted(TEXTS), default="short")
    parser.add_argument(
        "--load-batch",
        type=_levels,
        default=None,
        help="also run the load run on a server started with --batch-requests N, for each N here "
        "(default: 4 on GPU, none on CPU; --quick: 2)",
    )
    parser.add_argument(
        "--load-config",
        choices=("equal", "defaults"),
        default=None,
        help="server configuration for the load run (default: defaults on GPU, equal on CPU)",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="torch CPU threads for both (default: torch's)"
    )
    parser.add_argument(
        "--server-args",
        type=shlex.split,
        default=[],
        help="extra options for our server in every configuration, e.g. '--compile --length-bucket 256'",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny model, 2 steps, short text, 1 repeat, 1-2 clients",
    )
    return parser


def cuda_capability(device: str) -> tuple[int, int] | None:
    """The GPU's compute capability, None without one, asked in a child process: in this one, CUDA would
    keep a context (half a gigabyte of GPU memory) for the whole run, beside the servers it measures."""
    probe = (
        "import sys, torch\n"
        "if not torch.cuda.is_available(): sys.exit(3)\n"
        f"print(*torch.cuda.get_device_capability(torch.device({device!r})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Fill every default that depends on the device or on --quick, in one place."""
    device = args.device
    capability = None if device == "cpu" else cuda_capability("cuda" if device == "auto" else device)
    if device == "auto":
        device = "cuda" if capability is not None else "cpu"
    elif device.startswith("cuda") and capability is None:
        raise SystemExit(f"--device {device}: torch sees no CUDA GPU here")
    gpu = device.startswith("cuda")
    quick = args.quick
    size = args.size or ("tiny" if quick else "base")
    texts = args.texts or (["short"] if quick else list(TEXTS))
    unknown = sorted(set(texts) - set(TEXTS))
    if unknown:
        raise SystemExit(f"unknown text(s): {', '.join(unknown)} (known: {', '.join(TEXTS)})")
    if args.defaults_texts is not None:
        defaults_texts = [] if args.defaults_texts == ["none"] else args.defaults_texts
    else:
        defaults_texts = list(texts) if gpu or quick else ["short"]
    defaults_texts = [t for t in texts if t in defaults_texts]
    if gpu and defaults_texts != texts:
        # The extrapolation scales upstream's DiT-busy time, which its hooks can only see as launch time on
        # a GPU (they would have to synchronize, slowing upstream down): on a GPU every text is measured.
        raise SystemExit("on a GPU every text is measured at 32 steps: leave --defaults-texts out")
    repeats = args.repeats or (1 if quick else 3 if gpu else 2)
    # Upstream's load_checkpoint: fp16 on GPUs from compute capability 7 (ZLUDA aside), else fp32.
    equal_precision = "fp16" if gpu and capability is not None and capability[0] >= 7 else "fp32"
    load = args.load if args.load is not None else ([1, 2] if quick else [1, 2, 4, 8])
    default_batch = [2] if quick else [4] if gpu else []
    load_batch = args.load_batch if args.load_batch is not None else default_batch
    return {
        "device": device,
        "size": size,
        "model_dir": args.model_dir or args.out / f"model-{size}",
        "nfe_equal": args.nfe_equal or (2 if quick else 32 if gpu else 4),
        "equal_precision": equal_precision,
        "texts": texts,
        "defaults_texts": defaults_texts,
        "repeats": repeats,
        "defaults_repeats": args.defaults_repeats or (repeats if gpu or quick else 1),
        "load": load,
        "load_text": args.load_text,
        "load_batch": [n for n in load_batch if n > 1],
        "load_config": args.load_config or ("defaults" if gpu else "equal"),
        "threads": args.threads,
        "server_args": args.server_args,
        "skip_upstream": args.skip_upstream,
        "out": args.out,
    }


def ensure_model(cfg: dict[str, Any]) -> Path:
    model_dir: Path = cfg["model_dir"]
    if not (model_dir / "model.safetensors").exists():
        from wyoming_ishowtts.tools.random_model import write_random_model

        print(f"Writing a random {cfg['size']} model to {model_dir} (reused by later runs)", flush=True)
        write_random_model(model_dir, cfg["size"], seed=0)
    return model_dir


# ---------------------------------------------------------------------------------------------- upstream
def run_upstream(cfg: dict[str, Any], ref_wav: Path) -> dict[str, Any]:
    configs = [{"label": "equal", "nfe": cfg["nfe_equal"], "texts": cfg["texts"], "repeats": cfg["repeats"]}]
    if cfg["nfe_equal"] != UPSTREAM_DEFAULT_NFE and cfg["defaults_texts"]:
        configs.append(
            {
                "label": "defaults",
                "nfe": UPSTREAM_DEFAULT_NFE,
                "texts": cfg["defaults_texts"],
                "repeats": cfg["defaults_repeats"],
            }
        )
    job = {
        "model_dir": str(cfg["model_dir"]),
        "size": cfg["size"],
        "device": cfg["device"],
        "ref_wav": str(ref_wav),
        "ref_text": REFERENCE_TEXT,
        "seed": 0,
        "texts": TEXTS,
        "modes": ["infer", "stream"],
        "configs": configs,
        "threads": cfg["threads"],
        "warmup": True,
    }
    out: Path = cfg["out"]
    job_path, result_path, log_path = (
        out / "upstream-job.json",
        out / "upstream-result.json",
        out / "upstream.log",
    )
    write_json(job_path, job)
    result_path.unlink(missing_ok=True)
    print(f"Upstream: {len(configs)} configuration(s), log in {log_path}", flush=True)
    with open(log_path, "wb") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "ishowtts_dev.bench.upstream", str(job_path), str(result_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
            env=child_env(),
        )
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"upstream run failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}")
    import json

    data: dict[str, Any] = json.loads(result_path.read_text())
    return data


# ---------------------------------------------------------------------------------------------- our server
def server_args(cfg: dict[str, Any], config: str, voices_dir: Path, batch_requests: int = 1) -> list[str]:
    nfe = str(cfg["nfe_equal"]) if config == "equal" else "auto"
    precision = cfg["equal_precision"] if config == "equal" else "auto"
    args = [
        "--model-dir",
        str(cfg["model_dir"]),
        "--voices-dir",
        str(voices_dir),
        "--voice",
        VOICE,
        "--no-builtin-voice",
        "--cache-dir",
        str(cfg["out"] / f"cache-{config}"),
        "--audio-cache-mb",  # every repeat is timed as a synthesis (cache_hit.py times the cache)
        "0",
        "--device",
        cfg["device"],
        "--nfe",
        nfe,
        "--precision",
        precision,
    ]
    if cfg["threads"]:
        args += ["--threads", str(cfg["threads"])]
    if batch_requests > 1:
        args += ["--batch-requests", str(batch_requests)]
    return args + list(cfg.get("server_args", []))


async def run_server_config(
    cfg: dict[str, Any], config: str, voices_dir: Path, with_load: bool
) -> dict[str, Any]:
    """Start the server, warm it up with one uncounted request, time every text, then the load run."""
    args = server_args(cfg, config, voices_dir)
    record: dict[str, Any] = {"config": config, "args": args, "texts": {}, "events": {}}
    with ServerProcess(args, cfg["out"], config, cfg["device"]) as server:
        record["command"] = server.display_command
        print(f"Server ({config}): {record['command']}", flush=True)
        try:
            record["listening_s"] = await server.wait_listening()
            start = time.perf_counter()
            # Waits for the model load and the server's own warm-up, then warms the request path.
            await wy.synthesize(server.host, server.port, TEXTS[cfg["texts"][0]], VOICE)
            record["first_request_s"] = time.perf_counter() - start
            for name in cfg["texts"]:
                server.reset_peaks()
                runs = []
                for i in range(cfg["repeats"]):
                    others = OtherCpu([server.pid, "self"])
                    others.start()
                    timing = await wy.synthesize(server.host, server.port, TEXTS[name], VOICE)
                    runs.append({**timing.as_dict(), "others_cpu": others.stop()})
                    record["events"][f"{name}#{i}"] = {
                        "times": timing.timeline.times,
                        "audio": timing.timeline.audio,
                    }
                    print(
                        f"  ours {config} {name}: ttfa {timing.ttfa_s:.2f}s total {timing.total_s:.2f}s "
                        f"audio {timing.audio_s:.2f}s",
                        flush=True,
                    )
                rss, gpu = server.peaks()
                record["texts"][name] = {
                    "runs": runs,
                    "peak_rss_mb": rss,
                    "peak_gpu_mb": gpu,
                    **server.gpu_memory(),
                }
            if with_load and cfg["load"]:
                record["load"] = await load_run(server, cfg)
        except BaseException:
            _print_log_tail(server)
            raise
        finally:
            record["exit_code"] = server.stop()
    return record


def _print_log_tail(server: ServerProcess) -> None:
    print(f"Server log tail ({server.log_path}):\n{server.log_tail()}", file=sys.stderr)


async def run_batched_load(
    cfg: dict[str, Any], config: str, voices_dir: Path, batch_requests: int
) -> dict[str, Any]:
    """The load run again, on a server that samples up to `batch_requests` clients' chunks together."""
    args = server_args(cfg, config, voices_dir, batch_requests)
    with ServerProcess(args, cfg["out"], f"{config}-batch{batch_requests}", cfg["device"]) as server:
        print(f"Server ({config}, batch {batch_requests}): {server.display_command}", flush=True)
        try:
            await server.wait_listening()
            await wy.synthesize(server.host, server.port, TEXTS[cfg["load_text"]], VOICE)  # warm-up
            load = await load_run(server, cfg)
        except BaseException:
            _print_log_tail(server)
            raise
    return {"config": config, "batch_requests": batch_requests, "command": server.display_command, **load}


async def load_run(server: ServerProcess, cfg: dict[str, Any]) -> dict[str, Any]:
    """N clients connect, are released together, each sends the load text; a separate prober sends
    `describe` every 0.25 s on fresh connections for as long as they run."""
    text = TEXTS[cfg["load_text"]]
    idle = [await wy.describe(server.host, server.port) for _ in range(5)]
    levels = []
    for n in cfg["load"]:
        # An untimed burst of the same size first: a batched server's first batches of n would otherwise
        # be timed cold (kernels chosen and loaded, memory grown, graphs or compiled code built).
        warm = asyncio.Event()
        burst = [
            asyncio.create_task(wy.synthesize(server.host, server.port, text, VOICE, start_event=warm))
            for _ in range(n)
        ]
        await asyncio.sleep(0.3)
        warm.set()
        await asyncio.gather(*burst)
        server.reset_peaks()
        go = asyncio.Event()
        tasks = [
            asyncio.create_task(wy.synthesize(server.host, server.port, text, VOICE, start_event=go))
            for _ in range(n)
        ]
        await asyncio.sleep(0.3)  # let every client connect before the release
        latencies: list[float] = []
        done = asyncio.Event()

        async def probe(done: asyncio.Event = done, latencies: list[float] = latencies) -> None:
            while not done.is_set():
                latencies.append(await wy.describe(server.host, server.port))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.25)

        others = OtherCpu([server.pid, "self"])
        others.start()
        start = time.perf_counter()
        go.set()
        prober = asyncio.create_task(probe())
        timings = await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
        others_cpu = others.stop()
        done.set()
        await prober
        rss, gpu = server.peaks()
        memory = server.gpu_memory()
        audio = sum(t.audio_s for t in timings)
        level = {
            "clients": n,
            "ttfa_s": [t.ttfa_s for t in timings],
            "total_s": [t.total_s for t in timings],
            "audio_s": [t.audio_s for t in timings],
            "wall_s": wall,
            "throughput_audio_s_per_s": audio / wall,
            "describe_ms": {
                "n": len(latencies),
                "median": median(latencies) * 1000,
                "p95": percentile(latencies, 95) * 1000,
                "max": max(latencies) * 1000,
            },
            "peak_rss_mb": rss,
            "peak_gpu_mb": gpu,
            **memory,
            "others_cpu": others_cpu,
        }
        levels.append(level)
        print(
            f"  load {n} client(s): ttfa median {median(level['ttfa_s']):.2f}s max {max(level['ttfa_s']):.2f}s, "
            f"throughput {level['throughput_audio_s_per_s']:.2f} audio s/s, describe p95 "
            f"{level['describe_ms']['p95']:.1f} ms",
            flush=True,
        )
    return {"text": cfg["load_text"], "describe_idle_ms": median(idle) * 1000, "levels": levels}


# ---------------------------------------------------------------------------------------------- assembling
def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the runs, and the worst share of CPU other processes took during any of them."""
    out: dict[str, Any] = {
        key: median([r[key] for r in runs]) for key in ("ttfa_s", "total_s", "audio_s", "rtf")
    }
    others = [r["others_cpu"] for r in runs if r.get("others_cpu") is not None]
    out["others_cpu_max"] = max(others) if others else None
    return out


def _extrapolate(runs: list[dict[str, Any]], nfe: int) -> list[dict[str, Any]]:
    """Runs at `nfe` steps moved to 32 steps: only DiT time depends on the step count, so add the DiT-busy
    time times (32/nfe - 1). Fixed costs (text, vocoder, the thread pool) stay as measured."""
    scale = UPSTREAM_DEFAULT_NFE / nfe - 1
    out = []
    for r in runs:
        ttfa = r["ttfa_s"] + scale * r["dit_busy_at_first_s"]
        total = r["total_s"] + scale * r["dit_busy_s"]
        out.append(
            {
                "ttfa_s": ttfa,
                "total_s": total,
                "audio_s": r["audio_s"],
                "rtf": total / r["audio_s"],
                "others_cpu": r.get("others_cpu"),
            }
        )
    return out


def assemble(
    cfg: dict[str, Any], upstream: dict[str, Any] | None, ours: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    nfe = cfg["nfe_equal"]
    for config, record in ours.items():
        settings = f"nfe {nfe}, {cfg['equal_precision']}" if config == "equal" else "nfe auto, precision auto"
        for text, data in record["texts"].items():
            rows.append(
                {
                    "comparison": config,
                    "system": "ours",
                    "text": text,
                    "settings": settings,
                    "status": "measured",
                    **_summary(data["runs"]),
                    "runs": data["runs"],
                    "peak_rss_mb": data["peak_rss_mb"],
                    "peak_gpu_mb": data["peak_gpu_mb"],
                    "peak_gpu_reserved_mb": data.get("peak_gpu_reserved_mb"),
                    "gpu_smi_mb": data.get("gpu_smi_mb"),
                }
            )
    if upstream is not None:
        dtype = (
            upstream["dtype"]
            .replace("float32", "fp32")
            .replace("float16", "fp16")
            .replace("bfloat16", "bf16")
        )
        by_key = {(r["label"], r["mode"], r["text"]): r for r in upstream["results"]}
        for (label, mode, text), r in by_key.items():
            comparisons = [label] if nfe != UPSTREAM_DEFAULT_NFE else ["equal", "defaults"]
            for comparison in comparisons:
                rows.append(
                    {
                        "comparison": comparison,
                        "system": f"upstream-{mode}",
                        "text": text,
                        "settings": f"nfe {r['nfe']}, {dtype}",
                        "status": "measured",
                        **_summary(r["runs"]),
                        "runs": r["runs"],
                        "peak_rss_mb": r["peak_rss_mb"],
                        "peak_gpu_mb": r["peak_gpu_mb"],
                        "peak_gpu_reserved_mb": r.get("peak_gpu_reserved_mb"),
                        "gpu_smi_mb": r.get("gpu_smi_mb"),
                    }
                )
        if nfe != UPSTREAM_DEFAULT_NFE:
            for text in cfg["texts"]:
                for mode in ("infer", "stream"):
                    source = by_key.get(("equal", mode, text))
                    if source is None:
                        continue
                    guess = _extrapolate(source["runs"], nfe)
                    measured = by_key.get(("defaults", mode, text))
                    if measured is not None:  # how good is the extrapolation where both exist?
                        m, g = _summary(measured["runs"]), _summary(guess)
                        checks.append(
                            {
                                "mode": mode,
                                "text": text,
                                "measured_total_s": m["total_s"],
                                "extrapolated_total_s": g["total_s"],
                                "measured_ttfa_s": m["ttfa_s"],
                                "extrapolated_ttfa_s": g["ttfa_s"],
                            }
                        )
                        continue
                    rows.append(
                        {
                            "comparison": "defaults",
                            "system": f"upstream-{mode}",
                            "text": text,
                            "settings": f"nfe {UPSTREAM_DEFAULT_NFE}, {dtype}",
                            "status": "extrapolated",
                            **_summary(guess),
                            "runs": guess,
                            "peak_rss_mb": None,
                            "peak_gpu_mb": None,
                            "note": f"from the nfe {nfe} runs: time + DiT-busy time x ({UPSTREAM_DEFAULT_NFE}"
                            f"/{nfe} - 1); not measured",
                        }
                    )
    return {"rows": rows, "ratios": ratios(rows), "extrapolation_checks": checks}


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ours / upstream per comparison and text. Time to first audio is compared with upstream's streaming
    first piece; total time with the faster of upstream's two paths (the stricter reading)."""
    index = {(r["comparison"], r["system"], r["text"]): r for r in rows}
    out = []
    for (comparison, system, text), ours in index.items():
        if system != "ours":
            continue
        stream = index.get((comparison, "upstream-stream", text))
        infer = index.get((comparison, "upstream-infer", text))
        if stream is None or infer is None:
            continue
        best = min(stream, infer, key=lambda r: r["total_s"])
        entry: dict[str, Any] = {
            "comparison": comparison,
            "text": text,
            "ttfa_vs_upstream_stream": ours["ttfa_s"] / stream["ttfa_s"],
            # Conservative: against whichever upstream path produced audio first in this run.
            "ttfa_vs_upstream_best": ours["ttfa_s"] / min(stream["ttfa_s"], infer["ttfa_s"]),
            "total_vs_upstream_infer": ours["total_s"] / infer["total_s"],
            "total_vs_upstream_stream": ours["total_s"] / stream["total_s"],
            "total_vs_upstream_best": ours["total_s"] / best["total_s"],
            "rtf_vs_upstream_best": ours["rtf"] / min(stream["rtf"], infer["rtf"]),
            "upstream_status": "extrapolated"
            if "extrapolated" in (stream["status"], infer["status"])
            else "measured",
        }
        if text == "medium":
            for metric, key in (("ttfa", "ttfa_vs_upstream_stream"), ("total", "total_vs_upstream_best")):
                target = TARGETS.get((comparison, metric))
                if target is not None:
                    entry[f"{metric}_target"] = target
                    entry[f"{metric}_target_met"] = bool(entry[key] <= target)
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    cfg = resolve(args)
    out: Path = cfg["out"]
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "date": utc_now(),
        "command": shlex.join(["script/bench", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in cfg.items()},
        "texts": {name: TEXTS[name] for name in cfg["texts"]},
        "reference": {"seconds": REFERENCE_SECONDS, "transcript": REFERENCE_TEXT, "synthetic": True},
    }
    ensure_model(cfg)
    voices_dir = out / "voices"
    voice_dir = write_voice(voices_dir, VOICE, seed=0)

    upstream = None if cfg["skip_upstream"] else run_upstream(cfg, voice_dir / "reference.wav")
    ours: dict[str, dict[str, Any]] = {}
    for config in ("equal", "defaults"):
        ours[config] = asyncio.run(
            run_server_config(cfg, config, voices_dir, with_load=config == cfg["load_config"])
        )
    result = {"meta": meta, **assemble(cfg, upstream, ours)}
    result["servers"] = {
        config: {k: v for k, v in rec.items() if k not in ("texts", "events", "load")}
        for config, rec in ours.items()
    }
    load = ours[cfg["load_config"]].get("load")
    result["load"] = None if load is None else {"config": cfg["load_config"], "batch_requests": 1, **load}
    result["load_batched"] = [
        asyncio.run(run_batched_load(cfg, cfg["load_config"], voices_dir, n))
        for n in (cfg["load_batch"] if cfg["load"] else [])
    ]
    if upstream is not None:
        result["upstream"] = {k: v for k, v in upstream.items() if k != "results"}
    meta["elapsed_s"] = time.perf_counter() - started
    events = {config: rec["events"] for config, rec in ours.items()}
    text = write_outputs(result, events, out)
    print(text)
    bad = [r for r in result["rows"] for k in ("ttfa_s", "total_s", "audio_s") if not math.isfinite(r[k])]
    if bad:
        raise SystemExit(f"non-finite figures in {len(bad)} row(s)")


if __name__ == "__main__":
    main()
