"""The release's version and image names, and the check that every place naming them agrees.

One place holds each fact:

- the version is ``[project] version`` in ``pyproject.toml``.  The add-on's ``config.yaml`` must
  repeat it (the Home Assistant Supervisor reads it from there and pulls ``image:version``), the
  add-on's ``CHANGELOG.md`` must open with it (shown to users before an update), the git tag must be
  ``v`` + it, and the image tags are this script's output, never typed into the workflow;
- the add-on's image name, with its ``{arch}`` placeholder, and its architectures are in
  ``config.yaml``; the release workflow's matrices must build exactly those images, on a runner of
  each image's architecture, and push the server images under the same registry owner.

Used by the release workflow (its first job), by tests/test_release.py and by a maintainer before
tagging (docs/releasing.md)::

    python .github/release.py version
    python .github/release.py check [--tag v0.1.0] [--owner GITHUB_OWNER]

``check`` prints ``version=...`` and ``latest_tag=...`` lines (the workflow appends them to
``$GITHUB_OUTPUT``) and exits 0, or lists every disagreement on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = "pyproject.toml"
APP_CONFIG = "addon/ishowtts/config.yaml"
APP_CHANGELOG = "addon/ishowtts/CHANGELOG.md"
RELEASE_WORKFLOW = ".github/workflows/release.yml"

REGISTRY = "ghcr.io"
# The GitHub-hosted runner that builds each Home Assistant architecture natively (no emulation).
RUNNER_FOR_ARCH = {"amd64": "ubuntu-24.04", "aarch64": "ubuntu-24.04-arm"}
# The expression through which every image tag and label in the workflow gets the version.
VERSION_EXPRESSION = "${{ needs.check.outputs.version }}"
# An image reference for the Supervisor: registry/owner/name, lower case, no tag, {arch} allowed.
APP_IMAGE = re.compile(r"^(?P<prefix>[a-z0-9.-]+/[a-z0-9._-]+)/(?P<name>[a-z0-9._{}-]+)$")
TAG_PATTERN = "v*"  # the workflow's trigger; a tag is "v" + the version


@dataclass(frozen=True)
class Release:
    """What a release publishes, read from the files that own each fact."""

    version: str
    app_image: str  # e.g. ghcr.io/owner/{arch}-ishowtts
    app_arches: list[str]

    @property
    def registry_prefix(self) -> str:
        return self.app_image.rsplit("/", 1)[0]

    @property
    def latest_tag(self) -> str:
        """Only final releases move ``latest``: the Supervisor treats it as the default branch."""
        return "" if Version(self.version).is_prerelease else "latest"


def read_text(root: Path, name: str) -> str:
    return (root / name).read_text(encoding="utf-8")


def load_yaml(root: Path, name: str) -> Any:
    return yaml.safe_load(read_text(root, name))


def read_release(root: Path) -> Release:
    project = tomllib.loads(read_text(root, PYPROJECT))["project"]
    config = load_yaml(root, APP_CONFIG)
    return Release(
        version=str(project["version"]),
        app_image=str(config.get("image", "")),
        app_arches=[str(a) for a in config.get("arch", [])],
    )


def changelog_version(text: str) -> str | None:
    """The version of the first ``## VERSION`` heading, the newest entry."""
    match = re.search(r"^## +(\S+)", text, re.MULTILINE)
    return match.group(1) if match else None


def matrix_include(workflow: Mapping[str, Any], job: str) -> list[dict[str, Any]]:
    include = workflow["jobs"][job]["strategy"]["matrix"]["include"]
    return [dict(entry) for entry in include]


def step_using(workflow: Mapping[str, Any], job: str, action: str) -> dict[str, Any]:
    steps = [s for s in workflow["jobs"][job]["steps"] if str(s.get("uses", "")).startswith(action + "@")]
    if len(steps) != 1:
        raise KeyError(f"job {job!r} has {len(steps)} steps using {action}, expected 1")
    return dict(steps[0].get("with") or {})


def tag_lines(value: object) -> list[str]:
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def version_problems(root: Path, release: Release) -> list[str]:
    problems = []
    try:
        canonical = str(Version(release.version))
    except InvalidVersion:
        return [f"{PYPROJECT}: version {release.version!r} is not a PEP 440 version"]
    if canonical != release.version:
        problems.append(
            f"{PYPROJECT}: write the version as {canonical!r} (PyPI normalizes {release.version!r}, "
            "and the image tags must equal the published version)"
        )
    config_version = load_yaml(root, APP_CONFIG).get("version")
    if config_version != release.version:
        problems.append(f"{APP_CONFIG}: version is {config_version!r}, {PYPROJECT} says {release.version!r}")
    newest = changelog_version(read_text(root, APP_CHANGELOG))
    if newest != release.version:
        problems.append(f"{APP_CHANGELOG}: newest entry is {newest!r}; add '## {release.version}' at the top")
    return problems


def image_problems(release: Release) -> list[str]:
    match = APP_IMAGE.match(release.app_image)
    if match is None or not match.group("prefix").startswith(REGISTRY + "/"):
        return [
            f"{APP_CONFIG}: image {release.app_image!r} is not '{REGISTRY}/OWNER/{{arch}}-NAME' "
            "(lower case, no tag: the Supervisor adds the version)"
        ]
    if "{arch}-" not in match.group("name"):
        return [f"{APP_CONFIG}: image {release.app_image!r} must name one image per arch with '{{arch}}-'"]
    return []


