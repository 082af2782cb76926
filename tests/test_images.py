"""Build the images with a real container runtime and run them as a user would (issue 26).

Images: ``docker/Dockerfile`` (the x86-64 image, run as ``docker/compose.cpu.yaml`` runs it) and the Home
Assistant app's ``addon/ishowtts/`` (run as the Supervisor runs it: ``/data`` a folder holding the
``options.json`` it writes, ``/share`` mapped, the ingress port). For each, from this machine with a Wyoming
client: ``describe`` lists the voice and says the model is ready; a plain and a streaming request return
whole answers; the image's own HEALTHCHECK turns healthy; a stop with the grace period the compose file (the
app's ``timeout``) gives lets a running answer finish and the process exit 0 within it; a restart finds the
prepared voice in the data volume. The x86 image's server runs as the image's non-root user. The Jetson
image's installs are resolved for aarch64 and Python 3.10 (no emulation; see its test).

Runtime: docker where a daemon answers (GitHub's runners; the real base images are pulled), else podman
(``script/setup-containers`` installs it from Debian's packages and makes a stand-in for each base image that
no registry serves, tagged with the real name, so the Dockerfiles build unchanged; it is run first here, and
makes nothing that is already there). Which base each image was built on is printed with its build time and
size. Without any runtime the tests fail, except outside CI (no ``CI`` in the environment), where they are
skipped with that reason: .ci/run runs ``script/setup-containers``, so CI always has one.

Wheels, where podman builds (docker builds as a user would, from the indexes): the torch closure and the
app's dependencies are downloaded from PyPI once per Python version into a wheel folder kept between runs
(``$ISHOWTTS_IMAGE_WHEELS``, default ``~/.cache/wyoming-ishowtts/image-wheels``), for the image's platform and
Python; each build gets the folder, a ``pip.conf`` that makes pip install from it alone, and this machine's
CA bundle (these machines reach PyPI through a TLS-intercepting proxy) as mounts for the build only: nothing
of them stays in the image (checked). torch is PyPI's 2.14.1, the x86 image's default; the app's default
index (PyTorch's CPU-only builds) cannot be reached here, so the app's test image carries PyPI's CUDA build
of the same version instead (larger, same code paths on a CPU).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, check_audio, connect, free_port, make_voice, read_until
from packaging.requirements import Requirement
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from wyoming_ishowtts.readiness import says_ready

CONTAINERS_CONF = ROOT / "docker" / "standin" / "containers.conf"
WHEELS = Path(
    os.environ.get("ISHOWTTS_IMAGE_WHEELS") or Path.home() / ".cache" / "wyoming-ishowtts" / "image-wheels"
)
STAND_IN_LABEL = "org.wyoming-ishowtts.stand-in"
TORCH_REQUIREMENT = "torch==2.14.1"  # the Dockerfiles' TORCH_VERSION (checked below)
EXTRAS = "zh,zeroconf"  # docker/install-wheel.sh's default
VOICE = "test"
BUILD_TIMEOUT = 2400.0
START_TIMEOUT = 300.0
TEXT = "The kitchen light is on."
STREAM_TEXT = "The front door is locked. The garage door is closed."
STOP_SENTENCES = ("An answer that is still being spoken.", "The container was asked to stop.")


# --------------------------------------------------------------------------------------------------
# The container runtime


@dataclass(frozen=True)
class Runtime:
    """docker or podman, with the environment podman needs on these machines."""

    name: str
    env: dict[str, str]

    def __call__(
        self, *args: str, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.name, *args], capture_output=True, text=True, timeout=timeout, check=False, env=self.env
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{self.name} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    @property
    def podman(self) -> bool:
        return self.name == "podman"


def find_runtime() -> Runtime | None:
    env = dict(os.environ)
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "info"], capture_output=True, check=False, timeout=60).returncode == 0
    ):
        return Runtime("docker", env)
    if shutil.which("podman"):
        return Runtime("podman", {**env, "CONTAINERS_CONF": str(CONTAINERS_CONF)})
    return None


def say(config: pytest.Config, line: str) -> None:
    """A line in the test output itself (build times, sizes, bases), not only in a failure's report."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        print(f"\n[images] {line}", flush=True)


