"""Time to first audio of an audio-cache hit against a miss, over Wyoming, on the real server.

    python -m ishowtts_dev.bench.cache_hit [--model-dir DIR | --size base] [--hits 20] [--misses 3]
        [--text short] [--threads N] [--out bench-results/cache-hit]

The server runs unmodified (``python -m wyoming_ishowtts``, its defaults: ``--nfe auto``, the cache on)
in a subprocess with a fresh cache folder, and is driven by the benchmark's measuring client
(`client.synthesize`: one connection per request, the clock from writing ``synthesize`` to the first
``audio-chunk``). One request that is not counted prepares the voice. Then ``--misses`` texts never said
before (the benchmark text with "Reply N." after it, so each is new to the cache) and ``--hits`` repeats of
the first of them, one at a time. Each figure is a median; the hit's target is 20 ms (issue 22).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path
from typing import Any

from wyoming_ishowtts.arguments import positive_int

from ..launcher import ServerProcess
from . import client as wy
from .measure import machine_info, median, percentile, utc_now, write_json
from .texts import TEXTS, write_voice

HIT_TARGET_S = 0.020
VOICE = "bench"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: a random model of --size")
    parser.add_argument("--size", choices=("base", "tiny"), default="base")
    parser.add_argument("--text", default="short", choices=sorted(TEXTS))
    parser.add_argument("--hits", type=positive_int, default=20)
    parser.add_argument("--misses", type=positive_int, default=3)
    parser.add_argument("--threads", type=positive_int, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench-results/cache-hit"))
    args = parser.parse_args(argv)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir or out.parent / f"model-{args.size}"
    if not (model_dir / "model.safetensors").exists():
        from wyoming_ishowtts.tools.random_model import write_random_model

        print(f"Writing a random {args.size} model to {model_dir} (reused by later runs)", flush=True)
        write_random_model(model_dir, args.size, seed=0)
    voices = out / "voices"
    write_voice(voices, VOICE)
    cache = out / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # every text starts as a miss
    server_args = [
        "--model-dir",
        str(model_dir),
        "--voices-dir",
        str(voices),
        "--voice",
        VOICE,
        "--no-builtin-voice",
        "--cache-dir",
        str(cache),
        "--device",
        "cpu",
        *(["--threads", str(args.threads)] if args.threads else []),
    ]
    text = TEXTS[args.text]
    with ServerProcess(server_args, out / "server.log", stop_timeout=30.0) as server:
        server.wait_for_log("Model ready", 600)
        report = asyncio.run(_measure(server, text, args.misses, args.hits))
    report.update(
        {
            "when": utc_now(),
            "machine": machine_info(),
            "model": args.size if args.model_dir is None else str(model_dir),
            "text": args.text,
            "server_args": server_args,
        }
    )
    write_json(out / "cache-hit.json", report)
    hit, miss = report["hit_ttfa_s"], report["miss_ttfa_s"]
    print(
        f"time to first audio over Wyoming, {args.text} text: cache hit {hit * 1000:.1f} ms (median of "
        f"{args.hits}; p90 {report['hit_ttfa_p90_s'] * 1000:.1f} ms), miss {miss:.2f} s (median of "
        f"{args.misses}); hit/miss {hit / miss:.5f}; target hit < {HIT_TARGET_S * 1000:.0f} ms: "
        f"{'met' if hit < HIT_TARGET_S else 'NOT met'}"
    )


async def _measure(server: ServerProcess, text: str, misses: int, hits: int) -> dict[str, Any]:
    async def ask(words: str) -> wy.SynthesisTiming:
        return await wy.synthesize(server.host, server.port, words, VOICE)

    await ask("Preparing the voice, not counted.")
    miss_runs = [await ask(f"{text} Reply {i + 1}.") for i in range(misses)]
    hit_runs = [await ask(f"{text} Reply 1.") for _ in range(hits)]
    assert all(abs(h.audio_s - miss_runs[0].audio_s) < 1e-9 for h in hit_runs), "a hit is not the same audio"
    hit_ttfa = [run.ttfa_s for run in hit_runs]
    return {
        "miss_ttfa_s": median([run.ttfa_s for run in miss_runs]),
        "miss_runs": [run.as_dict() for run in miss_runs],
        "hit_ttfa_s": median(hit_ttfa),
        "hit_ttfa_p90_s": percentile(hit_ttfa, 90),
        "hit_runs": [run.as_dict() for run in hit_runs],
        "audio_s": miss_runs[0].audio_s,
        "target_hit_s": HIT_TARGET_S,
    }


if __name__ == "__main__":
    main()
