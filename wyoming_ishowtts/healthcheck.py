"""Container health check: ask a running server to `describe` itself over Wyoming.

    python -m wyoming_ishowtts.healthcheck [--uri tcp://127.0.0.1:10200] [--timeout 5]

Exits 0 only when an `info` event arrives within the timeout and lists at least one installed
text-to-speech program; otherwise prints the reason on stderr and exits 1.  A bare port probe
would pass a server wedged after accepting a connection; answering `describe` needs the server's
event loop and its Wyoming handler.

The server answers `describe` while its model still loads. Plain, the check asks "is it alive" (a
container's health, Kubernetes' liveness); with ``--ready`` it also asks "can it synthesize now": the
program's description must say the model is loaded (readiness.py), which is what a load balancer or a
readiness probe should wait for before sending requests.

Only the `wyoming` client library is imported (no torch, no engine), so Docker can run this every
few seconds without loading anything heavy (tests/test_layering.py checks it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from wyoming.client import AsyncClient
from wyoming.info import Describe, Info

from .arguments import DEFAULT_URI, positive_float
from .readiness import says_ready

DEFAULT_TIMEOUT = 5.0

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1


@dataclass(frozen=True)
class HealthResult:
    """What the check found; `healthy` decides the exit status, `message` explains it."""

    healthy: bool
    message: str


def judge_info(info: Info, ready: bool = False) -> HealthResult:
    """Healthy only when the server offers at least one installed text-to-speech program; with `ready`,
    one whose description also says its model is loaded."""
    installed = [program for program in info.tts if program.installed]
    if not installed:
        if info.tts:
            return HealthResult(False, "info lists text-to-speech programs, but none is installed")
        return HealthResult(False, "info lists no text-to-speech program")
    if ready:
        installed = [program for program in installed if says_ready(program.description)]
        if not installed:
            return HealthResult(False, "the server is alive but its model is not loaded yet")
    voices = sum(1 for program in installed for voice in program.voices if voice.installed)
    names = ", ".join(program.name for program in installed)
    state = "ready" if ready else "healthy"
    return HealthResult(True, f"{state}: tts program(s) {names}; {voices} installed voice(s)")


async def _describe(uri: str, ready: bool) -> HealthResult:
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Describe().event())
        while True:
            event = await client.read_event()
            if event is None:
                return HealthResult(False, "server closed the connection before answering describe")
            if Info.is_type(event.type):
                return judge_info(Info.from_event(event), ready)
            # Anything else (a stray event) is skipped; the overall timeout bounds the wait.


async def check(uri: str, timeout: float, ready: bool = False) -> HealthResult:
    """Connect to `uri`, send `describe`, and judge the `info` answer (`judge_info`); never raises."""
    try:
        return await asyncio.wait_for(_describe(uri, ready), timeout=timeout)
    except asyncio.TimeoutError:
        return HealthResult(False, f"no info from {uri} within {timeout:g} s")
    except ValueError as err:  # malformed URI (AsyncClient.from_uri) or malformed info
        return HealthResult(False, f"bad URI or answer: {err}")
    except OSError as err:  # refused, unreachable, reset
        return HealthResult(False, f"cannot reach {uri}: {err}")
    except Exception as err:  # anything else is still "unhealthy", never a traceback in docker logs
        return HealthResult(False, f"describe failed: {type(err).__name__}: {err}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wyoming_ishowtts.healthcheck",
        description="Send a Wyoming describe and exit 0 only if an info with a tts program comes back.",
    )
    parser.add_argument("--uri", default=DEFAULT_URI, help=f"server to ask (default: {DEFAULT_URI})")
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds for connecting and answering together (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--ready",
        action="store_true",
        help="also require the model to be loaded (a readiness check; plain, a server still loading passes)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing when healthy")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = asyncio.run(check(args.uri, args.timeout, args.ready))
    if result.healthy:
        if not args.quiet:
            print(result.message)
        return EXIT_HEALTHY
    print(f"unhealthy: {result.message}", file=sys.stderr)
    return EXIT_UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
