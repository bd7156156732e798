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
