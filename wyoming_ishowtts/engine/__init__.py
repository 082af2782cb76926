"""F5-TTS inference as a library: load a model once, prepare a voice once, synthesize text as audio pieces.

Nothing here knows about Wyoming, voice folders or the server. The public names are imported lazily,
so a torch-free module of this package can be imported without paying for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Engine, EngineSettings, SynthesisOptions, Voice

__all__ = ["Engine", "EngineSettings", "SynthesisOptions", "Voice"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import core

        return getattr(core, name)
    raise AttributeError(name)
