"""The fallback MQTT broker: a small MQTT 3.1.1 broker in Python, for machines without Mosquitto.

It comes with Daon (nothing else to install), so a normal user without ``sudo`` still gets a
working demo and test suite. It does what Daon relies on, the same way as Mosquitto with
``daon/resources/mosquitto.conf``:

- QoS 0 and 1 (QoS 2 publishes are accepted and acknowledged, and delivered at QoS 1);
- persistent sessions (``clean_session=False``): messages for an offline subscriber are
  queued, unacknowledged ones are sent again with DUP on its return, and sessions, queues and
  retained messages are saved to a file on stop (and every ``autosave_s``) so they survive a
  restart, as Mosquitto's persistence does;
- shared subscriptions (``$share/<group>/<filter>``: each message to one member, ingest's
  workers), retained messages, wills, keep-alive;
- bounds like the shipped configuration: 100 messages in flight per client, a large queue
  bound (a message beyond it is dropped and logged, never silently).

Why our own: the maintained embedded brokers on PyPI checked in December 2026 either lack
shared subscriptions (amqtt 0.12) or crashed on an abrupt disconnect of a shared subscriber
(rumqttd 0.20 in the iotcore wheel: "group must exists"), and ingest needs both.

Accounts and access control: :class:`Policy` is the one place for them (``authenticate``,
``may_publish``, ``may_subscribe``). With ``password_file`` and ``acl_file`` in its
configuration the broker enforces the same files Mosquitto reads
(:class:`daon.brokerauth.AccountPolicy`); without them everyone is allowed (test brokers).

Run as ``python -m daon.broker_fallback CONFIG.toml``; :class:`daon.embedded.EmbeddedBroker`
writes the configuration with :func:`config_toml` and owns the process (SIGTERM stops it
after saving).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import tomllib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("daon.broker")

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

MAX_PACKET = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The client broke MQTT 3.1.1: the connection is closed."""


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    state_file: Path | None = None  # persistence; None keeps everything in memory
    autosave_s: float = 30.0
    max_inflight: int = 100
    max_queued: int = 2_000_000
    password_file: Path | None = None  # with acl_file: the accounts and ACL to enforce
    acl_file: Path | None = None


def config_toml(
    host: str,
    port: int,
    data_dir: Path,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
) -> str:
    """The configuration :class:`daon.embedded.EmbeddedBroker` writes for one broker."""
    auth = ""
    if password_file is not None and acl_file is not None:
        auth = f'password_file = "{password_file}"\nacl_file = "{acl_file}"\n'
    return (
        "# Written by daon.embedded for the fallback broker (daon/broker_fallback.py).\n"
        f'host = "{host}"\nport = {port}\n'
        f'state_file = "{data_dir / "broker-state.json"}"\n'
        "autosave_s = 30\nmax_inflight = 100\nmax_queued = 2000000\n" + auth
    )


def load_config(path: Path) -> BrokerConfig:
    raw = tomllib.loads(path.read_text())
    state = raw.get("state_file")
    return BrokerConfig(
        host=str(raw.get("host", "127.0.0.1")),
        port=int(raw.get("port", 1883)),
        state_file=Path(state) if state else None,
        autosave_s=float(raw.get("autosave_s", 30)),
        max_inflight=int(raw.get("max_inflight", 100)),
        max_queued=int(raw.get("max_queued", 2_000_000)),
        password_file=Path(raw["password_file"]) if raw.get("password_file") else None,
        acl_file=Path(raw["acl_file"]) if raw.get("acl_file") else None,
    )


class Policy:
    """Who may connect, publish and subscribe: the place for accounts and ACLs (all allowed)."""

    def authenticate(self, client_id: str, username: str | None, password: bytes | None) -> bool:
        return True

    def may_publish(self, client_id: str, username: str | None, topic: str) -> bool:
        return True

    def may_subscribe(self, client_id: str, username: str | None, topic_filter: str) -> bool:
        return True


# --- topics ---------------------------------------------------------------------------------


def valid_filter(topic_filter: str) -> bool:
    if not topic_filter or "\0" in topic_filter:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 §4.7 matching; wildcards at the start never match ``$`` topics."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels) or level not in ("+", topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """(group, filter) of ``$share/group/filter``; (None, filter) for a plain one."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) == 3 and parts[1] and not set(parts[1]) & {"+", "#"}:
            return parts[1], parts[2]
        raise ProtocolError(f"malformed shared subscription {topic_filter!r}")
    return None, topic_filter


# --- wire format ----------------------------------------------------------------------------


