"""``python -m wyoming_ishowtts.voices check voices/NAME`` (and ``fetch-default``)."""

import sys

from . import _main

sys.exit(_main())