@pytest.fixture(scope="module")
def runtime(pytestconfig: pytest.Config) -> Runtime:
    found = find_runtime()
    if found is None:
        reason = "no container runtime (podman, or docker with a daemon): run script/setup-containers"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (.ci/run does; CI must build and run the images)", pytrace=False)
        pytest.skip(f"{reason}; CI runs these tests")
    if found.podman:
        setup = subprocess.run(
            [str(ROOT / "script" / "setup-containers")], capture_output=True, text=True, timeout=1800,
            check=False, env=found.env,
        )  # fmt: skip
        assert setup.returncode == 0, f"script/setup-containers failed:\n{setup.stdout}\n{setup.stderr}"
        for line in setup.stdout.splitlines():
            say(pytestconfig, line)
    say(pytestconfig, f"runtime: {found.name} {found('--version').stdout.strip()}")
    return found


# --------------------------------------------------------------------------------------------------
# Wheels and build mounts (podman only)


def host_ca_bundle() -> Path:
    """The CA bundle pip on this machine trusts: its configured ``cert``, else the system's."""
    for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name) and Path(os.environ[name]).is_file():
            return Path(os.environ[name])
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.cert"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if configured and Path(configured).is_file():
        return Path(configured)
    return Path("/etc/ssl/certs/ca-certificates.crt")


def pip_env() -> dict[str, str]:
    """pip as on a fresh machine: PyPI only, no configuration of this one but its CA bundle."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_CERT": str(host_ca_bundle()), "PIP_NO_INPUT": "1"}


def platform_args(machine: str, newest_glibc: int) -> list[str]:
    """pip's --platform for every manylinux tag a glibc up to 2.``newest_glibc`` loads."""
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(5, newest_glibc + 1)]
    tags += [f"manylinux2014_{machine}"] + (
        [f"manylinux1_{machine}", f"manylinux2010_{machine}"] if machine == "x86_64" else []
    )
    return [arg for tag in tags for arg in ("--platform", tag)]


def target_args(python: str, machine: str, newest_glibc: int) -> list[str]:
    nodot = python.replace(".", "")
    return [
        "--only-binary=:all:", *platform_args(machine, newest_glibc), "--python-version", python,
        "--implementation", "cp", "--abi", f"cp{nodot}", "--abi", "abi3", "--abi", "none",
    ]  # fmt: skip


def fill_wheel_folder(python: str, glibc: int, wheel: Path, extras: str) -> Path:
    """torch, the app's dependencies and the build backend for ``python`` on x86-64 with glibc 2.``glibc``, from
    PyPI; files already there are kept (pip still resolves against the index, so the folder follows
    pyproject.toml)."""
    folder = WHEELS / f"cp{python.replace('.', '')}"
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--dest", str(folder), *target_args(python, "x86_64", glibc),
            TORCH_REQUIREMENT, "setuptools>=68", "wheel", f"{wheel}[{extras}]",
        ],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False, env=pip_env(),
    )  # fmt: skip
    assert result.returncode == 0, f"pip download failed:\n{result.stdout[-3000:]}\n{result.stderr}"
    for own in folder.glob("wyoming_ishowtts-*.whl"):
        own.unlink()
    return folder


