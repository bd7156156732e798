"""Existing distributed engines on one machine, for the HA tier and ``bench/ha.py``.

- :class:`Etcd`: one etcd member (Debian's ``etcd-server``), Patroni's consensus store.
- :class:`PatroniCluster`: three PostgreSQL nodes managed by Patroni (PyPI) in synchronous
  mode, so a commit that ingest acknowledged is on a standby before the gateway hears of it and
  survives the loss of the leader.
- :class:`NatsCluster`: three ``nats-server`` nodes (Debian's ``nats-server``) with JetStream
  and their MQTT 3.1.1 listeners; MQTT sessions and QoS 1 messages live in replicated streams.

PostgreSQL refuses to run as root. As root, each Patroni process runs in a user namespace that
maps the caller to an ordinary uid (``unshare --user``): inside it PostgreSQL sees a non-root
owner of its own data directory, and nothing needs a service account or a world-readable copy
of the virtualenv. Where user namespaces are refused, :func:`missing` says so and the tier
skips with that reason.

Nothing here is replication of our own: the engines replicate; we start, watch and kill them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daon.embedded import find_pg_bindir, free_port, port_open

# Patroni's timing for a LAN. A crashed leader is replaced once its key expires, ``ttl`` after
# its last renewal: 20 s is the least Patroni 4 accepts (it raises a lower ttl to 20 and says so
# in its log: the 10 s written here before ran as 20). The leader renews its key every
# ``loop_wait``; ``retry_timeout`` is how long a DCS or PostgreSQL call may be retried before the
# leader steps down, at most (ttl - loop_wait) / 2 so that it has stepped down before its key
# expires and a standby takes over. 9 s rides out a slow etcd on a busy machine without
# starting a failover, and changes nothing in how soon a dead leader is replaced.
PATRONI_TTL_S = 20
PATRONI_LOOP_WAIT_S = 1
PATRONI_RETRY_TIMEOUT_S = 9


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def _unshare_prefix() -> list[str]:
    """Command prefix that runs a program as an ordinary uid when we are root."""
    if os.geteuid() != 0:
        return []
    return ["unshare", "--user", "--map-user=1000", "--map-group=1000"]


def missing() -> str | None:
    """Why the HA engines cannot run here, with what to install, or None when they can."""
    if _which("etcd") is None:
        return "etcd is not installed (apt-get install etcd-server)"
    if _which("nats-server") is None:
        return "nats-server is not installed (apt-get install nats-server)"
    if find_pg_bindir() is None:
        return "PostgreSQL server binaries are not installed (apt-get install postgresql)"
    try:
        import patroni  # noqa: F401
    except ImportError:
        return "Patroni is not installed (pip install 'patroni[etcd3]', part of .[dev])"
    if os.geteuid() == 0:
        probe = subprocess.run(
            [*_unshare_prefix(), "true"], capture_output=True, text=True, check=False
        )
        if probe.returncode != 0:
            return (
                "running PostgreSQL under Patroni as root needs user namespaces "
                f"(unshare --user failed: {probe.stderr.strip()}); run the tier as a normal user"
            )
    return None


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll ``predicate`` until true; seconds taken, or TimeoutError naming ``what``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


@dataclass
class Etcd:
    """One etcd member on loopback; enough for Patroni's leader key on one machine."""

    root: Path
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://127.0.0.1:{self.client_port}"
        self.process = _spawn(
            [
                str(_which("etcd")),
                "--name=daon-ha",
                f"--data-dir={self.root / 'data'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=daon-ha={peer}",
                "--initial-cluster-state=new",
            ],
            self.root / "etcd.log",
        )
        wait_until(lambda: port_open("127.0.0.1", self.client_port), 30, "etcd")

    def stop(self) -> None:
        _stop(self.process)


def _release_segment(data_dir: Path, wait_s: float = 5.0) -> None:
    """Remove the System V segment of a PostgreSQL that was SIGKILLed: nobody else will (56 bytes
    each, but every killed node would leave one until the machine restarts). Its id is on line 7
    of ``postmaster.pid``; it is removed once its server's processes have let go of it, and only
    if the postmaster named in that file created it (ids are reused)."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, shmid = int(lines[0]), int(lines[6].split()[1])
    except (OSError, IndexError, ValueError):
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
        except OSError:
            return
        # key shmid perms size cpid lpid nattch ...
        row = next((r.split() for r in rows if int(r.split()[1]) == shmid), None)
        if row is None or int(row[4]) != pid:
            return
        if int(row[6]) == 0:
            subprocess.run(["ipcrm", "-m", str(shmid)], capture_output=True, check=False)
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)


@dataclass
class PgNode:
    name: str
    root: Path
    port: int = field(default_factory=free_port)
    rest_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def postmaster_pid(self) -> int | None:
        """The running postmaster of this node, or None (a stale ``postmaster.pid`` may name a
        process id reused since: only a process running on this data directory counts)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(self.data_dir).encode() in cmdline else None

    def rest(self, path: str) -> Any:
        """Patroni's REST answer for ``path`` (JSON), or None when unreachable."""
        url = f"http://127.0.0.1:{self.rest_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read() or b"null")
        except OSError:
            return None
        except ValueError:
            return None


