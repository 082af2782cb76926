"""Moved: the soak run is developer tooling in ishowtts_dev.soak, outside the package (not in the wheel or the images).

This stub stays in a source checkout only, so that ``python -m wyoming_ishowtts.soak``
says where it went (pyproject.toml leaves it out of the wheel).
"""

import sys

sys.exit(
    "wyoming_ishowtts.soak moved to ishowtts_dev.soak: run script/soak, or python -m ishowtts_dev.soak from a source checkout"
)
