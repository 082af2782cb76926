"""wyoming-ishowtts: a Wyoming text-to-speech server that speaks in a cloned voice with F5-TTS.

The public API is small: `Engine` (load once), `Voice` (prepare once), `SynthesisOptions` (per request).
They are imported lazily, so light entry points (the Docker health check) do not pay for importing torch.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine, EngineSettings, SynthesisOptions, Voice

try:
    __version__ = version("wyoming-ishowtts")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Engine", "EngineSettings", "SynthesisOptions", "Voice", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Engine", "EngineSettings", "SynthesisOptions", "Voice"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(name)