def build_mounts(work: Path, wheels: Path) -> list[str]:
    """podman build's volumes: pip installs from the wheel folder alone, trusting this machine's CA."""
    conf = work / "pip.conf"
    conf.write_text(
        "[global]\ncert = /run/host-ca.pem\nno-index = true\nfind-links = /run/wheels\n", encoding="utf-8"
    )
    return [
        "--volume", f"{host_ca_bundle()}:/run/host-ca.pem:ro", "--volume", f"{conf}:/etc/pip.conf:ro",
        "--volume", f"{wheels}:/run/wheels:ro",
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Building


@dataclass(frozen=True)
class Image:
    tag: str
    seconds: float
    size_bytes: int
    base: str


def image_python(runtime: Runtime, base: str) -> str:
    """The Python version (``3.12``) of a base image, read from its ``python3``; for the app's Debian base,
    the version its ``python3`` package has."""
    found = runtime("run", "--rm", base, "sh", "-c", "command -v python3 >/dev/null && python3 -c "
                    "'import sys; print(\"%d.%d\" % sys.version_info[:2])' || cat /etc/debian_version", timeout=300)  # fmt: skip
    text = found.stdout.strip()
    return text if re.fullmatch(r"3\.\d+", text) else {"13": "3.13"}.get(text.split(".")[0], text)


def build(
    runtime: Runtime, config: pytest.Config, tag: str, dockerfile: Path, context: Path, base: str,
    build_args: dict[str, str], mounts: list[str],
) -> Image:  # fmt: skip
    args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
    if runtime.podman:
        args += ["--format", "docker", *mounts]  # podman's default (OCI) format drops HEALTHCHECK
    start = time.monotonic()
    runtime("build", "--file", str(dockerfile), "--tag", tag, *args, str(context),
            timeout=BUILD_TIMEOUT)  # fmt: skip
    seconds = time.monotonic() - start
    size = int(runtime("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    label = runtime("image", "inspect", "--format", f'{{{{index .Config.Labels "{STAND_IN_LABEL}"}}}}', tag)
    stand_in = label.stdout.strip()
    described = f"stand-in: {stand_in}" if stand_in and stand_in != "<no value>" else "the real image"
    say(config, f"{tag} ({dockerfile.relative_to(ROOT)}): built in {seconds:.0f} s, {size / 1e9:.2f} GB, "
                f"base {base} = {described}")  # fmt: skip
    return Image(tag=tag, seconds=seconds, size_bytes=size, base=described)


# --------------------------------------------------------------------------------------------------
# A container run as a user would, and its checks


@dataclass
class Served:
    """One image run as a user would; ``start`` (re)starts the same container."""

    runtime: Runtime
    image: Image
    name: str
    uri: str
    grace: int
    data_volume: str  # a volume name or a host folder
    voice_file_glob: str  # where the prepared voice lands, inside the container
    ingress_url: str | None = None
    run_args: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    log_offset: int = 0  # where the current run's log starts

    def create(self) -> None:
        self.runtime("create", "--name", self.name, *self.run_args, self.image.tag, *self.command)

    def start(self, config: pytest.Config) -> float:
        """Start the container; seconds until ``describe`` says the model is ready."""
        self.log_offset = len(self.logs())
        began = time.monotonic()
        self.runtime("start", self.name)
        deadline = began + START_TIMEOUT
        while time.monotonic() < deadline:
            state = self.inspect()["State"]
            if not state["Running"]:
                pytest.fail(f"{self.name} exited with {state['ExitCode']}:\n{self.logs()}")
            with suppress(OSError, asyncio.TimeoutError):
                info = asyncio.run(describe(self.uri))
                if any(says_ready(p.description) for p in info.tts):
                    seconds = time.monotonic() - began
                    say(config, f"{self.name}: model ready {seconds:.1f} s after start ({self.image.tag})")
                    return seconds
            time.sleep(0.5)
        pytest.fail(f"{self.name}: no ready describe within {START_TIMEOUT} s:\n{self.logs()}")

    def logs(self) -> str:
        result = self.runtime("logs", self.name, check=False)
        return result.stdout + result.stderr

    def run_log(self) -> str:
        return self.logs()[self.log_offset :]

    def inspect(self) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.runtime("container", "inspect", self.name).stdout)
        return found[0]

    def exec(self, *args: str) -> str:
        return self.runtime("exec", self.name, *args).stdout

    def remove(self) -> None:
        self.runtime("rm", "--force", "--time", "0", self.name, check=False)


async def describe(uri: str) -> Info:
    async with connect(uri) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
    assert event is not None and Info.is_type(event.type), event
    return Info.from_event(event)


async def plain(uri: str, text: str) -> list[Event]:
    async with connect(uri) as client:
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=VOICE)).event())
        return await read_until(client, "audio-stop")


