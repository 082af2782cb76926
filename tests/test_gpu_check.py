"""script/gpu-check, the one-command GPU proof, kept from rotting on a machine without a GPU.

The smoke run executes `script/gpu-check --device cpu --quick` exactly as a user would, with every process it
starts (stages, the server, upstream f5-tts) held to the packages the lent GPU machine would have: its image's
list plus the wheels script/gpu-wheels carries (a sitecustomize installs `ishowtts_dev.gpu.wheels.simulate_device`). A
package the carried set forgets therefore fails here, not on the device's fifteen minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ishowtts_dev.gpu import __main__ as gpu_check
from ishowtts_dev.gpu import wheels as gpu_wheels
from ishowtts_dev.gpu.stages import worst_gap_s
from wyoming_ishowtts.engine.hardware import arch_supported

ROOT = Path(__file__).resolve().parents[1]


def _device_env(tmp: Path, carried: bool = True) -> dict[str, str]:
    """An environment whose Pythons import only what the lent machine would have (with `carried`: once the
    carried wheels are installed; without: its image alone)."""
    sim = tmp / "device-sim"
    sim.mkdir(exist_ok=True)
    (sim / "sitecustomize.py").write_text(
        f"from ishowtts_dev.gpu.wheels import simulate_device\nsimulate_device(carried={carried})\n"
    )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(sim)])}


upstream = pytest.mark.upstream  # the quick run times upstream f5-tts too (the reference extra)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    tmp = tmp_path_factory.mktemp("gpu-check")
    out = tmp / "out"
    proc = subprocess.run(
        [
            str(ROOT / "script" / "gpu-check"),
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(out),
            "--work",
            str(tmp / "work"),
            "--wheels",
            str(tmp / "no-wheels"),  # everything carried is installed here already; placeholders are not
        ],
        cwd=ROOT,
        env={**_device_env(tmp), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), out, proc.stdout


@upstream
def test_quick_run_passes_every_stage_and_writes_four_files(
    quick_run: tuple[dict[str, Any], Path, str],
) -> None:
    result, out, stdout = quick_run
    assert sorted(p.name for p in out.iterdir()) == ["chart.png", "results.json", "stages.log", "table.txt"]
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ["install", *(s.name for s in gpu_check.STAGES)] == list(result["stages"])
    for name, stage in result["stages"].items():
        assert stage["status"] == "ok", (name, stage["status"])
        assert all(check["ok"] for check in stage["checks"]), (name, stage["checks"])
    assert "targets (issue 12" in stdout and "not judged (cpu run)" in stdout


@upstream
def test_quick_run_ran_upstream_on_the_device_package_set(
    quick_run: tuple[dict[str, Any], Path, str],
) -> None:
    """The simulation hid wandb and cached_path, gpu-check wrote its placeholders, and upstream still ran."""
    result, _, _ = quick_run
    assert result["meta"]["placeholders"] == ["wandb", "cached_path"]
    values = result["stages"]["upstream"]["values"]
    assert values["upstream_infer"]["audio_s"] > 0 and values["ours_engine"]["audio_s"] > 0
    assert values["throughput_ratio"]["ours_over_upstream"] > 0


@upstream
def test_quick_run_measures_what_the_targets_name(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    result, _, _ = quick_run
    figure = result["figures"]
    assert figure["short_ttfa_s"] > 0 and figure["long_rtf"] > 0
    assert figure["clients_ahead_of_playback"]["clients"] == 2
    assert figure["cuda_fp32_vs_cpu_relative"] == 0.0  # cpu against cpu: the same computation
    assert figure["fp16_snr_db"] > 0
    verdicts = {row["target"]: row["verdict"] for row in result["targets"]}
    assert verdicts["short_ttfa_s"] == "not judged (cpu run)"
    assert verdicts["fp16_long_peak_reserved_mib"] == "not measured"  # no GPU memory on a CPU


def test_a_hanging_stage_is_killed_with_its_children_at_its_limit(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    hang = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        time.sleep(300)
        """
    )
    started = time.monotonic()
    status, seconds = gpu_check.run_stage(
        [sys.executable, "-c", hang], tmp_path / "log", 3.0, dict(os.environ)
    )
    assert status == "timed out at 3 s" and seconds < 30 and time.monotonic() - started < 30
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{child}/stat").read_text()
        if stat[stat.rindex(")") + 2] == "Z":
            break  # killed, waiting for its reaper
        time.sleep(0.1)
    else:
        assert not Path(f"/proc/{child}").exists(), "the stage's child outlived its limit"


