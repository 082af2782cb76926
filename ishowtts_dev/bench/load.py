"""Model load time of two checkouts, interleaved: each round loads the engine once with each, in a fresh
process, so that drift of a shared machine hits both alike.

    python -m ishowtts_dev.bench.load --model-dir DIR --checkout OLD --checkout NEW --rounds 5

Each process imports the package first (not timed) and then times ``Engine.load`` (the server's start-up
before its warm-up: files read, the DiT and Vocos built, weights in place, cast, moved), the way the server
calls it. Reports each checkout's median wall time, its runs, the median CPU time of the process (all
threads; steadier than wall time on a shared machine) and the ratios of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from .measure import median

_CHILD = """
import json, sys, time
from pathlib import Path
from wyoming_ishowtts.engine import Engine, EngineSettings
started, cpu = time.perf_counter(), time.process_time()
engine = Engine.load(EngineSettings(model_dir=Path(sys.argv[1]), device="cpu", precision=sys.argv[2],
                                    warmup=False))
import wyoming_ishowtts
print(json.dumps({"load_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu,
                  "dtype": str(engine.dtype), "package": str(Path(wyoming_ishowtts.__file__).parent)}))
"""


def load_once(checkout: Path, model_dir: Path, precision: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(model_dir), precision],
        env=env,
        cwd=checkout,  # `python -c` puts the working folder first on the path: it must be the checkout
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    if Path(str(result["package"])).resolve() != (checkout / "wyoming_ishowtts").resolve():
        raise SystemExit(f"{checkout}: the child imported {result['package']}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--checkout", type=Path, action="append", required=True, help="twice: old, new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args(argv)
    runs: dict[str, list[float]] = {str(c): [] for c in args.checkout}
    cpu: dict[str, list[float]] = {str(c): [] for c in args.checkout}
    dtypes: dict[str, object] = {}
    for _ in range(args.rounds):
        for checkout in args.checkout:
            result = load_once(checkout.resolve(), args.model_dir, args.precision)
            runs[str(checkout)].append(float(str(result["load_s"])))
            cpu[str(checkout)].append(float(str(result["cpu_s"])))
            dtypes[str(checkout)] = result["dtype"]
    medians = {c: median(times) for c, times in runs.items()}
    cpus = {c: median(times) for c, times in cpu.items()}
    for checkout, times in runs.items():
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(
            f"{checkout}: median {medians[checkout]:.2f} s wall, {cpus[checkout]:.2f} s CPU "
            f"({dtypes[checkout]}; wall runs {shown})"
        )
    if len(medians) == 2:
        (old, new), (old_cpu, new_cpu) = medians.values(), cpus.values()
        print(f"new / old: {new / old:.2f} wall, {new_cpu / old_cpu:.2f} CPU")


if __name__ == "__main__":
    main()
