"""The Python packages a lent GPU machine lacks, carried to it as wheels.

The lent machine (an H100 or H200, see the device tool's KINDS.md) has Python 3.12 with its own torch 2.11
(CUDA 13), torchaudio, numpy, matplotlib, transformers and many more, and no network. What our server and
upstream f5-tts import beyond that travels as wheels, downloaded here by ``script/gpu-wheels`` into a
git-ignored folder and installed there by ``script/gpu-check`` with ``pip --no-index --no-deps --target``,
so the device's own torch is the one that runs.

    python -m ishowtts_dev.gpu.wheels download DEST     # here (script/gpu-wheels)
    python -m ishowtts_dev.gpu.wheels install DEST SITE  # there (script/gpu-check does it)

Versions: the ones this checkout's tests ran with (read from this environment), so the device runs what CI
tested; the two upstream packages our pyproject pins come from that pin.

Two packages upstream imports but never runs for inference are not carried: ``wandb`` (imported by
upstream's trainer, 20 MB of a Go binary) and ``cached_path`` (imported by ``f5_tts.api`` for downloading
checkpoints, which our local files never do; it pulls botocore, google-cloud and cryptography, 25 MB). In
their place ``install`` writes a placeholder module that raises on any use, so if upstream ever touched
them on the device the run would fail loudly rather than change what is measured. gpu-check reports which
placeholders it wrote.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

DEVICE_PYTHON = "3.12"
PLATFORMS = (
    "manylinux_2_39_x86_64",
    "manylinux_2_35_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
BUDGET_MIB = 40
"""The device tool carries at most 64 MiB with the working tree; keep the wheels well under it."""

# What the lent machine's image holds (KINDS.md, "Python packages already there", read on 2026-11-17).
_DEVICE_IMAGE = """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
    certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings
    cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils
    execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet
    httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax
    jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
    lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib
    mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
    networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
    nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver
    nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
    nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx
    optimistix orbax-checkpoint packaging pandas patsy peft pillow pip pluggy portalocker prometheus-client
    propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
    pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
    pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
    scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
    sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore
    threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
    torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect
    urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
"""
DEVICE_PACKAGES = frozenset(_DEVICE_IMAGE.split())

# Carried: imported at run time by our server and tools (first group) or by upstream f5-tts and vocos in
# the benchmark's inference paths (second group), and missing on the device.
OURS = ("wyoming", "soundfile", "cffi", "soxr", "pypinyin", "rjieba")
UPSTREAM = (
    "f5-tts",
    "vocos",
    "encodec",
    "x-transformers",
    "einx",
    "frozendict",
    "loguru",
    "torch-einops-utils",
    "ema-pytorch",
    "librosa",
    "decorator",
    "pooch",
    "platformdirs",
    "pydub",
    "hydra-core",
    "omegaconf",
    "antlr4-python3-runtime",
    "datasets",
    "dill",
    "multiprocess",
)
WHEELS = OURS + UPSTREAM
BUILT_HERE = frozenset({"encodec", "antlr4-python3-runtime"})
"""Published as source only: built here into pure-Python wheels (no compiled code, so any Python runs them)."""
PINNED = {"f5-tts": "1.1.22", "vocos": "0.1.0"}
"""The reference extra's pins (pyproject.toml); the rest follow this environment."""

PLACEHOLDERS: dict[str, str] = {
    "wandb": (
        '"""Placeholder (ishowtts_dev.gpu.wheels): the real wandb is not installed here.\n\n'
        "f5-tts imports it in its trainer only; inference never uses it. Any use raises.\n"
        '"""\n\n\n'
        "def __getattr__(name):\n"
        "    raise RuntimeError(f'wandb.{name}: wandb is a placeholder on this machine')\n"
    ),
    "cached_path": (
        '"""Placeholder (ishowtts_dev.gpu.wheels): the real cached_path is not installed here.\n\n'
        "f5_tts.api imports it to download checkpoints when none is given; the benchmark always gives\n"
        'local files. Any use raises.\n"""\n\n\n'
        "def cached_path(*args, **kwargs):\n"
        "    raise RuntimeError('cached_path is a placeholder on this machine: upstream tried to download')\n"
    ),
}


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_version(name: str) -> str:
    if name in PINNED:
        return PINNED[name]
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError as err:
        raise SystemExit(
            f"{name} is not installed in this environment ({sys.executable}); run script/setup first, "
            "so the wheels match what the tests ran with"
        ) from err


