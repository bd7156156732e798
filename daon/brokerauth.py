"""Broker accounts: the ACL and password file Mosquitto enforces (issue 13.5).

Every MQTT client logs in with an account of its own: each gateway as its gateway id (it may
publish only under ``{root}/gw/{its id}/`` and read its centre's station topics), ingest and
the web application under their own names, kiosks (station devices) per station. The ACL is
``daon/resources/mosquitto.acl`` rendered for a topic root plus a section per gateway and per
kiosk; passwords are stored as Mosquitto's PBKDF2-SHA512 hashes (``$7$``), never in the clear.
Pure functions: the embedded broker (daon.embedded) writes their output to files, production
writes the same files once (README, "Security").
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

#: Mosquitto 2's password hash: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt.
_ITERATIONS = 101
INGEST_USER = "daon-ingest"
API_USER = "daon-api"


def password_line(user: str, password: str, salt: bytes | None = None) -> str:
    """One ``password_file`` line for ``user`` (what ``mosquitto_passwd`` writes)."""
    if ":" in user or not user:
        raise ValueError(f"broker user name {user!r} must be non-empty and without ':'")
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    encode = base64.b64encode
    return f"{user}:$7${_ITERATIONS}${encode(salt).decode()}${encode(digest).decode()}"


def acl_text(
    root: str,
    *,
    gateways: Mapping[str, str],
    kiosks: Mapping[str, str] | None = None,
    ingest_user: str = INGEST_USER,
    api_user: str = API_USER,
) -> str:
    """The ACL for ``root``: ``gateways`` maps gateway id → its centre (it reads that centre's
    station topics), ``kiosks`` maps a kiosk account → the station topic prefix it writes
    (``{centre}/{station}``, or ``+/+`` for a simulator standing in for every station)."""
    template = resources.files("daon.resources").joinpath("mosquitto.acl").read_text()
    text = template.format(root=root, ingest=ingest_user, api=api_user)
    sections = [text.rstrip("\n")]
    for gateway, centre in sorted(gateways.items()):
        sections.append(f"user {gateway}\ntopic read {root}/st/{centre}/#")
    for user, prefix in sorted((kiosks or {}).items()):
        sections.append(f"user {user}\ntopic write {root}/st/{prefix}/#")
    return "\n\n".join(sections) + "\n"


@dataclass(frozen=True, slots=True)
class Accounts:
    """User name → password of every broker account (a secret: never logged)."""

    passwords: Mapping[str, str] = field(repr=False)

    @staticmethod
    def generate(users: list[str]) -> Accounts:
        return Accounts({user: secrets.token_urlsafe(24) for user in users})

    def password_file(self) -> str:
        return "".join(password_line(u, p) + "\n" for u, p in sorted(self.passwords.items()))


@dataclass(frozen=True, slots=True)
class BrokerAuth:
    """What a broker needs to enforce the accounts: the password file and the ACL text."""

    password_file: str = field(repr=False)
    acl: str


# --- enforcing the same files without Mosquitto (daon.broker_fallback) ---------------------


def verify_password(entry: str, password: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash of :func:`password_line`."""
    parts = entry.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError:
        return False
    actual = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return secrets.compare_digest(actual, expected)


def _covers(rule: str, topic_filter: str) -> bool:
    """True when every topic ``topic_filter`` matches also matches ``rule`` (both may hold
    MQTT wildcards); for a plain topic this is ordinary matching."""
    rules, levels = rule.split("/"), topic_filter.split("/")
    for i, part in enumerate(rules):
        if part == "#":
            return True
        if i >= len(levels):
            return False
        level = levels[i]
        if level == "#":
            return False
        if part != "+" and (level == "+" or level != part):
            return False
    return len(levels) == len(rules)


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    """The password file and ACL of :class:`BrokerAuth`, read the way Mosquitto reads them
    (``user`` sections with ``topic read|write|readwrite``, ``pattern`` lines with ``%u``)."""

    hashes: Mapping[str, str]
    rules: Mapping[str, tuple[tuple[str, str], ...]]
    patterns: tuple[tuple[str, str], ...]

    @staticmethod
    def parse(password_file: str, acl: str) -> AccountPolicy:
        hashes = dict(
            line.split(":", 1) for line in password_file.splitlines() if ":" in line.strip()
        )
        rules: dict[str, list[tuple[str, str]]] = {}
        patterns: list[tuple[str, str]] = []
        user: str | None = None
        for raw in acl.splitlines():
            words = raw.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] == "user" and len(words) == 2:
                user = words[1]
            elif words[0] in ("topic", "pattern") and len(words) in (2, 3):
                access, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
                if words[0] == "pattern":
                    patterns.append((access, topic))
                elif user is not None:
                    rules.setdefault(user, []).append((access, topic))
        return AccountPolicy(hashes, {u: tuple(r) for u, r in rules.items()}, tuple(patterns))

    def authenticate(self, client_id: str, username: str | None, password: bytes | None) -> bool:
        entry = self.hashes.get(username or "")
        if entry is None or password is None:
            return False
        try:
            return verify_password(entry, password.decode())
        except UnicodeDecodeError:
            return False

    def _allowed(self, username: str | None, topic: str, wanted: str) -> bool:
        if not username:
            return False
        candidates = [
            *self.rules.get(username, ()),
            *((a, t.replace("%u", username)) for a, t in self.patterns),
        ]
        return any(
            access in (wanted, "readwrite") and _covers(rule, topic) for access, rule in candidates
        )

    def may_publish(self, client_id: str, username: str | None, topic: str) -> bool:
        return self._allowed(username, topic, "write")

    def may_subscribe(self, client_id: str, username: str | None, topic_filter: str) -> bool:
        return self._allowed(username, topic_filter, "read")