async def streamed(uri: str, text: str) -> list[Event]:
    async with connect(uri) as client:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=VOICE)).event())
        for word in text.split(" "):
            await client.write_event(SynthesizeChunk(text=word + " ").event())
        await client.write_event(SynthesizeStop().event())
        return await read_until(client, "synthesize-stopped")


def grace_of_compose() -> int:
    service = yaml.safe_load((ROOT / "docker" / "compose.cpu.yaml").read_text(encoding="utf-8"))["services"]
    grace = re.fullmatch(r"(\d+)s", str(service["ishowtts"]["stop_grace_period"]))
    assert grace is not None
    return int(grace.group(1))


def compose_command() -> list[str]:
    service = yaml.safe_load((ROOT / "docker" / "compose.cpu.yaml").read_text(encoding="utf-8"))["services"]
    return [str(word) for word in service["ishowtts"]["command"]]


def app_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (ROOT / "addon" / "ishowtts" / "config.yaml").read_text(encoding="utf-8")
    )
    return loaded


def random_model(target: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "wyoming_ishowtts.tools.random_model", "--size", "tiny", str(target)],
        check=True, capture_output=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    return target


def readable(tree: Path) -> None:
    """Files a container's other user can read (host folders are this machine's root's)."""
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


# --------------------------------------------------------------------------------------------------
# The two images


def x86_image(runtime: Runtime, config: pytest.Config, work: Path) -> Image:
    base = "python:3.12-slim-bookworm"
    mounts: list[str] = []
    if runtime.podman:
        mounts = build_mounts(
            work, fill_wheel_folder(image_python(runtime, base), 36, project_wheel_at(work), EXTRAS)
        )
    return build(runtime, config, "localhost/wyoming-ishowtts:image-test", ROOT / "docker" / "Dockerfile",
                 ROOT, base, {}, mounts)  # fmt: skip


