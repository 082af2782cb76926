"""Smoke test of the text front end's benchmark (``python -m ishowtts_dev.bench.text``): it runs, with a
tiny repeat count, and every figure it writes is well formed. It asserts nothing about speed: timings on a
shared CI machine mean nothing (BENCHMARKS.md, "Text front end", has the figures)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from ishowtts_dev.bench.text import ANSWERS

ROOT = Path(__file__).resolve().parents[1]


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_text_benchmark_runs_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "text.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ishowtts_dev.bench.text",
            "--repeats",
            "2",
            "--import-runs",
            "1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["meta"]["date"] and result["meta"]["command"].startswith(
        "python -m ishowtts_dev.bench.text"
    )
    rows = {row["language"]: row for row in result["normalize"]}
    assert set(rows) == set(ANSWERS) == {"en", "zh"}
    for language, row in rows.items():
        assert row["chars"] == len(ANSWERS[language]) >= 400  # the figure is per 500 characters
        for key in ("median_ms", "ms_per_500_chars", "stream_median_ms"):
            assert _positive(row[key]), (language, key, row[key])
        assert row["spoken"] and not any(char.isdigit() and char.isascii() for char in row["spoken"])
    imported = result["import"]
    assert _positive(imported["python_import_ms"]) and _positive(imported["python_pass_ms"])
    assert _positive(imported["importtime_cumulative_ms"])  # -X importtime's line for the package was found
    assert imported["imports_torch"] is False
    assert "import wyoming_ishowtts.text: adds" in done.stdout
