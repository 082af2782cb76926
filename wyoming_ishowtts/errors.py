"""Every error that reaches a user, each with the stable `code` the server sends in a Wyoming `error` event.

docs/server.md's table of codes is written from this file (tests/test_server_errors.py holds them together).
The engine raises the first group, the voice folders the second, the server the third.
"""

from __future__ import annotations


class IShowTTSError(Exception):
    """Base class: a failure with a message written for the person who sees it."""

    code = "error"


# -- the engine ------------------------------------------------------------------------------------


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


# -- voices ----------------------------------------------------------------------------------------


class VoiceError(IShowTTSError):
    """A voice problem the client should hear about."""

    code = "voice-error"


class VoiceNotFoundError(VoiceError):
    code = "unknown-voice"


class VoiceUnavailableError(VoiceError):
    """The voice's clip cannot be read, or the built-in voice cannot be downloaded."""

    code = "voice-unavailable"


# -- the server: what a client sent, or asked more of than the limits allow ---------------------------


class BusyError(IShowTTSError):
    """A queue or connection limit was reached, or the server is shutting down."""

    code = "busy"


class EmptyTextError(IShowTTSError):
    code = "empty-text"


class TextTooLongError(IShowTTSError):
    """More text than ``--max-text-chars`` (a stream's chunks count together)."""

    code = "text-too-long"


class NoStreamError(IShowTTSError):
    """``synthesize-chunk`` or ``synthesize-stop`` without ``synthesize-start``."""

    code = "no-stream"


class StreamAlreadyStartedError(IShowTTSError):
    code = "stream-already-started"


class StreamIdleError(IShowTTSError):
    """A stream went quiet for ``--stream-idle-timeout`` seconds without ``synthesize-stop``."""

    code = "stream-idle-timeout"


class MalformedEventError(IShowTTSError):
    """An event that cannot be parsed, or whose data has the wrong types."""

    code = "malformed-event"


class UnknownEventError(IShowTTSError):
    """An event type a text-to-speech server does not handle."""

    code = "unknown-event"