def project_wheel_at(work: Path) -> Path:
    dist = work / "dist"
    if not list(dist.glob("wyoming_ishowtts-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
            check=True, capture_output=True, timeout=600, env=pip_env(),
        )  # fmt: skip
    (wheel,) = dist.glob("wyoming_ishowtts-*.whl")
    return wheel


def addon_image(runtime: Runtime, config: pytest.Config, work: Path) -> Image:
    base = "ghcr.io/home-assistant/base-debian:trixie"
    version = str(app_config()["version"])
    args = {"BUILD_VERSION": version}
    mounts: list[str] = []
    if runtime.podman:
        wheel = project_wheel_at(work)
        # Debian trixie: glibc 2.41; the app installs the zh extra only (its Dockerfile).
        wheels = fill_wheel_folder(image_python(runtime, base), 41, wheel, "zh")
        mounts = [*build_mounts(work, wheels), "--volume", f"{wheel.parent}:/run/dist:ro"]
        args["PIP_FIND_LINKS"] = "/run/dist /run/wheels"  # the app's own wheel, not yet on PyPI
    return build(runtime, config, "localhost/ishowtts-app:image-test", ROOT / "addon" / "ishowtts" / "Dockerfile",
                 ROOT / "addon" / "ishowtts", base, args, mounts)  # fmt: skip


@pytest.fixture(scope="module", params=["x86", "app"])
def served(
    request: pytest.FixtureRequest, runtime: Runtime, pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:  # fmt: skip
    kind: str = request.param
    work = tmp_path_factory.mktemp(f"image-{kind}")
    name = f"ishowtts-image-test-{kind}-{uuid.uuid4().hex[:8]}"
    port = free_port()
    model = random_model(work / "model")
    if kind == "x86":
        image = x86_image(runtime, pytestconfig, work)
        volume = f"{name}-data"
        voices = work / "voices"
        make_voice(voices, VOICE)
        readable(work)
        served = Served(
            runtime=runtime, image=image, name=name, uri=f"tcp://127.0.0.1:{port}", grace=grace_of_compose(),
            data_volume=volume, voice_file_glob="/data/cache/voices/*.voice",
            run_args=["--publish", f"127.0.0.1:{port}:10200", "--volume", f"{volume}:/data",
                      "--volume", f"{voices}:/data/voices:ro", "--volume", f"{model}:/model:ro",
                      "--env", "HF_HUB_OFFLINE=1"],
            command=[*compose_command(), "--model-dir", "/model", "--no-builtin-voice", "--voice", VOICE],
        )  # fmt: skip
    else:
        image = addon_image(runtime, pytestconfig, work)
        data, share = work / "data", work / "share"
        make_voice(share / "ishowtts" / "voices", VOICE)
        shutil.copytree(model, share / "ishowtts" / "model")
        data.mkdir()
        options = {**app_config()["options"], "voice": VOICE, "model_dir": "/share/ishowtts/model"}
        # As the Supervisor writes it: the options with their defaults filled in.
        (data / "options.json").write_text(json.dumps(options), encoding="utf-8")
        ingress = free_port()
        served = Served(
            runtime=runtime, image=image, name=name, uri=f"tcp://127.0.0.1:{port}", grace=int(app_config()["timeout"]),
            data_volume=str(data), voice_file_glob="/data/cache/voices/*.voice",
            ingress_url=f"http://127.0.0.1:{ingress}/",
            run_args=["--publish", f"127.0.0.1:{port}:10200", "--publish", f"127.0.0.1:{ingress}:8099",
                      "--volume", f"{data}:/data", "--volume", f"{share}:/share"],
        )  # fmt: skip
    served.create()
    try:
        served.start(pytestconfig)
        yield served
    finally:
        served.remove()
        if not Path(served.data_volume).is_absolute():
            runtime("volume", "rm", "--force", served.data_volume, check=False)


# --------------------------------------------------------------------------------------------------
# Tests


def test_the_images_install_the_torch_the_tests_downloaded() -> None:
    """The wheel folder holds the torch the Dockerfiles install (else the builds would not find it)."""
    for dockerfile in (ROOT / "docker" / "Dockerfile", ROOT / "addon" / "ishowtts" / "Dockerfile"):
        assert f"ARG TORCH_VERSION={TORCH_REQUIREMENT.split('==')[1]}\n" in dockerfile.read_text(
            encoding="utf-8"
        )


def test_nothing_of_the_build_mounts_stays_in_the_image(served: Served) -> None:
    """The CA bundle, pip.conf and wheels podman mounted into the build are not in the image. podman 4.3
    leaves the mount points it made (an empty file or folder each), never what was mounted there."""
    found = served.runtime(
        "run", "--rm", "--entrypoint", "sh", served.image.tag, "-c",
        "for p in /etc/pip.conf /run/host-ca.pem /run/wheels /run/dist; do"
        " [ -e $p ] && echo $p $(find $p -mindepth 1 | wc -l) $(du -sb $p | cut -f1); done; true",
    ).stdout.splitlines()  # fmt: skip
    leftovers = [line for line in found if line.split()[1:] not in (["0", "0"], ["0", "4096"])]
    assert leftovers == [], f"mounted content left in the image (path, files, bytes): {leftovers}"


def test_describe_lists_the_voice_and_says_the_model_is_ready(served: Served) -> None:
    info = asyncio.run(describe(served.uri))
    (program,) = [p for p in info.tts if p.installed]
    assert says_ready(program.description), program.description
    assert VOICE in [voice.name for voice in program.voices if voice.installed]


def test_a_plain_and_a_streaming_request_return_audio(served: Served) -> None:
    check_audio(asyncio.run(plain(served.uri, TEXT)), TEXT)
    events = asyncio.run(streamed(served.uri, STREAM_TEXT))
    assert events[-1].type == "synthesize-stopped"
    check_audio(events[:-1], *re.findall(r"[^.]+\.", STREAM_TEXT))


def test_the_images_healthcheck_turns_healthy(served: Served) -> None:
    """The image's own HEALTHCHECK command. podman runs it on demand (its timers need systemd); docker runs it
    on its interval (30 s)."""
    deadline = time.monotonic() + 120
    while True:
        if served.runtime.podman:
            ran = served.runtime("healthcheck", "run", served.name, check=False)
            if ran.returncode == 0:
                break
            detail = ran.stdout + ran.stderr
        else:
            health = served.inspect()["State"].get("Health") or {}
            if health.get("Status") == "healthy":
                break
            detail = json.dumps(health)
        if time.monotonic() > deadline:
            pytest.fail(f"the HEALTHCHECK did not pass within 120 s: {detail}\n{served.logs()}")
        time.sleep(2)
    state = served.inspect()["State"]
    assert (state.get("Health") or state.get("Healthcheck") or {}).get("Status") == "healthy", state


def test_the_server_runs_as_the_images_user(served: Served) -> None:
    """The x86 image's server (the container's first process, exec'd by the entrypoint) is not root. The app
    runs as root, as Home Assistant's apps do (its image has no USER)."""
    user = served.inspect()["Config"].get("User") or ""
    status = served.exec("cat", "/proc/1/status")
    uid = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
    assert uid is not None
    command = served.exec("cat", "/proc/1/cmdline").replace("\0", " ")
    assert "wyoming-ishowtts" in command, command
    if served.image.tag.endswith("wyoming-ishowtts:image-test"):
        assert user.split(":")[0] == uid.group(1) != "0", (user, status)
    else:
        assert user in ("", "root", "0") and uid.group(1) == "0", (user, status)


def test_a_stop_finishes_the_running_answer_and_exits_zero_within_the_grace(served: Served) -> None:
    """SIGTERM while an answer is being spoken: the answer arrives whole, the container exits 0 before its
    grace period (after which the runtime would SIGKILL it). The answer is a stream that stays open across
    the signal (its last sentence is sent once the server says it is stopping), so it is running at the
    signal however fast or slow the machine is, and what remains after it is one short sentence."""
    first, last = STOP_SENTENCES

    async def go() -> tuple[list[Event], float]:
        async with connect(served.uri) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=VOICE)).event())
            await client.write_event(SynthesizeChunk(text=first + " ").event())
            began = time.monotonic()
            stop = asyncio.create_task(
                asyncio.to_thread(
                    served.runtime, "stop", "--time", str(served.grace), served.name, timeout=120
                )
            )
            while "Stopping: finishing" not in served.run_log():
                assert not stop.done(), (
                    f"the container stopped without finishing the open stream: {served.run_log()}"
                )
                assert time.monotonic() - began < served.grace, served.run_log()
                await asyncio.sleep(0.2)
            await client.write_event(SynthesizeChunk(text=last).event())
            await client.write_event(SynthesizeStop().event())
            events = await read_until(client, "synthesize-stopped")
            await stop
            return events, time.monotonic() - began

    events, seconds = asyncio.run(go())
    assert events[-1].type == "synthesize-stopped", [e.type for e in events]
    check_audio(events[:-1], first, last)
    state = served.inspect()["State"]
    log = served.run_log()
    assert "Stopping: finishing 1 connection(s)' answers" in log, log  # the answer was running at the signal
    assert not state["Running"] and state["ExitCode"] == 0, (state, log)
    assert seconds < served.grace, f"the stop took {seconds:.1f} s, the grace period is {served.grace} s"


