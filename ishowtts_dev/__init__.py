"""Developer tooling for wyoming-ishowtts: benchmark, soak run, server launcher, precision study.

Not part of the wheel or the Docker images; nothing in ``wyoming_ishowtts`` imports it. Run it from a
source checkout (``script/bench``, ``script/soak``, ``python -m ishowtts_dev...``).
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
"""The source checkout this package runs from (its parent folder)."""


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child ``python -m ishowtts_dev...`` or ``-m wyoming_ishowtts``:
    the checkout first on the module path, so the child runs this checkout's code from any folder."""
    path = os.pathsep.join(p for p in (str(CHECKOUT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}
