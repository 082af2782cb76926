"""A plain CPU (issue 25): --precision int8, what `auto` picks per class of CPU, and the default threads.

The speed itself is measured in BENCHMARKS.md ("int8 on a CPU", `python -m ishowtts_dev.bench.cpu`), as
ratios interleaved in one process; here only what must hold on any machine: int8 really runs (the per-step
layers are int8 and the audio differs from fp32), speaks exactly as long as fp32, stays within the SNR
measured, is refused where it cannot run, and `auto` and the thread count follow injected machines.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from ishowtts_dev.clips import expected_samples, make_voice
from ishowtts_dev.precision import snr_db
from wyoming_ishowtts.engine import Engine, EngineSettings, SynthesisOptions, hardware, loading, quantize
from wyoming_ishowtts.engine.hardware import (
    INT8_MIN_SNR_DB,
    Int8Measurement,
    cpu_class,
    cpu_flags,
    cpu_quota,
    default_threads,
    physical_cores,
)
from wyoming_ishowtts.engine.loading import pick_precision
from wyoming_ishowtts.engine.quantize import PER_STEP_LINEARS, Int8Linear, needs_reduced_range
from wyoming_ishowtts.engine.reference import load_audio
from wyoming_ishowtts.errors import ModelLoadError
from wyoming_ishowtts.tools.random_model import write_random_model

TEXT = "Turned on the kitchen light."
CPU = torch.device("cpu")
ZEN3 = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})  # this project's machine: no AVX-512, no VNNI


@pytest.fixture(scope="module", params=["tiny", pytest.param("base", marks=pytest.mark.slow)])
def speakers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """fp32 and int8 engines on one random model (tiny, and the real base shape), and the test voice."""
    size = request.param
    model_dir = write_random_model(tmp_path_factory.mktemp(size), size, seed=5)
    folder = make_voice(tmp_path_factory.mktemp("voices"), "tone")
    audio, rate = load_audio(folder / "reference.wav")
    transcript = (folder / "reference.txt").read_text(encoding="utf-8")
    found = {}
    for precision in ("fp32", "int8"):
        engine = Engine.load(
            EngineSettings(model_dir=model_dir, device="cpu", precision=precision, warmup=False)
        )
        found[precision] = (engine, engine.prepare_voice(audio, rate, transcript))
    yield found
    found.clear()


def speak(engine: Engine, voice: object) -> np.ndarray:
    return engine.synthesize_all(voice, TEXT, SynthesisOptions(nfe=3, seed=11))  # type: ignore[arg-type]


def test_int8_runs_int8_layers_and_speaks_the_right_length(speakers: dict) -> None:
    engine, voice = speakers["int8"]
    int8 = [m for m in engine.model.modules() if isinstance(m, Int8Linear)]
    assert len(int8) == engine.model.cfg.depth * len(PER_STEP_LINEARS)
    assert engine.dtype == torch.float32  # activations and the sampler stay float32
    assert "/int8/" in engine.audio_identity  # the audio cache never mixes it with fp32's audio
    wave = speak(engine, voice)
    assert np.isfinite(wave).all()
    assert len(wave) == expected_samples(TEXT)
    assert float(np.abs(wave).max()) > 0


def test_int8_stays_within_the_measured_snr(speakers: dict) -> None:
    """Loose: BENCHMARKS.md measured 32.6 dB for the base model's step output, 39 dB for the tiny model's whole
    text; the audio must stay above auto's bar (25 dB), and must differ (identical audio would mean int8 did
    not run)."""
    ref = speak(*speakers["fp32"])
    int8 = speak(*speakers["int8"])
    assert len(ref) == len(int8)
    snr = snr_db(ref, int8)
    assert INT8_MIN_SNR_DB < snr < 200, snr


def test_int8_is_refused_on_a_gpu() -> None:
    with pytest.raises(ModelLoadError, match="CPU only"):
        pick_precision("int8", torch.device("cuda"))


def test_int8_is_refused_where_torch_lacks_its_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch without the (deprecated) quantized kernels: a clear refusal, and auto runs fp32 there even on
    a class of CPU where int8 would pay."""
    monkeypatch.setattr(quantize, "kernels_present", lambda: False)
    with pytest.raises(ModelLoadError, match="lacks the int8 linear kernels"):
        pick_precision("int8", CPU)
    monkeypatch.setitem(hardware.INT8_MEASURED, "x86-avx2", Int8Measurement(2.0, 40.0, "test"))
    assert pick_precision("auto", CPU, flags=ZEN3) == "fp32"


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        (ZEN3, "x86-avx2"),
        (ZEN3 | {"avx512f", "avx512_vnni"}, "x86-vnni"),
        (ZEN3 | {"avx_vnni"}, "x86-vnni"),
        (ZEN3 | {"avx512f", "avx512_vnni", "avx512_bf16"}, "x86-bf16"),
        (frozenset({"fp", "asimd", "asimddp"}), "arm-dotprod"),
        (frozenset({"fp", "asimd"}), "arm"),
        (frozenset({"sse4_2"}), "other"),
    ],
)
def test_cpu_class_from_flags(flags: frozenset[str], kind: str) -> None:
    assert cpu_class(flags) == kind


