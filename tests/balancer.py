"""Debian's HAProxy running the project's own docker/haproxy.cfg on loopback, for tests/test_scale.py.

The configuration file is used as it is: it reads the addresses it needs (listening address,
replicas, admin socket) and two timings from ``ISHOWTTS_*`` environment variables whose defaults are
the Docker Compose values, so the test and docker/compose.scale.yaml run the same health check,
balancing and timeouts.  HAProxy runs in the foreground (``-db``) and logs to stdout, which goes to a
file the test reads; its admin socket answers ``show stat`` and ``show sess``.

A missing ``haproxy`` binary fails the test (``.ci/run`` installs the Debian package), never skips it.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "docker" / "haproxy.cfg"
# The names docker/haproxy.cfg gives its replicas, in the order of ISHOWTTS_REPLICA_0, _1.
SERVER_NAMES = ("gpu0", "gpu1")
PROXY = "wyoming"


def haproxy_binary() -> str:
    """HAProxy from Debian's package; a failure (not a skip) when it is missing."""
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            "haproxy is not installed; the scaling tests run the real load balancer. "
            "Install Debian's package: apt-get install -y haproxy (.ci/run does).",
            pytrace=False,
        )
    return found


@dataclass(frozen=True)
class SessionLog:
    """One line of HAProxy's TCP log (``option tcplog``): written when a client connection ends."""

    client_port: int
    server: str  # "gpu0", "gpu1" or "<NOSRV>"
    total_ms: int
    bytes_to_client: int
    termination: str  # two letters: "--" normal, "SD" server aborted during data, "cD" client timeout…


_SESSION_LINE = re.compile(
    r"^\S+:(?P<port>\d+) \[[^\]]+\] \S+ [^/\s]+/(?P<server>\S+) "
    r"-?\d+/-?\d+/\+?(?P<total>-?\d+) \+?(?P<bytes>\d+) (?P<term>\S\S) "
)


class Balancer:
    """One HAProxy process in front of ``replicas`` (``host:port`` each, at most two)."""

    host = "127.0.0.1"

    def __init__(
        self,
        replicas: Sequence[str],
        work_dir: Path,
        *,
        idle_timeout: str | None = None,
        hard_stop_after: str | None = None,
    ) -> None:
        if not 1 <= len(replicas) <= len(SERVER_NAMES):
            raise ValueError(f"docker/haproxy.cfg names {len(SERVER_NAMES)} replicas")
        self.port = free_port()
        self.uri = f"tcp://{self.host}:{self.port}"
        work_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path = work_dir / "admin.sock"
        self.log_path = work_dir / "haproxy.log"
        self.env: dict[str, str] = {
            "ISHOWTTS_BIND": f"{self.host}:{self.port}",
            "ISHOWTTS_HAPROXY_SOCKET": str(self.socket_path),
        }
        # A replica left out points at a port nobody listens on: it is checked and stays down.
        for index in range(len(SERVER_NAMES)):
            address = replicas[index] if index < len(replicas) else f"{self.host}:{free_port()}"
            self.env[f"ISHOWTTS_REPLICA_{index}"] = address
        if idle_timeout is not None:
            self.env["ISHOWTTS_IDLE_TIMEOUT"] = idle_timeout
        if hard_stop_after is not None:
            self.env["ISHOWTTS_HARD_STOP_AFTER"] = hard_stop_after
        self.proc: subprocess.Popen[bytes] | None = None

    # -- process -------------------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> Balancer:
        binary = haproxy_binary()
        env = {**os.environ, **self.env}
        check = subprocess.run(
            [binary, "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, f"haproxy -c refused {CONFIG}:\n{check.stdout}{check.stderr}"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, "-db", "-f", str(CONFIG)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.command("show info")
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy's admin socket did not answer within {timeout} s:\n{self.log()}")

    def __enter__(self) -> Balancer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def soft_stop(self) -> None:
        """SIGUSR1, what the compose file's ``stop_signal`` sends: stop listening, let sessions finish."""
        assert self.proc is not None, "not started"
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (HAProxy's hard stop), then a kill; the exit status (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    # -- admin socket --------------------------------------------------------------------------------

    def command(self, line: str, timeout: float = 5.0) -> str:
        """One admin-socket command and its whole answer (the socket closes after answering)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.socket_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def servers(self) -> dict[str, Mapping[str, str]]:
        """``show stat`` rows of the replicas by server name (status, check_status, scur, …)."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(line for line in text.splitlines() if line.strip())
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == PROXY and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def status(self, server: str) -> str:
        return self.servers()[server]["status"]

    def wait_for_status(self, expected: Mapping[str, str], timeout: float) -> float:
        """Wait until each named server's status starts with the expected word ("UP", "DOWN") and the
        state comes from a finished check; the monotonic time it was first seen."""
        deadline = time.monotonic() + timeout
        rows: dict[str, Mapping[str, str]] = {}
        while time.monotonic() < deadline:
            rows = self.servers()
            if all(
                rows[name]["status"].startswith(state) and rows[name]["check_status"] not in ("", "INI")
                for name, state in expected.items()
            ):
                return time.monotonic()
            time.sleep(0.05)
        seen = {name: (row["status"], row["check_status"]) for name, row in rows.items()}
        raise AssertionError(f"servers not {dict(expected)} within {timeout} s: {seen}\n{self.log()[-4000:]}")

    def finished_checks(self, server: str, count: int, timeout: float) -> list[Mapping[str, str]]:
        """Wait until HAProxy has run `count` whole health checks of `server`, each begun after this call
        (``show stat`` marks a check in progress with "* " before its check_status); the server's row as
        each one finished. HAProxy's own evidence that the checks ran. A check shorter than the 20 ms between
        looks can be missed, unless it changed the server's state (a change ends a check: it is counted); the
        checks this is for wait for their timeout (5 s)."""
        deadline = time.monotonic() + timeout
        rows: list[Mapping[str, str]] = []
        running = False
        state = self.servers()[server]["status"]
        while len(rows) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(rows)} of {count} checks of {server} finished in {timeout} s: {rows}"
                )
            row = self.servers()[server]
            if row["check_status"].startswith("* "):
                running = True
            elif running or row["status"] != state:  # the check seen running has finished, or one moved it
                running = False
                rows.append(row)
            state = row["status"]
            time.sleep(0.02)
        return rows

    def sessions(self) -> dict[int, str]:
        """Client connections open now: the client's port -> the replica it is connected to."""
        found: dict[int, str] = {}
        for line in self.command("show sess").splitlines():
            match = re.search(r" src=[\d.]+:(\d+) fe=\S+ be=\S+ srv=(\S+) ", line)
            if match:
                found[int(match.group(1))] = match.group(2)
        return found

    def session_log(self, at_least: int = 0, timeout: float = 10.0) -> list[SessionLog]:
        """The sessions logged so far; HAProxy logs one when it ends, a moment after the client sees
        the end, so this waits (bounded) until there are `at_least`."""
        deadline = time.monotonic() + timeout
        while len(entries := self._parse_sessions()) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        return entries

    def _parse_sessions(self) -> list[SessionLog]:
        entries = []
        for line in self.log().splitlines():
            match = _SESSION_LINE.match(line)
            if match:
                entries.append(
                    SessionLog(
                        client_port=int(match["port"]),
                        server=match["server"],
                        total_ms=int(match["total"]),
                        bytes_to_client=int(match["bytes"]),
                        termination=match["term"],
                    )
                )
        return entries
