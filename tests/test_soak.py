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
    assert report["rss_mib_peak"] >= report["rss_mib_final"]
    assert len(report["rss_samples"]) > 5
    assert isinstance(report["memory_flat"], bool)