@dataclass
class PatroniCluster:
    """Three PostgreSQL nodes under Patroni, synchronous mode, on loopback ports."""

    root: Path
    etcd: Etcd
    size: int = 3
    nodes: list[PgNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = [PgNode(f"pg{i + 1}", self.root / f"pg{i + 1}") for i in range(self.size)]

    # -- addresses ------------------------------------------------------------------------

    def url(self, database: str = "postgres", attrs: str = "read-write") -> str:
        """A libpq multi-host URL over every node, for writers (``read-write``) or readers
        (``prefer-standby``)."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return (
            f"postgresql://postgres@{hosts}/{database}"
            f"?target_session_attrs={attrs}&connect_timeout=3"
        )

    # -- life cycle -----------------------------------------------------------------------

    def _config(self, node: PgNode) -> str:
        bindir = find_pg_bindir()
        return json.dumps(  # JSON is YAML: no YAML writer needed
            {
                "scope": "daon-ha",
                "name": node.name,
                "log": {"level": "INFO"},
                "restapi": {
                    "listen": f"127.0.0.1:{node.rest_port}",
                    "connect_address": f"127.0.0.1:{node.rest_port}",
                },
                "etcd3": {"hosts": self.etcd.endpoint},
                "bootstrap": {
                    "dcs": {
                        "ttl": PATRONI_TTL_S,
                        "loop_wait": PATRONI_LOOP_WAIT_S,
                        "retry_timeout": PATRONI_RETRY_TIMEOUT_S,
                        "maximum_lag_on_failover": 16 * 1024 * 1024,
                        "synchronous_mode": True,
                        "postgresql": {
                            "use_pg_rewind": True,
                            "parameters": {
                                "wal_level": "replica",
                                "hot_standby": "on",
                                "wal_log_hints": "on",
                                "max_wal_senders": 10,
                                "max_replication_slots": 10,
                                "max_connections": 100,
                            },
                        },
                    },
                    "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
                },
                "postgresql": {
                    "listen": f"127.0.0.1:{node.port}",
                    "connect_address": f"127.0.0.1:{node.port}",
                    "data_dir": str(node.data_dir),
                    "bin_dir": str(bindir),
                    "pgpass": str(node.root / "pgpass"),
                    "authentication": {
                        "superuser": {"username": "postgres", "password": "postgres"},
                        "replication": {"username": "replicator", "password": "replicator"},
                        "rewind": {"username": "postgres", "password": "postgres"},
                    },
                    "parameters": {
                        "unix_socket_directories": str(node.root),
                        "shared_buffers": "64MB",
                        "fsync": "on",
                    },
                    "pg_hba": [
                        "local all all trust",
                        "host all all 127.0.0.1/32 trust",
                        "host replication replicator 127.0.0.1/32 trust",
                    ],
                },
            }
        )

    def start_node(self, node: PgNode) -> None:
        node.root.mkdir(parents=True, exist_ok=True)
        node.root.chmod(0o700)
        config = node.root / "patroni.yml"
        config.write_text(self._config(node))
        argv = [*_unshare_prefix(), sys.executable, "-m", "patroni", str(config)]
        node.process = _spawn(argv, node.root / "patroni.log", env={**os.environ})

    def start(self, timeout: float = 120.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            self.start_node(node)
        wait_until(lambda: self.leader() is not None, timeout, "a Patroni leader")
        wait_until(
            lambda: self.streaming_replicas() == self.size - 1,
            timeout,
            f"{self.size - 1} streaming replicas",
            interval=0.5,
        )
        wait_until(lambda: self.sync_standby() is not None, timeout, "a synchronous standby")

    def stop(self) -> None:
        """Crash every node and release what a crash leaves behind: the data goes with its
        directory, and a clean stop of three servers took a busy machine 10-20 s."""
        for node in self.nodes:
            self.kill(node)
        for node in self.nodes:
            _release_segment(node.data_dir)

    # -- state ----------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        for node in self.nodes:
            answer = node.rest("/cluster")
            if answer and "members" in answer:
                return list(answer["members"])
        return []

    def leader(self) -> PgNode | None:
        for member in self.members():
            if member.get("role") == "leader" and member.get("state") == "running":
                return self.node(member["name"])
        return None

    def sync_standby(self) -> PgNode | None:
        for member in self.members():
            if member.get("role") == "sync_standby" and member.get("state") == "streaming":
                return self.node(member["name"])
        return None

    def streaming_replicas(self) -> int:
        return sum(
            1
            for m in self.members()
            if m.get("role") in ("replica", "sync_standby") and m.get("state") == "streaming"
        )

    def node(self, name: str) -> PgNode:
        return next(n for n in self.nodes if n.name == name)

    def kill(self, node: PgNode) -> None:
        """A crash of the whole node: Patroni and its PostgreSQL die at once (SIGKILL)."""
        pid = node.postmaster_pid()
        if node.process is not None and node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=10)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.process = None


@dataclass
class NatsNode:
    name: str
    root: Path
    client_port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None


@dataclass
class NatsCluster:
    """Three NATS servers clustered with JetStream; each serves MQTT 3.1.1 on its own port.

    MQTT sessions, retained messages and QoS 1 messages are kept in JetStream streams with
    ``stream_replicas`` copies, so a client that reconnects to another node finds its session.
    """

    root: Path
    size: int = 3
    nodes: list[NatsNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = [NatsNode(f"n{i + 1}", self.root / f"n{i + 1}") for i in range(self.size)]

    def mqtt_urls(self) -> list[str]:
        return [f"mqtt://127.0.0.1:{n.mqtt_port}" for n in self.nodes]

    def _config(self, node: NatsNode) -> str:
        routes = ",".join(
            f'"nats-route://127.0.0.1:{n.cluster_port}"' for n in self.nodes if n is not node
        )
        return "\n".join(
            [
                f'server_name: "{node.name}"',
                f"port: {node.client_port}",
                'host: "127.0.0.1"',
                f"http_port: {node.monitor_port}",
                "jetstream {",
                f'  store_dir: "{node.root / "js"}"',
                "  max_memory_store: 256MB",
                "  max_file_store: 2GB",
                "}",
                "cluster {",
                '  name: "daon-mqtt"',
                f'  listen: "127.0.0.1:{node.cluster_port}"',
                f"  routes: [{routes}]",
                "}",
                "mqtt {",
                '  host: "127.0.0.1"',
                f"  port: {node.mqtt_port}",
                f"  stream_replicas: {self.size}",
                '  ack_wait: "10s"',
                "  max_ack_pending: 10000",
                "}",
                "",
            ]
        )

    def start_node(self, node: NatsNode) -> None:
        node.root.mkdir(parents=True, exist_ok=True)
        config = node.root / "nats.conf"
        config.write_text(self._config(node))
        node.process = _spawn(
            [str(_which("nats-server")), "-c", str(config)], node.root / "nats.log"
        )

    def start(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            self.start_node(node)
        for node in self.nodes:
            wait_until(lambda n=node: port_open("127.0.0.1", n.mqtt_port), timeout, node.name)
        wait_until(self.jetstream_ready, timeout, "a JetStream meta leader")

    def jetstream_ready(self) -> bool:
        for node in self.nodes:
            try:
                url = f"http://127.0.0.1:{node.monitor_port}/jsz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    info = json.loads(response.read())
            except (OSError, ValueError):
                continue
            if (info.get("meta_cluster") or {}).get("leader"):
                return True
        return False

    def kill(self, node: NatsNode) -> None:
        if node.process is not None and node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=10)
        node.process = None

    def stop(self) -> None:
        for node in self.nodes:
            _stop(node.process)


@dataclass
class RabbitNode:
    name: str
    root: Path
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    def env(self, cookie_home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(cookie_home),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.root / "pid"),
        }


RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


@dataclass
class RabbitCluster:
    """Three RabbitMQ nodes clustered, each with the MQTT plugin; durable MQTT sessions are
    quorum queues replicated on the three nodes."""

    root: Path
    size: int = 3
    nodes: list[RabbitNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = [
            RabbitNode(f"daonmq{i + 1}-{os.getpid()}", self.root / f"r{i + 1}")
            for i in range(self.size)
        ]

    @property
    def home(self) -> Path:
        return self.root / "home"  # one Erlang cookie for the cluster and the CLI

    def mqtt_urls(self) -> list[str]:
        return [f"mqtt://127.0.0.1:{n.mqtt_port}" for n in self.nodes]

    def ctl(self, node: RabbitNode, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", node.nodename, *args],
            env=node.env(self.home),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start_node(self, node: RabbitNode) -> None:
        node.root.mkdir(parents=True, exist_ok=True)
        (node.root / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (node.root / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}",
                    f"mqtt.listeners.tcp.default = 127.0.0.1:{node.mqtt_port}",
                    "mqtt.durable_queue_type = quorum",
                    "mqtt.allow_anonymous = true",
                    "loopback_users = none",
                    "cluster_partition_handling = pause_minority",
                    "",
                ]
            )
        )
        node.process = _spawn(
            [str(RABBIT_BIN / "rabbitmq-server")], node.root / "server.log", env=node.env(self.home)
        )

    def start(self, timeout: float = 180.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(f"DAONHA{os.getpid()}")
        cookie.chmod(0o400)
        for node in self.nodes:
            self.start_node(node)
        for node in self.nodes:
            wait_until(lambda n=node: port_open("127.0.0.1", n.mqtt_port), timeout, n_name(node))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.nodename)
            self.ctl(node, "start_app")
            wait_until(lambda n=node: port_open("127.0.0.1", n.mqtt_port), timeout, n_name(node))

    def kill(self, node: RabbitNode) -> None:
        if node.process is not None and node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=10)
        node.process = None

    def stop(self) -> None:
        for node in self.nodes:
            _stop(node.process)


def n_name(node: RabbitNode) -> str:
    return f"RabbitMQ node {node.name}"