def test_auto_on_a_cpu_follows_the_measured_classes() -> None:
    """With the measurements as recorded (hardware.INT8_MEASURED): bf16 where native, int8 only on a class
    whose measurement passes the rule, fp32 on every class never measured."""
    for flags in (ZEN3, ZEN3 | {"avx512_vnni"}, frozenset({"asimd", "asimddp"}), frozenset()):
        measured = hardware.INT8_MEASURED.get(cpu_class(flags))
        expected = "int8" if hardware.int8_pays(measured) else "fp32"
        assert pick_precision("auto", CPU, flags=flags) == expected
    assert pick_precision("auto", CPU, flags=ZEN3 | {"avx512_bf16"}) == "bf16"


@pytest.mark.parametrize(
    ("speedup", "snr", "expected"),
    [(1.4, 25.0, "int8"), (1.39, 40.0, "fp32"), (2.0, 24.9, "fp32"), (1.8, 33.0, "int8")],
)
def test_auto_picks_int8_only_at_the_bar(
    monkeypatch: pytest.MonkeyPatch, speedup: float, snr: float, expected: str
) -> None:
    """The rule (>= 1.4x per step at >= 25 dB) decides for an injected class's measurement."""
    monkeypatch.setitem(hardware.INT8_MEASURED, "x86-vnni", Int8Measurement(speedup, snr, "test"))
    assert pick_precision("auto", CPU, flags=ZEN3 | {"avx512_vnni"}) == expected
    assert pick_precision("auto", CPU, flags=frozenset({"asimd"})) == "fp32"  # another class: unmeasured


def test_reduced_range_only_without_vnni() -> None:
    assert needs_reduced_range(ZEN3)
    assert not needs_reduced_range(ZEN3 | {"avx512_vnni"})
    assert not needs_reduced_range(frozenset({"asimd", "asimddp"}))  # ARM: QNNPACK sums in 32 bits


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd asimddp\n")
    assert cpu_flags(x86) == {"fpu", "avx2", "fma"}
    assert cpu_flags(arm) == {"fp", "asimd", "asimddp"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def fake_topology(root: Path, cores: list[tuple[int, int]]) -> Path:
    """A /sys/devices/system/cpu with one (package, core) per logical CPU."""
    for cpu, (package, core) in enumerate(cores):
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    return root


def test_physical_cores_count_smt_siblings_once(tmp_path: Path) -> None:
    # 8 logical CPUs: two packages of two cores, each core with two SMT threads.
    smt = [(0, 0), (0, 1), (1, 0), (1, 1), (0, 0), (0, 1), (1, 0), (1, 1)]
    sysfs = fake_topology(tmp_path / "cpu", smt)
    assert physical_cores(sysfs, allowed=range(8)) == 4
    assert physical_cores(sysfs, allowed={0, 4}) == 1  # both threads of one core
    assert physical_cores(sysfs, allowed={0, 1}) == 2
    assert physical_cores(tmp_path / "none", allowed={0, 1, 2}) == 3  # no topology: logical CPUs


def test_cpu_quota_of_a_container(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None
    assert cpu_quota(tmp_path / "nothing") is None


def test_default_threads_are_physical_cores_within_the_quota() -> None:
    assert default_threads(physical=8, quota=None) == 8
    assert default_threads(physical=8, quota=2) == 2
    assert default_threads(physical=2, quota=4) == 2


def test_engine_sets_the_default_threads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No --threads: the engine sets `default_threads` (stood in for: 1, unlike torch's own default here
    unless this machine has one core), and --threads N wins over it."""
    model_dir = write_random_model(tmp_path / "tiny", "tiny", seed=1)
    before = torch.get_num_threads()
    monkeypatch.setattr(loading, "default_threads", lambda: 1)
    try:
        Engine.load(EngineSettings(model_dir=model_dir, device="cpu", precision="fp32", warmup=False))
        assert torch.get_num_threads() == 1
        Engine.load(
            EngineSettings(model_dir=model_dir, device="cpu", precision="fp32", warmup=False, threads=3)
        )
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_one_inter_op_thread_in_a_fresh_process() -> None:
    """The engine runs no inter-op work: `set_threads` sets one inter-op thread (torch's default is one
    per logical CPU), in a process of its own (torch accepts the setting once, before parallel work)."""
    code = (
        "import torch; from wyoming_ishowtts.engine.loading import set_threads; "
        "print(set_threads(None), torch.get_num_threads(), torch.get_num_interop_threads())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    count, intra, interop = (int(x) for x in out.stdout.split())
    assert (count, intra, interop) == (default_threads(), default_threads(), 1)
