"""The user-facing pages: the README stays a short user's page whose commands work, and no link in the
README or docs/ points at a file or heading that is not there.

A newcomer reads the README first (issue 27): its two commands must be in the first lines, it must stay
short, and a command in it that no longer exists (or an option the command no longer takes) is a broken
first ten minutes. Links are checked the way GitHub renders them: a relative path must name a file of the
checkout, and a `#anchor` must be the GitHub id of a heading in the page it points into.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The pages a user reads; every relative link in them is checked.
PAGES = sorted([README, ROOT / "BENCHMARKS.md", ROOT / "voices" / "README.md", *(ROOT / "docs").glob("*.md")])

FENCE_RE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE_RE = re.compile(r"`[^`\n]*`")
LINK_RE = re.compile(r"!?\[[^\]\n]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING_RE = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without code (fenced blocks, inline spans), where `[x](y)` is not a link."""
    return INLINE_CODE_RE.sub("", FENCE_RE.sub("", text))


def github_anchor(heading: str) -> str:
    """GitHub's id for a heading: its text (Markdown marks and links reduced to their words), lower-case,
    every character but letters, digits, `_`, `-` and spaces dropped, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its words
    text = text.replace("`", "").replace("*", "")
    text = text.lower()
    text = "".join(c for c in text if c.isalnum() or c in "_- ")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading id of a page, with GitHub's -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    ids = set()
    for heading in HEADING_RE.findall(FENCE_RE.sub("", page.read_text(encoding="utf-8"))):
        slug = github_anchor(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK_RE.findall(prose(page.read_text(encoding="utf-8")))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # https:, mailto: ...: not a file here
    ]


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        into = (page.parent / path_part).resolve() if path_part else page
        if not into.exists():
            problems.append(f"{target}: no file {shown(into)}")
        elif anchor and into.suffix == ".md" and anchor not in anchors(into):
            problems.append(f"{target}: no heading with the id #{anchor} in {shown(into)}")
    return problems


def test_github_anchor_follows_githubs_rules() -> None:
    """The anchors the link check expects, for headings of the kinds these pages have."""
    assert github_anchor("Connecting Home Assistant") == "connecting-home-assistant"
    assert github_anchor("Docker (NVIDIA GPU, x86_64)") == "docker-nvidia-gpu-x86_64"
    assert github_anchor("What `script/setup --dev` installs") == "what-scriptsetup---dev-installs"
    assert github_anchor("Home Assistant app (add-on)") == "home-assistant-app-add-on"
    assert github_anchor("GPU (H100/H200): the one-command proof") == "gpu-h100h200-the-one-command-proof"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_names_an_existing_file_and_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_sees_a_link_to_a_removed_heading(tmp_path: Path) -> None:
    """A check that finds nothing wrong in the real pages must still find something wrong somewhere."""
    (tmp_path / "other.md").write_text("# Other\n\n## Kept\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#kept) [gone](other.md#removed) [no file](missing.md) [self](#page)\n"
        "`[in code](nowhere.md)` [web](https://example.com/x)\n",
        encoding="utf-8",
    )
    assert [p.split(":")[0] for p in broken_links(page)] == ["other.md#removed", "missing.md"]


# ---- the README itself ------------------------------------------------------------------------------


def readme_commands() -> list[str]:
    """Every shell command in the README: each line of its indented and fenced code blocks (comments cut),
    split at `&&`."""
    text = README.read_text(encoding="utf-8")
    lines = [
        line[4:] for line in text.splitlines() if line.startswith("    ") and not line.startswith("     ")
    ]
    for block in re.findall(r"^```(?:sh|bash|console)?\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        lines.extend(block.splitlines())
    commands: list[str] = []
    for line in lines:
        line = re.sub(r"\s+#.*$", "", line).strip()
        commands.extend(part.strip() for part in line.split("&&") if part.strip())
    return commands


def test_readme_opens_with_the_two_commands_and_stays_short() -> None:
    text = README.read_text(encoding="utf-8")
    first = text.splitlines()[:15]
    assert "    script/setup && script/run" in first
    assert "    script/setup --dev && script/test" in first
    words = len(text.split())
    assert words < 900, f"README.md has {words} words; contributor material belongs in docs/development.md"


def env_and_argv(command: str) -> tuple[dict[str, str], list[str]]:
    argv = shlex.split(command)
    env = {}
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        name, _, value = argv.pop(0).partition("=")
        env[name] = value
    return env, argv


def options(argv: list[str]) -> list[str]:
    return [arg.split("=")[0] for arg in argv if arg.startswith("--")]


def help_text(argv: list[str]) -> str:
    """`--help` of a command the README names, run from the checkout the tests import."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if argv[0] == ".venv/bin/python":
        argv = [sys.executable, *argv[1:]]
    result = subprocess.run(
        [*argv, "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{shlex.join(argv)} --help: {result.stderr}"
    return result.stdout


# Commands that set up or run everything (minutes, downloads): their options are read from the script.
SCRIPTS_READ_NOT_RUN = {"script/setup", "script/test"}


def test_every_readme_command_exists_and_takes_the_options_the_readme_gives() -> None:
    commands = readme_commands()
    assert {"script/setup", "script/run", "script/setup --dev", "script/test"} <= set(commands)
    for command in commands:
        env, argv = env_and_argv(command)
        assert argv, command
        program = argv[0]
        if program.startswith("script/"):
            assert os.access(ROOT / program, os.X_OK), f"{command}: {program} is not an executable script"
        if program in SCRIPTS_READ_NOT_RUN:
            script = (ROOT / program).read_text(encoding="utf-8")
            for name in options(argv):  # a branch of the script's `case` on its arguments
                assert re.search(rf"^\s*(?:[^)\n]*\|\s*)?{re.escape(name)}\s*[|)]", script, re.MULTILINE), (
                    f"{command}: {program} has no case for {name}"
                )
            for name in env:  # read as ${NAME...}
                assert "${" + name in script, f"{command}: {program} never reads {name}"
        elif program == "script/run" or program == ".venv/bin/python":
            # The module for python -m; script/run passes its arguments to the server.
            head = argv[:3] if program == ".venv/bin/python" else argv[:1]
            if len(argv) > 3 and program == ".venv/bin/python" and not argv[3].startswith("-"):
                head = argv[:4]  # a subcommand: python -m wyoming_ishowtts.voices check ...
            usage = help_text(head)
            for name in options(argv):
                assert name in usage, f"{command}: {shlex.join(head)} has no option {name}"
        else:
            pytest.fail(f"{command}: a README command this test does not know how to check")


def test_script_setup_refuses_an_unknown_argument_before_it_installs_anything(tmp_path: Path) -> None:
    """`script/setup --dev` is the README's second command; a mistyped flag must not fall back to a plain
    set-up (and then a puzzling `script/test`). Run from a copy in an empty folder, with no Python to make
    an environment with, so that a script that went on could install nothing anywhere."""
    (tmp_path / "script").mkdir()
    setup = tmp_path / "script" / "setup"
    setup.write_bytes((ROOT / "script" / "setup").read_bytes())
    result = subprocess.run(
        ["bash", str(setup), "--devel"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHON": str(tmp_path / "no-python")},
    )
    assert result.returncode == 2, result.stderr
    assert "unknown argument '--devel'" in result.stderr and "script/setup --dev" in result.stderr
    assert not (tmp_path / ".venv").exists()
