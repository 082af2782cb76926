"""Moved: the benchmark is developer tooling in ishowtts_dev.bench, outside the package (not in the wheel or the images).

This stub stays in a source checkout only, so that ``python -m wyoming_ishowtts.bench``
says where it went (pyproject.toml leaves it out of the wheel).
"""

import sys

sys.exit(
    "wyoming_ishowtts.bench moved to ishowtts_dev.bench: run script/bench, or python -m ishowtts_dev.bench from a source checkout"
)