def test_a_stage_that_fails_is_reported_with_its_exit_status(tmp_path: Path) -> None:
    status, _ = gpu_check.run_stage([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "log", 30, {})
    assert status == "failed (exit 3)"


def test_worst_gap_against_a_player_that_starts_at_the_first_chunk() -> None:
    # chunks of 1 s of audio: the second arrives 0.5 s after the first (needed at 1 s): 0.5 s ahead
    assert worst_gap_s([0.0, 0.5], [1.0, 1.0]) == pytest.approx(-0.5)
    # the third arrives at 2.5 s, needed at 2 s: 0.5 s late, whatever came before
    assert worst_gap_s([0.2, 0.3, 2.7], [1.0, 1.0, 1.0]) == pytest.approx(0.5)
    assert worst_gap_s([0.1], [1.0]) is None


def test_arch_list_against_the_gpu() -> None:
    h100, jetson_orin, blackwell = (9, 0), (8, 7), (12, 0)
    cu130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    assert arch_supported(h100, cu130)
    assert arch_supported(jetson_orin, cu130)  # sm_86 cubins run on 8.7
    assert not arch_supported((6, 1), cu130)  # a GTX 10xx: no kernels, no PTX old enough
    assert not arch_supported(blackwell, ["sm_80", "sm_90a"])  # sm_90a is Hopper-only
    assert arch_supported(blackwell, ["sm_80", "compute_90"])  # PTX: the driver compiles it


def test_targets_report_met_and_by_how_much_they_are_missed() -> None:
    figure = {
        "short_ttfa_s": 0.123,
        "long_rtf": 0.008,
        "throughput_vs_upstream": 2.4,
        "clients_ahead_of_playback": {"clients": 8, "all_ahead": True, "worst_gap_s": [-0.2, None]},
        "fp16_long_peak_reserved_mib": None,
        "cuda_fp32_vs_cpu_relative": 3e-5,
        "fp16_snr_db": 31.0,
    }
    verdicts = {row["target"]: row["verdict"] for row in gpu_check.judge(figure, cuda=True)}
    assert verdicts == {
        "short_ttfa_s": "missed by 43 ms",
        "long_rtf": "met",
        "throughput_vs_upstream": "missed (0.80 of the goal)",
        "clients_ahead_of_playback": "met",
        "fp16_long_peak_reserved_mib": "not measured",
        "cuda_fp32_vs_cpu_relative": "met",
        "fp16_snr_db": "reported",
    }
    late = {**figure, "clients_ahead_of_playback": {"clients": 8, "all_ahead": False, "worst_gap_s": [0.3]}}
    verdicts = {row["target"]: row["verdict"] for row in gpu_check.judge(late, cuda=True)}
    assert verdicts["clients_ahead_of_playback"] == "missed"


def test_device_simulation_hides_what_the_machine_lacks(tmp_path: Path) -> None:
    probe = (
        "import importlib.util, importlib.metadata as m\n"
        "print(importlib.util.find_spec('wandb') is None, importlib.util.find_spec('numpy') is not None)\n"
        "try:\n    m.version('wandb'); print(False)\nexcept m.PackageNotFoundError:\n    print(True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=_device_env(tmp_path), capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "True", "True"]


def test_wheel_set_is_checked_for_completeness_and_size(tmp_path: Path) -> None:
    for name in gpu_wheels.WHEELS:
        (tmp_path / f"{name.replace('-', '_')}-1.0-py3-none-any.whl").write_bytes(b"x")
    gpu_wheels.check_set(sorted(tmp_path.glob("*.whl")))
    (tmp_path / "extra-1.0-py3-none-any.whl").write_bytes(b"x")
    with pytest.raises(SystemExit, match="differs"):
        gpu_wheels.check_set(sorted(tmp_path.glob("*.whl")))


# ---------------------------------------------------------------------------------------------- what a cut run leaves
def _gpu_check(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """script/gpu-check in a process group of its own (so a kill takes its stages and servers too)."""
    return subprocess.Popen(
        [str(ROOT / "script" / "gpu-check"), "--out", str(tmp / "out"), "--work", str(tmp / "work"), *args],
        cwd=ROOT,
        env={**(env or _device_env(tmp)), "PYTHON": sys.executable},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _killed(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def test_a_run_killed_after_its_first_stage_leaves_that_stage_in_results_and_table(tmp_path: Path) -> None:
    """SIGKILL (what a device call at its limit does) gives no chance to write anything at the end: the
    first stage's row must already be on disk when the second starts. The plan is printed first."""
    proc = _gpu_check(tmp_path, "--device", "cpu", "--quick", "--wheels", str(tmp_path / "no-wheels"))
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("== paths"):
                break
        else:
            pytest.fail(
                "gpu-check ended before its second stage: " + "".join(lines) + str(proc.communicate())
            )
    finally:
        _killed(proc)
    text = "".join(lines)
    assert text.index("gpu-check plan (cpu") < text.index("== setup") and "fits the" in text
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    setup = result["stages"]["setup"]
    assert setup["status"] == "ok" and [c["name"] for c in setup["checks"]] == ["models-and-voices-written"]
    table = (tmp_path / "out" / "table.txt").read_text()
    assert re.search(r"^setup +ok ", table, re.MULTILINE), table
    assert "===== stage-setup.log" in (tmp_path / "out" / "stages.log").read_text()


def test_sigterm_mid_stage_kills_the_stage_and_leaves_it_as_a_killed_row(tmp_path: Path) -> None:
    """SIGTERM to gpu-check alone (its stage runs in a session of its own): the stage goes with it, and
    the row says so, with the figures the stage had written."""
    proc = _gpu_check(tmp_path, "--device", "cpu", "--quick", "--wheels", str(tmp_path / "no-wheels"))
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("== paths"):
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 128 + signal.SIGTERM
    finally:
        _killed(proc)
    stages = json.loads((tmp_path / "out" / "results.json").read_text())["stages"]
    assert stages["setup"]["status"] == "ok" and stages["paths"]["status"] == "killed (SIGTERM)"
    config = str(tmp_path / "work" / "config.json")
    left = subprocess.run(["pgrep", "-f", config], capture_output=True, text=True).stdout.split()
    assert left == [], "the stage outlived gpu-check"


def test_a_failed_stage_is_a_failed_row_and_the_other_stages_still_run(tmp_path: Path) -> None:
    proc = _gpu_check(
        tmp_path,
        "--device",
        "cpu",
        "--quick",
        "--wheels",
        str(tmp_path / "no-wheels"),
        "--only",
        "setup,paths,equivalence",
        "--fail",
        "paths",
    )
    try:
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        _killed(proc)
    assert proc.returncode == 1, stdout[-3000:] + stderr[-2000:]
    stages = json.loads((tmp_path / "out" / "results.json").read_text())["stages"]
    assert list(stages) == ["install", "setup", "paths", "equivalence"]
    assert stages["paths"]["status"] == "failed (exit 1)"
    assert stages["setup"]["status"] == stages["equivalence"]["status"] == "ok"
    assert all(c["ok"] for c in stages["equivalence"]["checks"]) and stages["equivalence"]["checks"]
    table = (tmp_path / "out" / "table.txt").read_text()
    assert re.search(r"^paths +failed \(exit 1\)", table, re.MULTILINE), table
    assert re.search(r"^equivalence +ok ", table, re.MULTILINE), table
    assert "failed on purpose (--fail)" in (tmp_path / "out" / "stages.log").read_text()
    assert "1 problem(s): paths (failed (exit 1))" in stdout


def _one_sentence_and_fast(proc: subprocess.Popen[str], started: float) -> str:
    try:
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        _killed(proc)
    assert time.monotonic() - started < 30
    assert proc.returncode == 2, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: "), stderr
    return lines[0]


def test_cuda_run_without_the_wheel_set_stops_at_once_before_touching_the_gpu(tmp_path: Path) -> None:
    """The device's own Python (simulated: only its image's packages) with no .gpu-wheels/."""
    empty = tmp_path / "wheels"
    empty.mkdir()
    (empty / "wyoming-1.0-py3-none-any.whl").write_bytes(b"cut off by a copy")  # a wheel, but damaged
    started = time.monotonic()
    bare = _device_env(tmp_path, carried=False)
    proc = _gpu_check(tmp_path, "--device", "cuda", "--wheels", str(empty), env=bare)
    line = _one_sentence_and_fast(proc, started)
    assert "missing or incomplete" in line and "script/gpu-wheels" in line and "wyoming" in line
    assert "damaged: wyoming-1.0-py3-none-any.whl" in line
    stages = json.loads((tmp_path / "out" / "results.json").read_text())["stages"]
    assert list(stages) == ["install"] and stages["install"]["status"] == "failed: wheel set incomplete"
    assert not (tmp_path / "work" / "site").exists()  # nothing installed, no probe of the GPU
    assert "install" in (tmp_path / "out" / "table.txt").read_text()


def test_cuda_run_on_a_machine_without_cuda_stops_at_once(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the run would start")
    started = time.monotonic()
    proc = _gpu_check(tmp_path, "--device", "cuda", "--wheels", str(tmp_path / "no-wheels"))
    line = _one_sentence_and_fast(proc, started)
    assert line == "gpu-check: --device cuda, but torch sees no CUDA GPU here"
    stages = json.loads((tmp_path / "out" / "results.json").read_text())["stages"]
    assert stages["probe"]["status"] == "failed: no CUDA GPU" and "setup" not in stages


@pytest.mark.parametrize("cuda", [True, False], ids=["cuda", "cpu"])
def test_the_required_stages_fit_the_budget_most_important_first(cuda: bool) -> None:
    required = [s for s in gpu_check.STAGES if not s.optional]
    total = gpu_check.INSTALL_S[cuda] + sum(gpu_check.limit_of(s, cuda) for s in required)
    assert total <= gpu_check.BUDGET_S[cuda]
    lines = gpu_check.plan_lines(cuda, gpu_check.BUDGET_S[cuda], [s.name for s in gpu_check.STAGES])
    assert lines[-1].endswith(f"{total} s, fits the {gpu_check.BUDGET_S[cuda]} s budget")
    names = [s.name for s in gpu_check.STAGES]
    assert names[:6] == ["setup", "paths", "graph-speed", "server", "server-graphs", "upstream"]
    assert all(s.optional for s in gpu_check.STAGES[len(required) :])  # optional stages last
    if cuda:
        assert gpu_check.BUDGET_S[cuda] <= 400


def test_a_table_that_cannot_be_formatted_still_leaves_results_and_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(result: dict[str, Any]) -> str:
        raise KeyError("injected")

    monkeypatch.setattr(gpu_check, "format_table", broken)
    args = gpu_check.build_parser().parse_args(["--device", "cpu"])
    run = gpu_check.Run(args, ["--device", "cpu"], tmp_path, tmp_path)
    run.row("setup", {"status": "ok", "seconds": 1.0, "values": {"x": 1}, "checks": []})
    assert json.loads((tmp_path / "results.json").read_text())["stages"]["setup"]["values"] == {"x": 1}
    table = (tmp_path / "table.txt").read_text()
    assert "could not be formatted" in table and "KeyError: 'injected'" in table and '"x": 1' in table


def test_the_wheel_check_wants_an_intact_wheel_for_every_package_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu_wheels, "_installed", lambda name: False)  # the device before the wheels
    for name in gpu_wheels.WHEELS:
        with zipfile.ZipFile(tmp_path / f"{name.replace('-', '_')}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr("x.py", "")
    assert gpu_wheels.missing(tmp_path) is None
    (tmp_path / "soxr-1.0-py3-none-any.whl").unlink()
    (tmp_path / "rjieba-1.0-py3-none-any.whl").write_bytes(b"PK truncated")
    problem = gpu_wheels.missing(tmp_path)
    assert problem is not None and "2 of the" in problem and "soxr" in problem and "rjieba" in problem
    monkeypatch.setattr(gpu_wheels, "_installed", lambda name: name in ("soxr", "rjieba"))
    assert gpu_wheels.missing(tmp_path) is None  # installed already (a checkout with script/setup run)


def test_bucket_timings_survive_a_failing_bucket_and_a_failing_step_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """graph-speed's bucket table (stages.bucket_speed): a bucket that fails is an error in its own row, the
    other buckets are still timed, the file has every row, and the table prints a line per bucket; it runs
    even when the stage's first part (step_speed) raises, and that failure still fails the stage."""
    import contextlib as _contextlib
    from types import SimpleNamespace

    from ishowtts_dev.gpu import stages

    class Inputs:
        def __init__(self, n: int) -> None:
            self.x = SimpleNamespace(shape=(1, n, 100))

    def step_inputs(engine: Any, voice: Any, batch: int, frames: int, steps: int, pad_to: int, g: Any) -> Any:
        if pad_to == 128:
            raise RuntimeError("injected")
        return Inputs(-(-frames // pad_to) * pad_to)

    graphs = SimpleNamespace(eager_steps=0)
    engine = SimpleNamespace(
        acceleration=SimpleNamespace(chunk_graphs=graphs, recording=_contextlib.nullcontext), model=None
    )
    monkeypatch.setattr(stages, "free_cuda", lambda: None)
    monkeypatch.setattr(stages, "accelerated_engine", lambda *a, **k: (engine, None))
    monkeypatch.setattr(stages, "step_inputs", step_inputs)
    monkeypatch.setattr(stages, "run_steps", lambda *a: None)
    monkeypatch.setattr(stages, "time_steps", lambda run, cuda: 0.004)

    def broken_step_speed(*args: Any) -> None:
        raise RuntimeError("step table failed (injected)")

    monkeypatch.setattr(stages, "step_speed", broken_step_speed)
    plan = SimpleNamespace(quick=False, cuda=False, main_size="base", serving_precision="fp32")
    rec = stages.Record(tmp_path / "stage.json")
    with pytest.raises(RuntimeError, match="step table failed"):
        stages.stage_graph_speed(plan, rec)  # type: ignore[arg-type]
    table = json.loads((tmp_path / "stage.json").read_text())["values"]["ms_per_step_by_bucket"]
    assert list(table) == ["eager unpadded", "bucket 64", "bucket 128", "bucket 256"]
    assert "injected" in table["bucket 128"]["error"]
    assert table["bucket 64"]["891 frames"] == {
        "padded_frames": 896,
        "eager padded": 0.25,
        "cuda-graphs": 0.25,
    }
    assert table["bucket 256"]["947 frames"]["padded_frames"] == 1024
    assert table["eager unpadded"]["891 frames"] == {"padded_frames": 891, "eager": 0.25}
    lines = gpu_check.bucket_lines(table)
    assert (
        len(lines) == 4 and "891 frames (padded 896): eager padded 0.250 ms, cuda-graphs 0.250 ms" in lines[1]
    )
    assert "injected" in lines[2]
