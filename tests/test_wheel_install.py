"""Build the wheel, install it the way the Docker images do, start it, and health-check it.

What is the same as in ``docker/Dockerfile``:

- the wheel is built from the same files (``pyproject.toml``, ``README.md``, ``wyoming_ishowtts/``)
  with the same command (``python -m pip wheel --no-cache-dir --no-deps``);
- the package is installed into a new virtual environment by the same script the images run,
  ``docker/install-wheel.sh``, with the same default extras (``zh,zeroconf``), its run-time
  dependencies resolved by pip from the package index;
- the server is started by the images' entrypoint, ``docker/entrypoint.sh``, which runs the
  installed ``wyoming-ishowtts`` console script; only the listening address (loopback, a free
  port) and the data folder (a temporary one) are overridden, through the two environment
  variables the entrypoint reads for this purpose;
- the health check is the one in the images' ``HEALTHCHECK``: ``python -m
  wyoming_ishowtts.healthcheck`` run by the installed environment's interpreter.

What differs, and why: the torch step.  The images install torch in a layer of its own before the
app (``pip install torch==…`` on x86_64, inherited from the L4T base on Jetson); here that layer is
this test environment's torch, the same version, made visible to the new environment without
copying its gigabytes.  A directory of symbolic links to torch and to the distributions torch
itself requires (found from the installed metadata, markers evaluated) is put on the new
environment's path with a ``.pth`` file.  This mirrors the Jetson image exactly (torch from the
base, everything else installed by pip) and keeps the test fast and free of a multi-gigabyte
download.  Nothing else of this environment is visible, so every other dependency the wheel
declares must really be installed by the script - a dependency missing from ``pyproject.toml``
fails this test.  ``venv --system-site-packages`` would not be equivalent: it would expose every
package of the base interpreter, hiding missing dependencies.

Needs network access to the package index (PyPI) for the run-time dependencies, like the image
build; without it the install step fails and so does this test.

With ``ISHOWTTS_TEST_DIST`` set to a folder of built distributions (the release workflow's
``dist/``), the test installs that folder's wheel instead of building one, so a release starts and
health-checks the very file it uploads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ishowtts_dev.clips import make_voice

ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = ROOT / "docker" / "install-wheel.sh"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
START_TIMEOUT = 180.0
INSTALL_TIMEOUT = 900.0


# --------------------------------------------------------------------------------------------------
# The "torch layer": torch and its own requirements, linked from this environment


def requirement_closure(root: str) -> list[Distribution]:
    """``root`` and everything it requires (recursively, markers evaluated), as installed here."""
    seen: dict[str, Distribution] = {}
    pending = [root]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # an optional requirement this platform does not install
        seen[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(seen.values())


def link_torch_layer(target: Path) -> list[str]:
    """Symlink torch's closure into ``target``; returns the distribution names linked."""
    target.mkdir(parents=True)
    names = []
    for dist in requirement_closure("torch"):
        names.append(dist.metadata["Name"])
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            source = base / top
            link = target / top
            if source.exists() and not link.exists() and top != "__pycache__":
                link.symlink_to(source, target_is_directory=source.is_dir())
    return sorted(names)


# --------------------------------------------------------------------------------------------------
# Fixtures: wheel, environment, model, voice, server


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    wheel: Path
    torch_layer: list[str]


