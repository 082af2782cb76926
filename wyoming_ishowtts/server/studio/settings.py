"""Settings of the voice studio (the HTTP page), decided once on the command line."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_MAX_UPLOAD_MB = 10.0
DEFAULT_MAX_CLIP_SECONDS = 30.0


@dataclass(frozen=True)
class StudioSettings:
    """Where the studio listens, who may use it, and how much a client may upload.

    ``token`` None means no authentication, like Wyoming itself; the default host is loopback for
    that reason.  ``max_upload_bytes`` bounds one request body (Home Assistant's ingress proxy
    allows 16 MiB); ``max_clip_seconds`` bounds a clip's length before anything else looks at it.
    """

    port: int
    host: str = DEFAULT_HTTP_HOST
    token: str | None = None
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024)
    max_clip_seconds: float = DEFAULT_MAX_CLIP_SECONDS

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"http port must be 0-65535 (got {self.port})")
        if self.token is not None and not self.token:
            raise ValueError("the http token must not be empty")
        if self.max_upload_bytes < 1024:
            raise ValueError("max_upload_bytes must be at least 1024")
        if self.max_clip_seconds <= 0:
            raise ValueError("max_clip_seconds must be positive")
