"""The soak run (``script/soak``) in small: its report must show every promise it makes, kept."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import PYTHON, ROOT

from ishowtts_dev.soak import EXPECTED_CODE, GOOD_KINDS


def test_small_soak_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "ishowtts_dev.soak",
            "--requests",
            "30",
            "--clients",
            "2",
            "--warmup-requests",
            "10",
            "--model-dir",
            str(tiny_model_dir),
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["requests"] == 30 and sum(report["by_kind"].values()) == 30
    good = sum(report["by_kind"].get(kind, 0) for kind in GOOD_KINDS)
    assert good > 0 and report["good_requests"] == good
    assert report["good_served_full_audio"] == good and report["all_good_served"]
    assert report["audio_seconds_served"] > good  # every good text is longer than a second
    assert report["problems"] == []
    bad = {kind: n for kind, n in report["by_kind"].items() if kind in EXPECTED_CODE}
    assert report["bad_answered_as_expected"] == sum(bad.values())
    # Errors by code: exactly the codes the bad requests ask for, as often as they were sent.
    expected_codes: dict[str, int] = {}
    for kind, n in bad.items():
        expected_codes[EXPECTED_CODE[kind]] = expected_codes.get(EXPECTED_CODE[kind], 0) + n
    assert report["errors_by_code"] == expected_codes
    assert report["server_alive_until_stop"] and report["server_exit_code"] == 0
    for key in ("rss_mib_at_start", "rss_mib_after_warmup", "rss_mib_peak", "rss_mib_final"):
        assert report[key] > 50, key  # a real process with PyTorch loaded, measured
    # The memory figures are the samples' (not made up), and the promise they stand for was kept.
    samples = [value for _, value in report["rss_samples"]]
    assert len(samples) > 5
    assert report["rss_mib_peak"] == max(samples)
    assert report["rss_mib_final"] in samples[-2:]  # the sampler may take one more before it stops
    assert report["rss_mib_after_warmup"] in samples
    growth = report["rss_mib_final"] - report["rss_mib_after_warmup"]
    assert abs(report["rss_growth_after_warmup_mib"] - growth) <= 0.1 + 1e-9
    flat = report["rss_growth_after_warmup_mib"] <= max(32.0, 0.10 * report["rss_mib_after_warmup"])
    assert report["memory_flat"] is flat
    assert report["memory_flat"], f"memory grew {growth:.1f} MiB after the warm-up"