def test_a_restart_finds_the_prepared_voice_in_the_data_volume(
    served: Served, pytestconfig: pytest.Config
) -> None:
    """The voice was prepared (and cached in /data) by the requests above; the restarted container reuses it."""
    if served.inspect()["State"]["Running"]:
        served.runtime("stop", "--time", str(served.grace), served.name, timeout=120)
    first_log = served.logs()
    assert f"Prepared voice {VOICE}" in first_log, first_log
    served.start(pytestconfig)
    listed = served.exec("sh", "-c", f"ls -l --time-style=+%s {served.voice_file_glob}")
    check_audio(asyncio.run(plain(served.uri, TEXT)), TEXT)
    assert served.exec("sh", "-c", f"ls -l --time-style=+%s {served.voice_file_glob}") == listed
    assert f"Prepared voice {VOICE}" not in served.run_log(), served.run_log()


@pytest.mark.parametrize("served", ["app"], indirect=True)
def test_the_apps_ingress_port_answers(served: Served) -> None:
    """The studio behind the app's ingress port: only the Supervisor's proxy address may use it (run.sh's
    --http-proxy), so a request from this machine gets the studio's own refusal, as JSON."""
    assert served.ingress_url is not None
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(served.ingress_url + "api/voices", timeout=30)
    assert refused.value.code == 403
    assert json.loads(refused.value.read())["error"]["code"] == "not-from-proxy"