def download(dest: Path) -> list[Path]:
    """Fetch (or build) one wheel per carried package for the device's Python; returns the wheel files."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    requirements = [f"{name}=={pinned_version(name)}" for name in WHEELS]
    binary = [r for r, n in zip(requirements, WHEELS, strict=True) if n not in BUILT_HERE]
    source = [r for r, n in zip(requirements, WHEELS, strict=True) if n in BUILT_HERE]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            *pip,
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            DEVICE_PYTHON,
            "--implementation",
            "cp",
            *platforms,
            "--dest",
            str(dest),
            *binary,
        ],
        check=True,
    )
    subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "--no-binary=:all:", "--wheel-dir", str(dest), *source],
        check=True,
    )
    wheels = sorted(dest.glob("*.whl"))
    built = [w for w in wheels if normalize(w.name.split("-")[0]) in {normalize(n) for n in BUILT_HERE}]
    for wheel in built:
        if not wheel.name.endswith("-py3-none-any.whl"):
            raise SystemExit(f"{wheel.name}: expected a pure-Python wheel")
    check_set(wheels)
    return wheels


def check_set(wheels: list[Path]) -> None:
    """One wheel per carried package, no other, within the size budget."""
    names = [normalize(w.name.split("-")[0]) for w in wheels]
    wanted = sorted(normalize(n) for n in WHEELS)
    if sorted(names) != wanted:
        raise SystemExit(f"wheel set {sorted(names)} differs from the carried packages {wanted}")
    size = sum(w.stat().st_size for w in wheels) / 2**20
    if size > BUDGET_MIB:
        raise SystemExit(f"the wheels take {size:.1f} MiB, over the {BUDGET_MIB} MiB budget")
    print(f"{len(wheels)} wheels, {size:.1f} MiB")


def missing(wheels_dir: Path) -> str | None:
    """One sentence when some carried package has neither an intact wheel in `wheels_dir` nor an installed
    distribution in this interpreter (a checkout with script/setup run has them all); None when the set is
    complete. Reads only file names, zip directories and package metadata: seconds, and no GPU."""
    wheels = sorted(wheels_dir.glob("*.whl")) if wheels_dir.is_dir() else []
    intact = set()
    broken = []
    for wheel in wheels:
        try:
            with zipfile.ZipFile(wheel) as archive:
                archive.infolist()
            intact.add(normalize(wheel.name.split("-")[0]))
        except (OSError, zipfile.BadZipFile):
            broken.append(wheel.name)
    absent = [name for name in WHEELS if normalize(name) not in intact and not _installed(name)]
    if not absent:
        return None
    what = f"{len(absent)} of the {len(WHEELS)} carried packages ({', '.join(absent[:6])}"
    what += ", ..." if len(absent) > 6 else ""
    damaged = f"; damaged: {', '.join(broken)}" if broken else ""
    return (
        f"the wheel set in {wheels_dir} is missing or incomplete: {what}) have no wheel there{damaged} and "
        "are not installed; run script/gpu-wheels on the development machine and carry .gpu-wheels"
    )


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def install(wheels_dir: Path, target: Path) -> list[str]:
    """Install the carried wheels into `target` (for PYTHONPATH) with this interpreter's pip, offline, and
    write a placeholder for each of PLACEHOLDERS this interpreter cannot import. Returns the placeholders
    written. Does nothing for packages already importable (a checkout with script/setup run)."""
    wheels = sorted(wheels_dir.glob("*.whl")) if wheels_dir.is_dir() else []
    missing = [w for w in wheels if not _importable_dist(w)]
    target.mkdir(parents=True, exist_ok=True)
    if missing:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-index",
                "--no-deps",
                "--no-compile",
                "--no-cache-dir",
                "--upgrade",
                "--target",
                str(target),
                *map(str, missing),
            ],
            check=True,
        )
    return write_placeholders(target)


def _importable_dist(wheel: Path) -> bool:
    return _installed(wheel.name.split("-")[0])


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def write_placeholders(target: Path) -> list[str]:
    written = []
    for module, text in PLACEHOLDERS.items():
        if (target / module).is_dir() or not _findable(module):
            (target / module).mkdir(parents=True, exist_ok=True)
            (target / module / "__init__.py").write_text(text, encoding="utf-8")
            written.append(module)
    return written


class _DeviceImports:
    """Stands in for the path finder so that this interpreter finds, as the lent machine would, neither the
    modules nor the metadata of site-packages distributions the machine neither has nor is carried."""

    def __init__(self, finder: Any, carried: bool = True) -> None:
        import sysconfig

        self._finder = finder
        self._allowed = DEVICE_PACKAGES | {"wyoming-ishowtts"}
        if carried:
            self._allowed |= {normalize(n) for n in WHEELS}
        self._providers = importlib.metadata.packages_distributions()
        paths = sysconfig.get_paths()
        self._site = tuple({str(Path(paths[k]).resolve()) for k in ("purelib", "platlib")})
        self.hidden: set[str] = set()

    def _in_site(self, location: str | None) -> bool:
        return location is not None and str(Path(location).resolve()).startswith(self._site)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        spec = self._finder.find_spec(fullname, path, target)
        if spec is None or path is not None or "." in fullname:
            return spec  # submodules follow their package
        providers = self._providers.get(fullname)
        if not providers or any(normalize(p) in self._allowed for p in providers):
            return spec
        origin = spec.origin or next(iter(spec.submodule_search_locations or ()), None)
        if not self._in_site(origin):
            return spec  # found elsewhere (a placeholder, the checkout): the machine has that too
        self.hidden.add(fullname)
        return None

    def find_distributions(self, *args: Any, **kwargs: Any) -> Any:
        for dist in self._finder.find_distributions(*args, **kwargs):
            name = normalize(dist.metadata["Name"] or "")
            if name in self._allowed or not self._in_site(str(getattr(dist, "_path", ""))):
                yield dist

    def invalidate_caches(self) -> None:
        self._finder.invalidate_caches()


def simulate_device(carried: bool = True) -> None:
    """Make this interpreter import only what the lent machine would have (tests call it from a
    sitecustomize, so every process of a gpu-check run, server and upstream included, is held to it):
    its image's packages, and with `carried` the carried ones too (as if installed from their wheels;
    without, the machine before any wheel came)."""
    from importlib.machinery import PathFinder

    sys.meta_path[:] = [_DeviceImports(f, carried) if f is PathFinder else f for f in sys.meta_path]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    down = sub.add_parser("download", help="fetch the wheels for the device's Python into DEST")
    down.add_argument("dest", type=Path)
    inst = sub.add_parser("install", help="install DEST's wheels into SITE, offline, with this Python")
    inst.add_argument("dest", type=Path)
    inst.add_argument("site", type=Path)
    args = parser.parse_args(argv)
    if args.command == "download":
        download(args.dest)
    else:
        written = install(args.dest, args.site)
        print(f"installed into {args.site}; placeholders: {', '.join(written) or 'none'}")


if __name__ == "__main__":
    main()
