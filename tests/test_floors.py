"""The floor environment pins exactly the lower bounds that pyproject.toml declares.

``script/test`` runs the suite a second time in ``.venv-floor``, built from ``requirements/floor.txt``: Python
3.10 with the oldest version pyproject.toml allows of every run-time dependency and of the extras the tests
use.  That run proves the lower bounds only while the two files agree, so a floor raised in one place and not
the other, or a new dependency without a pin, fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
FLOOR_EXTRAS = ("zh", "zeroconf")  # the extras the floor environment installs (script/setup --dev)


def declared() -> list[Requirement]:
    """Run-time dependencies and the floor extras' requirements, markers true on Python 3.10."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    texts = list(project["dependencies"])
    for extra in FLOOR_EXTRAS:
        texts += project["optional-dependencies"][extra]
    requirements = [Requirement(text) for text in texts]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"python_version": "3.10"})]


def pins() -> dict[str, Version]:
    pinned: dict[str, Version] = {}
    for line in (ROOT / "requirements" / "floor.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"floor.txt pins exactly: {line!r}"
            pinned[canonicalize_name(requirement.name)] = Version(spec.version)
    return pinned


def lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(bounds) == 1, f"{requirement} needs exactly one lower bound (>=)"
    return bounds[0]


def test_every_floor_is_pinned_at_its_lower_bound() -> None:
    pinned = pins()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not pinned in requirements/floor.txt"
        bound, pin = lower_bound(requirement), pinned[name]
        # A bound written as a pre-release (torch>=2.5.0a0 lets NVIDIA's JetPack builds, named
        # 2.5.0a0+..., satisfy it) is met by the final release of the same version.
        same = Version(pin.base_version) == Version(bound.base_version)
        assert same, f"{requirement.name}: pyproject.toml says >={bound}, requirements/floor.txt =={pin}"
        assert requirement.specifier.contains(pin, prereleases=True)
