"""The one error type of the studio: an HTTP status, a stable code and a message for a person."""

from __future__ import annotations

from typing import Any


class StudioError(Exception):
    """A request the studio refuses; the page shows ``message`` as it is, so write it for a user."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}
