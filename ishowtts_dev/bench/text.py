"""Benchmark of the text front end (issue 20): what normalizing an answer and importing the package cost.

    python -m ishowtts_dev.bench.text                   # 200 repeats, 10 fresh interpreters
    python -m ishowtts_dev.bench.text --repeats 2 --import-runs 1 --json out.json   # smoke (tests/test_bench_text.py)

* **normalize**: `spoken(text, language)` on a realistic Home Assistant / LLM answer of about 500 characters
  (numbers, units, times, dates, money, Markdown, an emoji), English and Chinese; the median of `--repeats`
  calls after one warm-up, and the same per 500 characters. **stream**: the same text through a
  `SpokenStream` in deltas of 4 characters (an LLM's tokens), all sentences out.
* **import**: a fresh interpreter running ``import wyoming_ishowtts.text`` minus one running ``pass`` (the
  median of `--import-runs` each, interleaved), and ``-X importtime``'s cumulative figure for the package.

Targets (issue 20): under 5 ms per 500 characters; the import adds under 150 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from wyoming_ishowtts.text import SpokenStream, spoken

from .measure import _cpu_model, median, utc_now, write_json

ROOT = Path(__file__).resolve().parents[2]
TARGET_MS_PER_500 = 5.0
TARGET_IMPORT_MS = 150.0
DELTA_CHARS = 4

ANSWERS = {
    "en": (
        "It's currently 21.5 °C in the living room and the humidity is 45%. The thermostat is set to 22 °C, "
        "and the heating stops at 10:30 PM. **Energy today:** 3.2 kWh (about $0.85 at $0.27/kWh). Your next "
        "event is on December 7, 2026 at 3:45 PM: *Dentist with Dr. Smith*. The front door has been locked "
        "since 7 am, and 3 of 12 lights are on. Wind: 15 km/h, pressure 1,013 hPa, PM2.5 at 8 µg/m³. The "
        "washer finishes at 14:05 and the 2nd floor is 19.8 °C. 🙂 Want me to turn off the lights?"
    ),
    "zh": (
        "客厅现在的温度是21.5°C，湿度45%。空调设为22°C，将在下午10点30分关闭。**今日用电：**3.2kWh，大约0.85元。"
        "你的下一个日程是2026年12月7日下午3点45分：*看牙医*。前门从早上7点起一直锁着，12盏灯中有3盏开着。"
        "风速15km/h，气压1,013hPa，PM2.5为8µg/m³。洗衣机将在14:05洗完，二楼的温度是19.8°C。😊 需要我帮你关灯吗？"
        "卧室的温度是19.2°C，比客厅低2.3度。扫地机器人已经清扫了35分钟，电量还剩68%。明天的气温是-2°C到5°C，"
        "降水概率30%，请注意保暖。本月用电共计256.4kWh，比上个月少了12%，电费约为128.2元。车库门已于18:45关闭，"
        "后院的摄像头在过去2小时内检测到了3次移动。冰箱的温度是4°C，冷冻室是-18°C。系统版本v2026.12.1已经安装完毕，"
        "共有5个设备需要更新，请在2026-12-08之前完成。"
    ),
}


def time_normalize(text: str, language: str, repeats: int) -> dict[str, Any]:
    spoken(text, language)  # warm-up: compiles the patterns' caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        spoken(text, language)
        times.append(time.perf_counter() - started)
    stream_times = []
    deltas = [text[i : i + DELTA_CHARS] for i in range(0, len(text), DELTA_CHARS)]
    for _ in range(max(1, repeats // 4)):
        started = time.perf_counter()
        stream = SpokenStream(language)
        for delta in deltas:
            stream.add(delta)
        stream.finish()
        stream_times.append(time.perf_counter() - started)
    ms = median(times) * 1000
    return {
        "language": language,
        "chars": len(text),
        "repeats": repeats,
        "median_ms": ms,
        "ms_per_500_chars": ms * 500 / len(text),
        "stream_median_ms": median(stream_times) * 1000,
        "spoken": spoken(text, language),
    }


def _run(code: str, importtime: bool = False) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", code]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return time.perf_counter() - started, done.stderr


def time_import(runs: int) -> dict[str, Any]:
    bare, loaded = [], []
    for _ in range(runs):  # interleaved, so that a busy moment hits both alike
        bare.append(_run("pass")[0])
        loaded.append(_run("import wyoming_ishowtts.text")[0])
    _, report = _run("import wyoming_ishowtts.text", importtime=True)
    # "import time: self [us] | cumulative | name": the package's own line
    line = re.search(r"^import time:\s*\d+ \|\s*(\d+) \| wyoming_ishowtts\.text$", report, re.MULTILINE)
    torch_loaded = "| torch" in report
    return {
        "runs": runs,
        "python_pass_ms": median(bare) * 1000,
        "python_import_ms": median(loaded) * 1000,
        "import_adds_ms": (median(loaded) - median(bare)) * 1000,
        "importtime_cumulative_ms": int(line[1]) / 1000 if line else None,
        "imports_torch": torch_loaded,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=200, help="normalizations timed per language")
    parser.add_argument("--import-runs", type=int, default=10, help="fresh interpreters per import figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.import_runs < 1:
        parser.error("--repeats and --import-runs must be at least 1")

    rows = [time_normalize(ANSWERS[language], language, args.repeats) for language in ANSWERS]
    imported = time_import(args.import_runs)
    meta = {
        "date": utc_now(),
        "command": "python -m ishowtts_dev.bench.text "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    print(f"{meta['date']}  {meta['cpu']} ({meta['cpu_count']} CPUs), Python {meta['python']}")
    print(
        f"{'text':6} {'chars':>5} {'median ms':>10} {'ms/500 chars':>13} {'stream ms':>10}  target < {TARGET_MS_PER_500} ms/500"
    )
    for row in rows:
        print(
            f"{row['language']:6} {row['chars']:5d} {row['median_ms']:10.2f} {row['ms_per_500_chars']:13.2f} "
            f"{row['stream_median_ms']:10.2f}"
        )
    print(
        f"import wyoming_ishowtts.text: adds {imported['import_adds_ms']:.0f} ms to a bare interpreter "
        f"({imported['python_import_ms']:.0f} vs {imported['python_pass_ms']:.0f} ms, median of "
        f"{imported['runs']}); -X importtime cumulative {imported['importtime_cumulative_ms']} ms; "
        f"torch imported: {imported['imports_torch']}  (target < {TARGET_IMPORT_MS:.0f} ms)"
    )
    if args.json:
        write_json(args.json, {"meta": meta, "normalize": rows, "import": imported})
    return 0


if __name__ == "__main__":
    sys.exit(main())