def jetson_requirements(wheel: Path) -> list[str]:
    """The wheel's requirements with its default extras, as the Jetson image's pip sees them (Python 3.10 on
    Linux aarch64), less torch, which the L4T base has."""
    wanted = requirements_for_jetson(wheel_metadata(wheel), EXTRAS.split(","))
    return [str(r) for r in wanted if r.name != "torch"]


BUILT_FROM_SOURCE_ON_JETSON = "zeroconf"
"""The one dependency PyPI has no aarch64 wheel of for Python 3.10 at the version pinned: every wyoming from 1.7
on pins ``zeroconf==0.88.0`` for its ``zeroconf`` extra, and zeroconf's aarch64 wheels start at 0.144. pip
builds it from its sdist in the Jetson image; docker/install-wheel.sh sets ``SKIP_CYTHON=1``, so the build is
pure Python (zeroconf's build script then compiles nothing) and needs no compiler on the target."""


def aarch64_resolve(tmp_path: Path, name: str, wanted: list[str]) -> dict[str, dict[str, Any]]:
    """pip's resolution of `wanted` for the Jetson (aarch64, glibc 2.35, CPython 3.10), wheels only: each
    package's name -> its metadata as pip's report gives it, with ``file``, the wheel pip would install."""
    report = tmp_path / f"{name}.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
            "--target", str(tmp_path / f"target-{name}"), "--report", str(report),
            *target_args("3.10", "aarch64", 35), *wanted,
        ],
        capture_output=True, text=True, timeout=900, check=False, env=pip_env(),
    )  # fmt: skip
    assert result.returncode == 0, f"pip could not resolve the Jetson image's installs:\n{result.stderr}"
    installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    return {
        item["metadata"]["name"].lower(): {
            **item["metadata"],
            "file": item["download_info"]["url"].rsplit("/", 1)[-1],
        }
        for item in installs
    }


def requirements_for_jetson(metadata: str, extras: list[str]) -> list[Requirement]:
    """The ``Requires-Dist`` lines of a wheel's METADATA that apply on the Jetson with `extras`."""
    where = {"python_version": "3.10", "python_full_version": "3.10.12", "platform_machine": "aarch64",
             "sys_platform": "linux", "platform_system": "Linux"}  # fmt: skip
    wanted = []
    for line in re.findall(r"^Requires-Dist: (.+)$", metadata, re.MULTILINE):
        requirement = Requirement(line)
        if requirement.marker is None or any(
            requirement.marker.evaluate({**where, "extra": extra}) for extra in ["", *extras]
        ):
            requirement.marker = None
            wanted.append(requirement)
    return wanted


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name).decode()