def run(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def build_wheel(work: Path) -> Path:
    """Same files and command as the Dockerfile's wheel stage."""
    src = work / "src"
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src)
    shutil.copy2(ROOT / "README.md", src)
    shutil.copytree(
        ROOT / "wyoming_ishowtts", src / "wyoming_ishowtts", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = work / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-cache-dir",
            "--no-deps",
            "--wheel-dir",
            str(dist),
            str(src),
        ],
        timeout=INSTALL_TIMEOUT,
    )
    wheels = list(dist.glob("wyoming_ishowtts-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def release_wheel() -> Path | None:
    """The wheel in ``$ISHOWTTS_TEST_DIST``, if that is set (exactly one, or the test fails)."""
    dist = os.environ.get("ISHOWTTS_TEST_DIST")
    if not dist:
        return None
    wheels = list(Path(dist).glob("wyoming_ishowtts-*.whl"))
    assert len(wheels) == 1, f"ISHOWTTS_TEST_DIST={dist} must hold exactly one wheel: {wheels}"
    return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return release_wheel() or build_wheel(tmp_path_factory.mktemp("wheel-build"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel-install")

    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    python = venv / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], timeout=60)
    layer = work / "torch-layer"
    linked = link_torch_layer(layer)
    (Path(site.stdout.strip()) / "torch_layer.pth").write_text(f"{layer}\n", encoding="utf-8")

    # The fresh environment sees torch but not this environment's other packages.
    probe = run(
        [
            str(python),
            "-c",
            "import importlib.util as u, torch; print(torch.__version__, u.find_spec('numpy') is None)",
        ],
        timeout=120,
    )
    assert probe.stdout.split()[1] == "True", "numpy leaked into the fresh environment before the install"

    env = {**os.environ, "PIP_NO_INPUT": "1"}
    env.pop("ISHOWTTS_EXTRAS", None)  # the images' default extras
    run(["sh", str(INSTALL_SCRIPT), str(python), str(wheel.parent)], timeout=INSTALL_TIMEOUT, env=env)
    return Installed(venv=venv, python=python, wheel=wheel, torch_layer=linked)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def healthcheck(installed: Installed, uri: str, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(installed.python),
            "-m",
            "wyoming_ishowtts.healthcheck",
            "--uri",
            uri,
            "--timeout",
            str(timeout),
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        check=False,
    )


@dataclass(frozen=True)
class Server:
    uri: str
    studio_url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def server(installed: Installed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("server")
    model = work / "model"
    run(
        [str(installed.python), "-m", "wyoming_ishowtts.tools.random_model", "--size", "tiny", str(model)],
        timeout=300,
    )
    data = work / "data"
    make_voice(data / "voices", "test")  # the tests' tone voice
    port, studio_port = free_port(), free_port()
    uri = f"tcp://127.0.0.1:{port}"
    env = {
        "PATH": f"{installed.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(work),
        "XDG_CACHE_HOME": str(data / "cache"),  # as in the image
        "HF_HUB_OFFLINE": "1",
        "ISHOWTTS_URI": uri,
        "ISHOWTTS_DATA_DIR": str(data),
    }
    log = work / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [
                *("sh", str(ENTRYPOINT), "--model-dir", str(model), "--device", "cpu", "--no-builtin-voice"),
                *("--http-port", str(studio_port)),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        yield Server(uri=uri, studio_url=f"http://127.0.0.1:{studio_port}/", process=process, log=log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


# --------------------------------------------------------------------------------------------------
# Tests

# What must never ship: the developer tools (benchmark, soak run, server launcher, precision study, test
# clips and client), under their new home or their old module paths.
DEV_ONLY = ("ishowtts_dev", "bench", "soak", "launcher", "precision", "clips", "wyoming_client")


def test_the_wheel_holds_what_runs_in_production(wheel: Path) -> None:
    """The runtime package and its metadata, with the random-model tool (the install test below runs it),
    and no developer tool."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert {name.split("/")[0] for name in names} == {
        "wyoming_ishowtts",
        wheel.name.split("-py")[0] + ".dist-info",
    }
    shipped = [name for name in names if any(part in DEV_ONLY for part in Path(name).with_suffix("").parts)]
    assert shipped == [], shipped
    for needed in ("__main__", "healthcheck", "synthesize", "engine/core", "server/app", "voices/cache"):
        assert f"wyoming_ishowtts/{needed}.py" in names, needed
    assert "wyoming_ishowtts/tools/random_model.py" in names
    for page in ("__init__.py", "app.py", "static/index.html", "static/studio.js", "static/studio.css"):
        assert f"wyoming_ishowtts/server/studio/{page}" in names, page


def test_install_used_the_linked_torch_and_installed_the_rest(installed: Installed) -> None:
    assert "torch" in installed.torch_layer
    report = run(
        [
            str(installed.python),
            "-c",
            "import torch, numpy, wyoming, soundfile, soxr, safetensors, yaml, huggingface_hub, rjieba, "
            "pypinyin, zeroconf, sys; print(torch.__file__); print(numpy.__file__)",
        ],
        timeout=120,
    )
    torch_file, numpy_file = report.stdout.split()
    assert torch_file.startswith(str(installed.venv.parent / "torch-layer"))
    assert numpy_file.startswith(str(installed.venv)), "numpy must come from the fresh install"
    assert (installed.venv / "bin" / "wyoming-ishowtts").is_file()


def test_healthcheck_passes_against_the_installed_server(installed: Installed, server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    result = healthcheck(installed, server.uri)
    while result.returncode != 0:
        if server.process.poll() is not None:
            pytest.fail(f"server exited with {server.process.returncode}:\n{server.log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"no healthy describe within {START_TIMEOUT} s: {result.stderr}\n{server.log.read_text()}"
            )
        time.sleep(1.0)
        result = healthcheck(installed, server.uri)
    assert result.stdout.startswith("healthy"), result.stdout
    assert "1 installed voice" in result.stdout  # the synthetic voice from the data volume


def test_the_installed_server_serves_the_voice_studio(installed: Installed, server: Server) -> None:
    """The page's files are package data of the wheel, and aiohttp one of its dependencies."""
    test_healthcheck_passes_against_the_installed_server(installed, server)  # started and ready
    for path, kind in (("", "text/html"), ("static/studio.js", "javascript"), ("api/voices", "json")):
        with urllib.request.urlopen(server.studio_url + path, timeout=30) as response:
            assert response.status == 200 and kind in response.headers["Content-Type"], path
            body = response.read()
    assert b'"name": "test"' in body  # the synthetic voice, listed by the installed studio


def test_healthcheck_fails_when_nothing_listens(installed: Installed) -> None:
    result = healthcheck(installed, f"tcp://127.0.0.1:{free_port()}", timeout=2.0)
    assert result.returncode == 1
    assert "unhealthy" in result.stderr


def test_healthcheck_fails_on_an_open_port_that_does_not_speak_wyoming(installed: Installed) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = healthcheck(installed, f"tcp://127.0.0.1:{port}", timeout=1.0)
    assert result.returncode == 1
    assert "no info" in result.stderr
