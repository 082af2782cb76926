"""Server-side settings.

Everything the Wyoming server needs is decided once on the command line and frozen here, so no
part of the server can change configuration behind another part's back.  Engine settings live in
``engine/options.py`` (``EngineSettings``) because the engine is usable without the server.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..arguments import DEFAULT_URI
from ..engine.options import SAMPLE_RATE
from ..voices import default_cache_dir

MB = 1024 * 1024


def default_of(settings: type, name: str) -> Any:
    """The default of field `name` of a settings dataclass: each default is written once, in its dataclass,
    and the command line (cli.py) shows and uses that one."""
    found = next(f for f in dataclasses.fields(settings) if f.name == name)
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    assert found.default is not dataclasses.MISSING, f"{settings.__name__}.{name} has no default"
    return found.default


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
    host: str = "127.0.0.1"
    token: str | None = None
    proxy: str | None = None
    max_upload_bytes: int = 10 * MB
    max_clip_seconds: float = 30.0

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
    samples_per_chunk: int = 1024
    output_rate: int = SAMPLE_RATE
    max_text_chars: int = 5000
    max_queued_per_client: int = 4
    max_queued_total: int = 32
    max_connections: int = 64
    stream_idle_timeout: float = 60.0
    shutdown_timeout: float = 10.0
    # Engine pieces computed for one request but not yet written to its client.  Keeps a client
    # that stops reading from making the server hold its whole answer in memory.
    max_buffered_pieces: int = 2
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
    audio_cache_bytes: int = 256 * MB
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
        if not 0 <= self.shutdown_timeout < float("inf"):  # also refuses nan
            raise ValueError("shutdown_timeout must be a finite number of seconds, 0 or more")
        if self.audio_cache_bytes < 0:
            raise ValueError("audio_cache_bytes must not be negative")
