"""wyoming-ishowtts: a Wyoming text-to-speech server that speaks in a cloned voice with F5-TTS.

The public API is small: `Engine` (load once), `Voice` (prepare once), `SynthesisOptions` (per request),
`load_audio` (a reference clip from a file). They are imported lazily, so light entry points (the Docker
health check) do not pay for importing torch.

Layers: engine/ (the inference library), voices/ (voice folders and their prepared cache), server/ (the
Wyoming server); errors.py and arguments.py are shared by all three.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Engine, EngineSettings, SynthesisOptions, Voice
    from .engine.reference import load_audio

try:
    __version__ = version("wyoming-ishowtts")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Engine", "EngineSettings", "SynthesisOptions", "Voice", "__version__", "load_audio"]


def __getattr__(name: str) -> Any:
    if name in ("Engine", "EngineSettings", "SynthesisOptions", "Voice"):
        from . import engine

        return getattr(engine, name)
    if name == "load_audio":
        from .engine.reference import load_audio

        return load_audio
    raise AttributeError(name)
