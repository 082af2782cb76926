"""Errors that reach a user, each with a stable `code` the server forwards in a Wyoming `error` event."""

from __future__ import annotations


class IShowTTSError(Exception):
    """Base class: a failure with a message written for the person who sees it."""

    code = "error"


class ModelLoadError(IShowTTSError):
    """The model or vocoder could not be found, read or matched to its architecture."""

    code = "model-load"


class ReferenceAudioError(IShowTTSError, ValueError):
    """A voice's reference clip or transcript is unusable (missing, silent, too short, not audio)."""

    code = "voice-invalid"


class TextError(IShowTTSError, ValueError):
    """The text cannot be synthesized (empty, too long, or needs an extra that is not installed)."""

    code = "text-invalid"


class MissingExtraError(TextError):
    """Text needs an optional dependency group (e.g. `zh` for Chinese) that is not installed."""

    code = "extra-missing"


class SynthesisCancelled(IShowTTSError):
    """The caller asked to stop (client gone, server shutting down)."""

    code = "cancelled"


class EngineFailure(IShowTTSError):
    """The model failed while synthesizing (out of memory, non-finite output that a fallback could not fix)."""

    code = "synthesis-failed"
