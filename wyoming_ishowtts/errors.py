"""Every error that reaches a user, each with the stable `code` the server sends in a Wyoming `error` event.

docs/server.md's table of codes is written from this file (tests/test_server_errors.py holds them together).
The engine raises the first group, the voice folders the second, the server the third; the voice studio's
HTTP refusals (`StudioError`, each with a `StudioCode`: docs/studio.md) are the last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


# -- the voice studio (server/studio/): refusals of an HTTP request, each a stable code and a status -------


@dataclass(frozen=True)
class StudioCode:
    """What the studio answers a request it refuses: ``code`` in the JSON body, ``status`` the HTTP status."""

    code: str
    status: int


# What the client sent.
BAD_REQUEST = StudioCode("bad-request", 400)  # a malformed form or body, an unknown or repeated field
NOT_MULTIPART = StudioCode(BAD_REQUEST.code, 415)  # an audio upload that is not multipart/form-data
FIELD_TOO_LONG = StudioCode("field-too-long", 400)
BAD_TEXT = StudioCode("bad-text", 400)  # control characters
STUDIO_EMPTY_TEXT = StudioCode(EmptyTextError.code, 400)
STUDIO_TEXT_TOO_LONG = StudioCode(TextTooLongError.code, 400)
BAD_NAME = StudioCode("bad-name", 400)
MISSING_NAME = StudioCode("missing-name", 400)
MISSING_AUDIO = StudioCode("missing-audio", 400)
MISSING_TRANSCRIPT = StudioCode("missing-transcript", 400)
MISSING_VOICE = StudioCode("missing-voice", 400)
BAD_LANGUAGE = StudioCode("bad-language", 400)
BAD_SPEED = StudioCode("bad-speed", 400)
BAD_SETTINGS = StudioCode("bad-settings", 400)
UPLOAD_TOO_LARGE = StudioCode("upload-too-large", 413)
UPLOAD_STALLED = StudioCode("upload-stalled", 408)
# The clip uploaded.
EMPTY_AUDIO = StudioCode("empty-audio", 400)
UNREADABLE_AUDIO = StudioCode("unreadable-audio", 400)
TOO_MANY_CHANNELS = StudioCode("too-many-channels", 400)
RATE_TOO_HIGH = StudioCode("rate-too-high", 400)
CLIP_TOO_LONG = StudioCode("clip-too-long", 400)
UNUSABLE_CLIP = StudioCode("unusable-clip", 422)  # the clip checker's errors, as findings
# The voices.
STUDIO_UNKNOWN_VOICE = StudioCode(VoiceNotFoundError.code, 404)
NAME_TAKEN = StudioCode("name-taken", 409)
BAD_VOICE_TOML = StudioCode("bad-voice-toml", 409)  # a hand-written voice.toml the studio cannot rewrite
READ_ONLY_VOICE = StudioCode("read-only-voice", 403)
WRITE_FAILED = StudioCode("write-failed", 507)
# Who asks (guard.py).
HOST_NOT_ALLOWED = StudioCode("host-not-allowed", 403)
NOT_FROM_PROXY = StudioCode("not-from-proxy", 403)
CROSS_SITE_REQUEST = StudioCode("cross-site-request", 403)
TOKEN_REQUIRED = StudioCode("token-required", 401)
WRONG_TOKEN = StudioCode("wrong-token", 401)
# The server.
NOT_FOUND = StudioCode("not-found", 404)
STUDIO_BUSY = StudioCode(BusyError.code, 503)
NO_AUDIO = StudioCode("no-audio", 500)


class StudioError(Exception):
    """A request the studio refuses; the page shows ``message`` as it is, so write it for a user."""

    def __init__(self, what: StudioCode, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = what.status
        self.code = what.code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}
