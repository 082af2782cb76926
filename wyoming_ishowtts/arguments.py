"""Argument types shared by the command lines (the server, ``synthesize``, the health check, the dev tools).

Each turns a bad value into an ``argparse`` error that names the option, never a traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
from urllib.parse import urlparse

DEFAULT_URI = "tcp://127.0.0.1:10200"
"""Where the server listens and the health check asks: loopback only (Wyoming has no authentication)."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number, 0 or more (seconds to wait, where 0 is "not at all"; a size, where 0 is "off")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text}")
    return value


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {value}")
    return value


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address (not a host name: names can be made to point anywhere)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an IP address such as 172.30.32.2, got {text!r}") from None


def nonempty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def nfe(text: str) -> int | None:
    """``auto`` (None: the adaptive step policy) or a fixed number of sampler steps."""
    if text == "auto":
        return None
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"use auto or a number of steps: {err}") from None


def device(text: str) -> str:
    """Where the engine runs: ``auto``, ``cpu``, ``cuda`` (the current GPU: the first one unless the
    process says otherwise) or ``cuda:N`` (GPU number N), so that one host can run one server per GPU."""
    if text in ("auto", "cpu", "cuda"):
        return text
    kind, colon, index = text.partition(":")
    if kind == "cuda" and colon and index.isascii() and index.isdigit():
        return f"cuda:{int(index)}"
    raise argparse.ArgumentTypeError(
        f"use auto, cpu, cuda or cuda:N (N: the GPU's number, e.g. cuda:1), got {text!r}"
    )


def server_uri(text: str) -> str:
    """Where a Wyoming server listens: ``tcp://HOST:PORT``, ``unix://PATH`` or ``stdio://``."""
    parsed = urlparse(text)
    if parsed.scheme not in ("tcp", "unix", "stdio"):
        raise argparse.ArgumentTypeError("use tcp://HOST:PORT, unix://PATH or stdio://")
    if parsed.scheme == "tcp" and parsed.port is None:
        raise argparse.ArgumentTypeError("a tcp:// URI needs a port, e.g. tcp://127.0.0.1:10200")
    return text
