"""Voices: what a voice is on disk, the registry of installed voices, the built-in voice, the prepared-voice
cache and the clip checker.

A voice is a folder ``<voices-dir>/<name>/`` with ``reference.wav``, ``reference.txt`` and optionally
``voice.toml`` (folder.py). The registry (registry.py) maps the names clients send to those folders; the
cache (cache.py) prepares each voice's clip once for the engine. ``python -m wyoming_ishowtts.voices check
voices/NAME`` checks a clip before it is used (check.py).
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """Where prepared voices and the built-in clip go by default (``--cache-dir``); follows XDG so the cache
    lands where users and container images expect it."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "wyoming-ishowtts"