def _string(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(data):
        raise ProtocolError("truncated string")
    length = int.from_bytes(data[pos : pos + 2], "big")
    end = pos + 2 + length
    if end > len(data):
        raise ProtocolError("truncated string")
    return data[pos + 2 : end], end


def _text(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _string(data, pos)
    try:
        return raw.decode(), pos
    except UnicodeDecodeError as exc:
        raise ProtocolError("string is not UTF-8") from exc


def _pack_string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def packet(kind: int, flags: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([kind << 4 | flags]) + bytes(encoded) + body


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    first = await reader.readexactly(1)
    length, shift = 0, 0
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        raise ProtocolError("malformed remaining length")
    if length > MAX_PACKET:
        raise ProtocolError(f"packet of {length} bytes is over the {MAX_PACKET} limit")
    body = await reader.readexactly(length) if length else b""
    return first[0] >> 4, first[0] & 0x0F, body


# --- sessions -------------------------------------------------------------------------------


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False

    def to_json(self) -> dict[str, object]:
        payload = base64.b64encode(self.payload).decode()
        return {"t": self.topic, "p": payload, "q": self.qos, "r": self.retain}

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Message:
        return cls(
            str(raw["t"]), base64.b64decode(str(raw["p"])), int(str(raw["q"])), bool(raw["r"])
        )


@dataclass(eq=False)
class Session:
    client_id: str
    clean: bool
    subscriptions: dict[str, int] = field(default_factory=dict)  # full filter -> granted QoS
    queue: deque[Message] = field(default_factory=deque)
    inflight: OrderedDict[int, Message] = field(default_factory=OrderedDict)
    connection: Connection | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> int:
        while True:
            pid = next(self._ids) % 65536
            if pid and pid not in self.inflight:
                return pid


class Connection:
    """One client's TCP connection."""

    def __init__(self, broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.broker, self.reader, self.writer = broker, reader, writer
        self.session: Session | None = None
        self.username: str | None = None
        self.will: Message | None = None
        self.closed = False

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


class Broker:
    """The broker's state (sessions, shared groups, retained messages) and its server."""

    def __init__(self, config: BrokerConfig, policy: Policy | None = None) -> None:
        self.config = config
        self.policy = policy or Policy()
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, Message] = {}
        self._turn = itertools.count()
        self.dropped = 0
        self._server: asyncio.Server | None = None

    # persistence ------------------------------------------------------------------------

    def load(self) -> None:
        path = self.config.state_file
        if path is None or not path.exists():
            return
        state = json.loads(path.read_text())
        for raw in state.get("sessions", []):
            session = Session(raw["client_id"], clean=False)
            session.subscriptions = {k: int(v) for k, v in raw["subscriptions"].items()}
            session.queue.extend(Message.from_json(m) for m in raw["inflight"] + raw["queue"])
            self.sessions[session.client_id] = session
        for raw in state.get("retained", []):
            message = Message.from_json(raw)
            self.retained[message.topic] = message
        logger.info("restored %d sessions from %s", len(self.sessions), path)

    def save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        state = {
            "sessions": [
                {
                    "client_id": s.client_id,
                    "subscriptions": s.subscriptions,
                    "inflight": [m.to_json() for m in s.inflight.values()],
                    "queue": [m.to_json() for m in s.queue],
                }
                for s in self.sessions.values()
                if not s.clean
            ],
            "retained": [m.to_json() for m in self.retained.values()],
        }
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(state))
        os.replace(partial, path)

    # serving ----------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        self.load()
        self._server = await asyncio.start_server(
            self._client, self.config.host, self.config.port, reuse_address=True
        )
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.autosave_s)
                self.save()
        finally:
            self._server.close()
            for session in self.sessions.values():
                if session.connection is not None:
                    session.connection.close()
            self.save()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        clean_exit = False
        try:
            kind, _, body = await asyncio.wait_for(read_packet(reader), 10)
            if kind != CONNECT:
                raise ProtocolError("the first packet is not CONNECT")
            keepalive = self._connect(conn, body)
            if conn.session is None:
                return
            timeout = keepalive * 1.5 if keepalive else None
            while True:
                kind, flags, body = await asyncio.wait_for(read_packet(reader), timeout)
                if kind == DISCONNECT:
                    clean_exit = True
                    return
                self._handle(conn, kind, flags, body)
                if writer.transport.get_write_buffer_size() > 1 << 20:
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, OSError):
            pass
        except ProtocolError as exc:
            logger.warning("closing a client: %s", exc)
        finally:
            self._gone(conn, clean_exit)
            conn.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _connect(self, conn: Connection, body: bytes) -> int:
        name, pos = _text(body, 0)
        if pos + 4 > len(body):
            raise ProtocolError("truncated CONNECT")
        level, flags = body[pos], body[pos + 1]
        keepalive = int.from_bytes(body[pos + 2 : pos + 4], "big")
        pos += 4
        if (name, level) not in (("MQTT", 4), ("MQIsdp", 3)):
            conn.send(packet(CONNACK, 0, b"\x00\x01"))  # unacceptable protocol version
            return 0
        clean = bool(flags & 0x02)
        client_id, pos = _text(body, pos)
        if flags & 0x04:
            will_topic, pos = _text(body, pos)
            will_payload, pos = _string(body, pos)
            conn.will = Message(
                will_topic, will_payload, min((flags >> 3) & 3, 1), bool(flags & 0x20)
            )
        password: bytes | None = None
        if flags & 0x80:
            conn.username, pos = _text(body, pos)
        if flags & 0x40:
            password, pos = _string(body, pos)
        if not client_id:
            if not clean:
                conn.send(packet(CONNACK, 0, b"\x00\x02"))  # identifier rejected
                return 0
            client_id = f"auto-{id(conn):x}"
        if not self.policy.authenticate(client_id, conn.username, password):
            conn.send(packet(CONNACK, 0, b"\x00\x05"))  # not authorised
            return 0
        old = self.sessions.get(client_id)
        if old is not None and old.connection is not None:
            old.connection.will = None  # taken over, not lost
            old.connection.close()
            old.connection = None
        if clean or old is None:
            if old is not None:
                self._forget(old)
            session = Session(client_id, clean)
            self.sessions[client_id] = session
            present = False
        else:
            session, present = old, True
        session.clean = clean
        session.connection = conn
        conn.session = session
        conn.send(packet(CONNACK, 0, bytes([1 if present else 0, 0])))
        # Unacknowledged messages go again, marked DUP, in their order; then the queue.
        for pid, message in session.inflight.items():
            conn.send(self._publish_packet(message, pid, dup=True))
        self._pump(session)
        return keepalive

    def _handle(self, conn: Connection, kind: int, flags: int, body: bytes) -> None:
        session = conn.session
        assert session is not None
        if kind == PUBLISH:
            qos, retain = (flags >> 1) & 3, bool(flags & 1)
            if qos == 3:
                raise ProtocolError("PUBLISH with QoS 3")
            topic, pos = _text(body, 0)
            pid = 0
            if qos:
                pid, pos = int.from_bytes(body[pos : pos + 2], "big"), pos + 2
            if not topic or set(topic) & {"+", "#"}:
                raise ProtocolError(f"invalid topic name {topic!r}")
            if self.policy.may_publish(session.client_id, conn.username, topic):
                self.publish(Message(topic, body[pos:], min(qos, 1), retain))
            if qos == 1:
                conn.send(packet(PUBACK, 0, pid.to_bytes(2, "big")))
            elif qos == 2:  # delivered now, once; the handshake only completes
                conn.send(packet(PUBREC, 0, pid.to_bytes(2, "big")))
        elif kind == PUBACK:
            session.inflight.pop(int.from_bytes(body[:2], "big"), None)
            self._pump(session)
        elif kind == PUBREL:
            conn.send(packet(PUBCOMP, 0, body[:2]))
        elif kind in (PUBREC, PUBCOMP):
            pass  # we never send QoS 2
        elif kind == SUBSCRIBE:
            self._subscribe(conn, session, body)
        elif kind == UNSUBSCRIBE:
            pos = 2
            while pos < len(body):
                topic_filter, pos = _text(body, pos)
                session.subscriptions.pop(topic_filter, None)
            conn.send(packet(UNSUBACK, 0, body[:2]))
        elif kind == PINGREQ:
            conn.send(packet(PINGRESP, 0, b""))
        else:
            raise ProtocolError(f"unexpected packet type {kind}")

    def _subscribe(self, conn: Connection, session: Session, body: bytes) -> None:
        pid, pos, granted = body[:2], 2, bytearray()
        new: list[tuple[str, int]] = []
        while pos < len(body):
            topic_filter, pos = _text(body, pos)
            requested = body[pos] & 3
            pos += 1
            group, plain = split_shared(topic_filter)
            allowed = self.policy.may_subscribe(session.client_id, conn.username, topic_filter)
            if not valid_filter(plain) or not allowed:
                granted.append(0x80)
                continue
            qos = min(requested, 1)
            session.subscriptions[topic_filter] = qos
            granted.append(qos)
            if group is None:
                new.append((plain, qos))
        conn.send(packet(SUBACK, 0, pid + bytes(granted)))
        for plain, qos in new:  # retained messages after the SUBACK
            for message in self.retained.values():
                if matches(plain, message.topic):
                    self._deliver(
                        session,
                        Message(message.topic, message.payload, min(qos, message.qos), True),
                    )

    def _gone(self, conn: Connection, clean_exit: bool) -> None:
        session = conn.session
        if session is None or session.connection is not conn:
            return
        session.connection = None
        if not clean_exit and conn.will is not None:
            self.publish(conn.will)
        if session.clean:
            self._forget(session)

    def _forget(self, session: Session) -> None:
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        # A shared group member's undelivered messages go to the rest of its groups.
        leftovers = [*session.inflight.values(), *session.queue]
        session.inflight.clear()
        session.queue.clear()
        for message in leftovers:
            for topic_filter in session.subscriptions:
                if split_shared(topic_filter)[0] is not None and matches(
                    split_shared(topic_filter)[1], message.topic
                ):
                    self._to_group(topic_filter, message, exclude=session)
                    break

    # routing ----------------------------------------------------------------------------

    def publish(self, message: Message) -> None:
        if message.retain:
            if message.payload:
                self.retained[message.topic] = message
            else:
                self.retained.pop(message.topic, None)
        plain: dict[int, tuple[Session, int]] = {}
        groups: set[str] = set()
        for session in self.sessions.values():
            for topic_filter, qos in session.subscriptions.items():
                group, inner = split_shared(topic_filter)
                if not matches(inner, message.topic):
                    continue
                if group is not None:
                    groups.add(topic_filter)
                elif id(session) not in plain or plain[id(session)][1] < qos:
                    plain[id(session)] = (session, qos)
        for session, qos in plain.values():
            self._deliver(session, Message(message.topic, message.payload, min(qos, message.qos)))
        for topic_filter in groups:
            self._to_group(topic_filter, message)

    def _to_group(
        self, topic_filter: str, message: Message, exclude: Session | None = None
    ) -> None:
        members = [
            s
            for s in self.sessions.values()
            if topic_filter in s.subscriptions and s is not exclude
        ]
        if not members:
            return
        online = [s for s in members if s.connection is not None]
        chosen = (online or members)[next(self._turn) % len(online or members)]
        qos = min(chosen.subscriptions[topic_filter], message.qos)
        self._deliver(chosen, Message(message.topic, message.payload, qos))

    def _deliver(self, session: Session, message: Message) -> None:
        if session.connection is None and (message.qos == 0 or session.clean):
            return  # MQTT 3.1.1: only QoS 1 and 2 are kept for offline persistent sessions
        if len(session.queue) >= self.config.max_queued:
            self.dropped += 1
            logger.warning(
                "queue of %s is full (%d): dropped a message on %s (%d dropped so far)",
                session.client_id,
                self.config.max_queued,
                message.topic,
                self.dropped,
            )
            return
        session.queue.append(message)
        self._pump(session)

    def _pump(self, session: Session) -> None:
        conn = session.connection
        if conn is None:
            return
        while session.queue and len(session.inflight) < self.config.max_inflight:
            message = session.queue.popleft()
            if message.qos == 0:
                conn.send(self._publish_packet(message, 0))
                continue
            pid = session.next_id()
            session.inflight[pid] = message
            conn.send(self._publish_packet(message, pid))

    @staticmethod
    def _publish_packet(message: Message, pid: int, *, dup: bool = False) -> bytes:
        flags = (8 if dup else 0) | message.qos << 1 | (1 if message.retain else 0)
        body = _pack_string(message.topic.encode())
        if message.qos:
            body += pid.to_bytes(2, "big")
        return packet(PUBLISH, flags, body + message.payload)


async def run(config: BrokerConfig) -> None:
    """Serve until SIGTERM or SIGINT, then save the sessions and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    policy: Policy | None = None
    if config.password_file is not None and config.acl_file is not None:
        from daon.brokerauth import AccountPolicy

        policy = AccountPolicy.parse(config.password_file.read_text(), config.acl_file.read_text())  # type: ignore[assignment]
    await Broker(config, policy).serve(stop)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m daon.broker_fallback CONFIG.toml", file=sys.stderr)  # noqa: T201
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = load_config(Path(argv[0]))
    asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
