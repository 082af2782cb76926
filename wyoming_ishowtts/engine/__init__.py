"""F5-TTS inference as a library: load a model once, prepare a voice once, synthesize text as audio pieces.

Nothing here knows about Wyoming, voice folders or the server. The public names are imported lazily,
so a torch-free module of this package can be imported without paying for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Engine
    from .options import EngineSettings, SynthesisOptions
    from .voice import PreparedClip, Voice

__all__ = ["Engine", "EngineSettings", "PreparedClip", "SynthesisOptions", "Voice"]

_HOMES = {
    "Engine": "core",
    "EngineSettings": "options",
    "SynthesisOptions": "options",
    "PreparedClip": "voice",
    "Voice": "voice",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(name)