def test_the_jetson_images_installs_resolve_for_aarch64_and_python_3_10(tmp_path: Path) -> None:
    """What ``docker/Dockerfile.jetson`` installs besides the base's torch, resolved by pip for its platform
    (JetPack 6: Ubuntu 22.04, glibc 2.35, aarch64, Python 3.10) without emulation: every dependency of the
    app's wheel with its extras has a wheel there, but zeroconf (`BUILT_FROM_SOURCE_ON_JETSON`), which is
    built here from its sdist as install-wheel.sh builds it (``SKIP_CYTHON=1``): the build must hold Python
    files only (so it builds the same on the target with no compiler), and its own requirements must have
    aarch64 wheels. torch is left out: it comes from the L4T base (2.5.0a0+nv, which satisfies the wheel's
    torch>=2.5.0a0 and which pip leaves alone); pip would evaluate torch's own requirements' markers for this
    machine (x86_64), not the target. Not covered: the base itself, CUDA on the Orin, and anything run on
    arm64 (docs/install.md, "Which images were built where")."""
    assert "SKIP_CYTHON=1" in (ROOT / "docker" / "install-wheel.sh").read_text(encoding="utf-8")
    wanted = jetson_requirements(project_wheel_at(tmp_path))
    assert any(r.startswith("rjieba") for r in wanted) and any("[zeroconf]" in r for r in wanted), wanted
    # 1. Everything with wheels, wyoming without its zeroconf extra: gives the zeroconf pin wyoming makes.
    plain = [r.replace("[zeroconf]", "") for r in wanted]
    first = aarch64_resolve(tmp_path, "without-zeroconf", plain)
    wyoming_metadata = "".join(f"Requires-Dist: {line}\n" for line in first["wyoming"]["requires_dist"])
    (pin,) = [
        r for r in requirements_for_jetson(wyoming_metadata, ["zeroconf"]) if r.name == BUILT_FROM_SOURCE_ON_JETSON
    ]  # fmt: skip
    # 2. zeroconf from its sdist, as the image's pip builds it (no cache: a wheel built otherwise is not reused).
    built = tmp_path / "built"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "--no-binary", pin.name,
         "--wheel-dir", str(built), str(pin)],
        capture_output=True, text=True, timeout=900, check=False, env={**pip_env(), "SKIP_CYTHON": "1"},
    )  # fmt: skip
    assert result.returncode == 0, f"{pin} did not build from its sdist:\n{result.stderr[-3000:]}"
    (zeroconf_wheel,) = built.glob("zeroconf-*.whl")
    with zipfile.ZipFile(zeroconf_wheel) as archive:
        compiled = [n for n in archive.namelist() if n.endswith((".so", ".pyd", ".dylib"))]
    assert compiled == [], (
        f"the sdist build compiled code, which the Jetson would need a compiler for: {compiled}"
    )
    # 3. The whole set: the rest as in step 1 plus zeroconf's own requirements, wheels only.
    zeroconf_needs = [str(r) for r in requirements_for_jetson(wheel_metadata(zeroconf_wheel), [])]
    files = {n: m["file"] for n, m in aarch64_resolve(tmp_path, "all", [*plain, *zeroconf_needs]).items()}
    needs = (
        "numpy",
        "soundfile",
        "soxr",
        "safetensors",
        "wyoming",
        "aiohttp",
        "rjieba",
        "pypinyin",
        "ifaddr",
    )
    for needed in needs:
        assert needed in files, sorted(files)
    foreign = {n: f for n, f in files.items() if not re.search(r"(aarch64|-any)\.whl$", f)}
    assert foreign == {}, foreign
