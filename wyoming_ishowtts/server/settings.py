"""Server-side settings.

Everything the Wyoming server needs is decided once on the command line and frozen here, so no
part of the server can change configuration behind another part's back.  Engine settings live in
``engine/options.py`` (``EngineSettings``) because the engine is usable without the server.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from ..arguments import DEFAULT_URI
from ..engine.options import SAMPLE_RATE
from ..voices import default_cache_dir

DEFAULT_SAMPLES_PER_CHUNK = 1024
DEFAULT_MAX_TEXT_CHARS = 5000
DEFAULT_MAX_QUEUED_PER_CLIENT = 4
DEFAULT_MAX_QUEUED_TOTAL = 32
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_STREAM_IDLE_TIMEOUT = 60.0
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
DEFAULT_MAX_BUFFERED_PIECES = 2
DEFAULT_AUDIO_CACHE_MB = 256
MB = 1024 * 1024

DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_MAX_UPLOAD_MB = 10.0
DEFAULT_HTTP_MAX_CLIP_SECONDS = 30.0


@dataclass(frozen=True)
class StudioSettings:
    """The voice studio page (``--http-port``): where it listens, who may use it, how much a client may send.

    ``token`` None means no authentication, like Wyoming itself; the default host is loopback for that
    reason, and without a token only requests addressed to an IP address, ``localhost`` or ``host`` are
    answered (a DNS-rebinding page cannot forge those). ``proxy``: the one address allowed to connect, a
    reverse proxy that authenticates users itself (Home Assistant's ingress); then the Host is not checked.
    ``max_upload_bytes`` bounds one request body (Home Assistant's ingress allows 16 MiB);
    ``max_clip_seconds`` bounds a clip's length before anything else looks at it.
    """

    port: int
    host: str = DEFAULT_HTTP_HOST
    token: str | None = None
    proxy: str | None = None
    max_upload_bytes: int = int(DEFAULT_HTTP_MAX_UPLOAD_MB * 1024 * 1024)
    max_clip_seconds: float = DEFAULT_HTTP_MAX_CLIP_SECONDS

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"the http port must be 0-65535 (got {self.port})")
        if self.token is not None and not self.token:
            raise ValueError("the http token must not be empty")
        if self.proxy is not None:
            ipaddress.ip_address(self.proxy)  # ValueError: not an IP address
        if self.max_upload_bytes < 1024:
            raise ValueError("max_upload_bytes must be at least 1024")
        if not self.max_clip_seconds > 0:
            raise ValueError("max_clip_seconds must be positive")


@dataclass(frozen=True)
class ServerSettings:
    """Limits and behaviour of the Wyoming server (not of the engine)."""

    uri: str = DEFAULT_URI
    voices_dirs: tuple[Path, ...] = ()
    default_voice: str | None = None
    builtin_voice: bool = True
    cache_dir: Path = field(default_factory=default_cache_dir)
    samples_per_chunk: int = DEFAULT_SAMPLES_PER_CHUNK
    output_rate: int = SAMPLE_RATE
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    max_queued_per_client: int = DEFAULT_MAX_QUEUED_PER_CLIENT
    max_queued_total: int = DEFAULT_MAX_QUEUED_TOTAL
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    stream_idle_timeout: float = DEFAULT_STREAM_IDLE_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    # Engine pieces computed for one request but not yet written to its client.  Keeps a client
    # that stops reading from making the server hold its whole answer in memory.
    max_buffered_pieces: int = DEFAULT_MAX_BUFFERED_PIECES
    # Clients whose next text chunks the worker may sample in one batch (1: strictly one at a time).
    batch_requests: int = 1
    streaming: bool = True
    # Put numbers, units, times, markup... into words before the engine sees them (text/); a voice's
    # voice.toml can turn it off for itself (normalize = false).
    normalize: bool = True
    zeroconf_name: str | None = None
    zeroconf_host: str | None = None
    # The voice studio page (--http-port); None: not served.
    studio: StudioSettings | None = None
    # The audio cache of segments said before (audio_cache.py), in CACHE_DIR/audio; 0: off.
    audio_cache_bytes: int = DEFAULT_AUDIO_CACHE_MB * MB
    # Said for the default voice while the server is idle, so that their first request is a hit.
    warm_phrases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        positive = {
            "samples_per_chunk": self.samples_per_chunk,
            "output_rate": self.output_rate,
            "max_text_chars": self.max_text_chars,
            "max_queued_per_client": self.max_queued_per_client,
            "max_queued_total": self.max_queued_total,
            "max_connections": self.max_connections,
            "max_buffered_pieces": self.max_buffered_pieces,
            "batch_requests": self.batch_requests,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1 (got {value})")
        if self.stream_idle_timeout <= 0:
            raise ValueError("stream_idle_timeout must be positive")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must not be negative")
        if self.audio_cache_bytes < 0:
            raise ValueError("audio_cache_bytes must not be negative")