def workflow_problems(root: Path, release: Release) -> list[str]:
    workflow = load_yaml(root, RELEASE_WORKFLOW)
    where = RELEASE_WORKFLOW
    problems = []
    # PyYAML reads the bare key `on` as the boolean true.
    trigger = workflow.get("on", workflow.get(True)) or {}
    tags = (trigger.get("push") or {}).get("tags") if isinstance(trigger, dict) else None
    if tags != [TAG_PATTERN]:
        problems.append(f"{where}: must run on pushed tags {[TAG_PATTERN]}, not {tags!r}")

    # The add-on images: one per architecture in config.yaml, named as config.yaml names them.
    app_matrix = matrix_include(workflow, "addon")
    arches = [str(entry.get("arch")) for entry in app_matrix]
    if sorted(arches) != sorted(set(release.app_arches)) or len(arches) != len(set(arches)):
        problems.append(
            f"{where}: jobs.addon builds arches {arches}, {APP_CONFIG} lists {release.app_arches}"
        )
    for entry in app_matrix:
        arch = str(entry.get("arch"))
        expected = release.app_image.replace("{arch}", arch)
        if entry.get("image") != expected:
            problems.append(
                f"{where}: jobs.addon image for {arch} is {entry.get('image')!r}, expected {expected!r}"
            )
        if entry.get("runner") != RUNNER_FOR_ARCH.get(arch):
            problems.append(
                f"{where}: jobs.addon builds {arch} on {entry.get('runner')!r}, "
                f"expected {RUNNER_FOR_ARCH.get(arch)!r} (native, no emulation)"
            )
    build = step_using(workflow, "addon", "home-assistant/builder/actions/build-image")
    if build.get("image") != "${{ matrix.image }}" or build.get("arch") != "${{ matrix.arch }}":
        problems.append(
            f"{where}: jobs.addon must build image ${{{{ matrix.image }}}} for ${{{{ matrix.arch }}}}"
        )
    if build.get("version") != VERSION_EXPRESSION or VERSION_EXPRESSION not in tag_lines(
        build.get("image-tags")
    ):
        problems.append(f"{where}: jobs.addon must tag and label its image with {VERSION_EXPRESSION}")

    # The multi-arch manifest over the same per-arch images.
    manifest = step_using(
        workflow, "addon-manifest", "home-assistant/builder/actions/publish-multi-arch-manifest"
    )
    try:
        manifest_arches = json.loads(str(manifest.get("architectures")))
    except json.JSONDecodeError:
        manifest_arches = None
    if manifest_arches != release.app_arches:
        problems.append(
            f"{where}: jobs.addon-manifest joins arches {manifest_arches}, {APP_CONFIG} lists {release.app_arches}"
        )
    joined = f"{manifest.get('registry-prefix')}/{{arch}}-{manifest.get('image-name')}"
    if joined != release.app_image:
        problems.append(
            f"{where}: jobs.addon-manifest reads {joined!r}, {APP_CONFIG} names {release.app_image!r}"
        )
    if tag_lines(manifest.get("image-tags"))[:1] != [VERSION_EXPRESSION]:
        problems.append(f"{where}: jobs.addon-manifest's first tag must be {VERSION_EXPRESSION}")

    # The server images: the same registry owner, the version in their tags.
    for entry in matrix_include(workflow, "server"):
        image = str(entry.get("image"))
        if image.rsplit("/", 1)[0] != release.registry_prefix:
            problems.append(
                f"{where}: jobs.server image {image!r} is not under {release.registry_prefix!r} "
                f"(the owner in {APP_CONFIG})"
            )
        platform_arch = {"linux/amd64": "amd64", "linux/arm64": "aarch64"}.get(str(entry.get("platform")))
        if platform_arch is None or entry.get("runner") != RUNNER_FOR_ARCH[platform_arch]:
            problems.append(
                f"{where}: jobs.server builds {entry.get('platform')!r} on {entry.get('runner')!r} (not native)"
            )
    server_build = step_using(workflow, "server", "docker/build-push-action")
    if not any(VERSION_EXPRESSION in line for line in tag_lines(server_build.get("tags"))):
        problems.append(f"{where}: jobs.server must tag its images with {VERSION_EXPRESSION}")
    return problems


def check(root: Path, tag: str | None, owner: str | None) -> tuple[Release, list[str]]:
    release = read_release(root)
    problems = version_problems(root, release) + image_problems(release)
    try:
        problems += workflow_problems(root, release)
    except (KeyError, TypeError, AttributeError) as err:
        problems.append(f"{RELEASE_WORKFLOW}: not the expected shape ({err!r})")
    if tag is not None and tag != f"v{release.version}":
        problems.append(f"tag {tag!r} does not match {PYPROJECT}'s version: expected 'v{release.version}'")
    if owner is not None and release.registry_prefix != f"{REGISTRY}/{owner.lower()}":
        problems.append(
            f"{APP_CONFIG}: image {release.app_image!r} is not under this repository's registry "
            f"{REGISTRY}/{owner.lower()}; a fork or a moved repository must change the owner in "
            f"{APP_CONFIG} and {RELEASE_WORKFLOW}"
        )
    return release, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="print the version (pyproject.toml)")
    check_parser = commands.add_parser("check", help="check that every place agrees; print workflow outputs")
    check_parser.add_argument("--tag", help="the pushed git tag (e.g. v0.1.0)")
    check_parser.add_argument("--owner", help="the GitHub repository owner the images are pushed under")
    args = parser.parse_args(argv)

    try:
        if args.command == "version":
            print(read_release(args.root).version)
            return 0
        release, problems = check(args.root, args.tag, args.owner)
    except (OSError, KeyError, yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        print(f"release check: cannot read the release files: {err}", file=sys.stderr)
        return 1
    if problems:
        print(f"release check: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"version={release.version}")
    print(f"latest_tag={release.latest_tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
