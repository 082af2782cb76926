"""``--device cuda:N``: one server per GPU.

Every command line that takes ``--device`` accepts ``auto``, ``cpu``, ``cuda`` and ``cuda:N`` and refuses
anything else with an argparse error naming the choices.  ``Engine.load`` first makes the engine's GPU the
current CUDA device of the thread that loads it, which in the server is the engine worker thread that
runs it.  On a CPU the device step is watched through its ``cuda`` argument (a stand-in for
``torch.cuda`` with two GPUs); the server itself is run with a GPU this machine does not have.  The same
binding on real GPUs is a check of script/gpu-check's setup stage (`device_binding`), tested here on a
stand-in that keeps the current device per thread.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import ROOT

from ishowtts_dev.bench.__main__ import build_parser as bench_parser
from ishowtts_dev.gpu.stages import Record, device_binding
from wyoming_ishowtts.engine import EngineSettings
from wyoming_ishowtts.engine import core as engine_core
from wyoming_ishowtts.engine.loading import bind_thread, pick_device
from wyoming_ishowtts.errors import ModelLoadError
from wyoming_ishowtts.server.cli import build_parser as server_parser
from wyoming_ishowtts.synthesize import build_parser as synthesize_parser

PARSERS: dict[str, tuple[Callable[[], argparse.ArgumentParser], list[str]]] = {
    "server": (server_parser, []),
    "synthesize": (synthesize_parser, ["--voice-dir", "v", "-o", "out.wav"]),
    "bench": (bench_parser, []),
}


@pytest.mark.parametrize("command", sorted(PARSERS))
@pytest.mark.parametrize(
    ("given", "parsed"),
    [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda:0"), ("cuda:1", "cuda:1"),
     ("cuda:07", "cuda:7")],
)  # fmt: skip
def test_device_accepts_cuda_n(command: str, given: str, parsed: str) -> None:
    build, required = PARSERS[command]
    assert build().parse_args([*required, "--device", given]).device == parsed


@pytest.mark.parametrize("command", sorted(PARSERS))
@pytest.mark.parametrize(
    "given", ["cuda:x", "tpu", "cuda:", "cuda:-1", "cuda:1.0", "CUDA", "cuda:１", "gpu:0"]
)
def test_device_refuses_anything_else_with_a_clear_error(
    command: str, given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    build, required = PARSERS[command]
    with pytest.raises(SystemExit) as exit_info:
        build().parse_args([*required, "--device", given])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--device" in err and "use auto, cpu, cuda or cuda:N" in err and repr(given) in err, err


class FakeCuda:
    """``torch.cuda`` as a machine with `count` GPUs would show it; records set_device per thread."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.calls: list[tuple[int | None, str]] = []

    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count

    def set_device(self, device: torch.device) -> None:
        self.calls.append((device.index, threading.current_thread().name))


def test_binding_makes_the_gpu_current_on_the_calling_thread() -> None:
    cuda = FakeCuda(2)
    thread = threading.Thread(target=bind_thread, args=("cuda:1", cuda), name="engine-worker")
    thread.start()
    thread.join()
    assert cuda.calls == [(1, "engine-worker")]
    for nothing_to_do in ("cpu", "auto", "cuda"):  # "cuda" is the current GPU already
        bind_thread(nothing_to_do, cuda)
    assert cuda.calls == [(1, "engine-worker")]


def test_a_gpu_the_process_cannot_see_is_a_clear_load_error() -> None:
    with pytest.raises(
        ModelLoadError, match=r"--device cuda:2: this process sees 2 GPU\(s\), cuda:0 to cuda:1"
    ):
        bind_thread("cuda:2", FakeCuda(2))
    with pytest.raises(
        ModelLoadError, match=r"--device cuda:1 was asked for, but this PyTorch build sees no"
    ):
        bind_thread("cuda:1", FakeCuda(0))
    assert pick_device("auto", FakeCuda(0)) == torch.device("cpu")
    assert pick_device("auto", FakeCuda(1)) == torch.device("cuda")


def test_the_server_on_a_missing_gpu_exits_with_the_reason(
    tiny_model_dir: Path, voices_dir: Path, tmp_path: Path
) -> None:
    args = ["--uri", "tcp://127.0.0.1:0", "--model-dir", str(tiny_model_dir), "--voices-dir", str(voices_dir)]
    args += ["--cache-dir", str(tmp_path), "--no-builtin-voice", "--device", "cuda:999"]
    result = subprocess.run(
        [sys.executable, "-m", "wyoming_ishowtts", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    reasons = (
        "--device cuda:999 was asked for, but this PyTorch build sees no CUDA GPU",
        "--device cuda:999: this process sees",
    )
    assert any(reason in result.stderr for reason in reasons), result.stderr
    assert "Traceback" not in result.stderr, result.stderr


class ThreadCuda(FakeCuda):
    """A stand-in that also keeps the current device per thread, as CUDA's runtime does."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self._local = threading.local()

    def set_device(self, device: torch.device) -> None:
        super().set_device(device)
        self._local.index = device.index

    def current_device(self) -> int:
        return int(getattr(self._local, "index", 0))


@pytest.mark.parametrize("gpus", [1, 2, 4])
def test_gpu_check_binding_check_passes_when_only_the_loading_thread_moves(tmp_path: Path, gpus: int) -> None:
    """gpu-check's setup stage runs this check on the lent GPU (`torch.cuda` itself); here the same code
    runs on a stand-in with per-thread current devices, and fails when binding does not happen."""
    rec = Record(tmp_path / "result.json")
    assert device_binding(rec, ThreadCuda(gpus)), rec.data["checks"]
    (check,) = rec.data["checks"]
    assert check["worker_current"] == [gpus - 1] and check["this_thread_before_after"] == [0, 0]


def test_gpu_check_binding_check_fails_when_the_thread_is_not_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cuda = ThreadCuda(2)
    monkeypatch.setattr(cuda, "set_device", lambda device: None)  # binding that binds nothing
    rec = Record(tmp_path / "result.json")
    assert not device_binding(rec, cuda)
    assert rec.data["checks"][0]["worker_current"] == [0]


def test_the_benchmark_starts_its_server_on_the_gpu_it_was_given(tmp_path: Path) -> None:
    from ishowtts_dev.bench.__main__ import server_args

    cfg = {
        "model_dir": tmp_path,
        "out": tmp_path,
        "nfe_equal": 32,
        "equal_precision": "fp32",
        "threads": None,
    }
    for config in ("equal", "defaults"):
        args = server_args({**cfg, "device": "cuda:1"}, config, tmp_path)
        assert server_parser().parse_args(args).device == "cuda:1", args


def test_engine_load_binds_the_loading_thread_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server loads the engine on its worker thread (the engine factory), so this is the worker
    thread making the engine's GPU its current device before the model loads."""

    class Stop(Exception):
        pass

    seen: list[tuple[str, str]] = []

    def record(name: str) -> None:
        seen.append((name, threading.current_thread().name))
        raise Stop

    monkeypatch.setattr(engine_core, "bind_thread", record)
    thread_error: list[BaseException] = []

    def load() -> None:
        try:
            engine_core.Engine.load(EngineSettings(device="cuda:1", model_dir=Path("/nonexistent")))
        except BaseException as err:
            thread_error.append(err)

    thread = threading.Thread(target=load, name="engine-worker")
    thread.start()
    thread.join()
    assert seen == [("cuda:1", "engine-worker")] and isinstance(thread_error[0], Stop), thread_error
