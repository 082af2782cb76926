"""Moved: the precision study is developer tooling in ishowtts_dev.precision, outside the package (not in the wheel or the images).

This stub stays in a source checkout only, so that ``python -m wyoming_ishowtts.tools.precision``
says where it went (pyproject.toml leaves it out of the wheel).
"""

import sys

sys.exit(
    "wyoming_ishowtts.tools.precision moved to ishowtts_dev.precision: run python -m ishowtts_dev.precision from a source checkout"
)
