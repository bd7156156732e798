"""Password hashing with the standard library's scrypt, and the session cookie's name.

Hashes are self-describing (``scrypt$n$r$p$salt$hash``, base64 without padding) so the work
factor can be raised later without invalidating stored passwords: :func:`needs_rehash` tells
the login path to re-hash on the next successful login.

Default parameters follow the OWASP Password Storage Cheat Sheet for scrypt (N=2^17, r=8,
p=1, about 128 MiB and a few hundred milliseconds); hashing runs in a worker thread so the
event loop is not blocked, and at most :class:`HashSlots` hashes run at once (a login flood
queues here, holding no database connection, instead of taking every core, memory and the
pool from other users).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

SESSION_COOKIE = "daon_session"


def local_path(target: str, default: str) -> str:
    """``target`` when it is a path on this site, else ``default``: redirect targets taken from
    a form (``next``) never lead elsewhere. Browsers read ``/\\host`` and ``//host`` as another
    host, and drop tabs and newlines, so any of those, a scheme or a host are refused."""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if "\\" in target or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


@dataclass(frozen=True, slots=True)
class ScryptParams:
    n: int = 2**17
    r: int = 8
    p: int = 1
    salt_bytes: int = 16
    key_bytes: int = 32

    @property
    def maxmem(self) -> int:
        return 128 * self.n * self.r * self.p + 16 * 1024 * 1024


DEFAULT_PARAMS = ScryptParams()
_PREFIX = "scrypt"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, params: ScryptParams = DEFAULT_PARAMS) -> str:
    """A new salted hash of ``password``."""
    salt = secrets.token_bytes(params.salt_bytes)
    key = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.maxmem,
        dklen=params.key_bytes,
    )
    return f"{_PREFIX}${params.n}${params.r}${params.p}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[ScryptParams, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _PREFIX:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None
    if n < 2 or n & (n - 1) or not 0 < r <= 32 or not 0 < p <= 16 or n > 2**20:
        return None
    return ScryptParams(n=n, r=r, p=p, salt_bytes=len(salt), key_bytes=len(key)), salt, key


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; False for malformed or missing hashes."""
    parsed = _parse(stored) if stored else None
    if parsed is None:
        return False
    params, salt, key = parsed
    candidate = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.maxmem,
        dklen=len(key),
    )
    return hmac.compare_digest(candidate, key)


def needs_rehash(stored: str, params: ScryptParams = DEFAULT_PARAMS) -> bool:
    """True when ``stored`` was made with weaker parameters than ``params``."""
    parsed = _parse(stored)
    if parsed is None:
        return True
    old = parsed[0]
    return (old.n, old.r, old.p) < (params.n, params.r, params.p)


#: A hash of a random password, verified against when a login name is unknown, so that an
#: unknown name and a wrong password take the same time.
_DUMMY: dict[ScryptParams, str] = {}


class HashingBusy(Exception):
    """No hashing slot became free in time (the caller answers 503 with Retry-After)."""


class HashSlots:
    """At most ``size`` password hashes at once; a waiter gives up after ``wait_s``."""

    def __init__(self, size: int, wait_s: float) -> None:
        self._semaphore = asyncio.Semaphore(max(1, size))
        self._wait_s = wait_s

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._wait_s):
                await self._semaphore.acquire()
        except TimeoutError as exc:
            raise HashingBusy() from exc
        try:
            yield
        finally:
            self._semaphore.release()


async def verify_password_async(
    password: str, stored: str | None, params: ScryptParams, slots: HashSlots
) -> bool:
    """:func:`verify_password` in a worker thread, in a slot; spends the same time when
    ``stored`` is None."""
    async with slots.slot():
        if stored is None:
            dummy = _DUMMY.get(params)
            if dummy is None:
                dummy = _DUMMY[params] = await asyncio.to_thread(
                    hash_password, secrets.token_urlsafe(16), params
                )
            await asyncio.to_thread(verify_password, password, dummy)
            return False
        return await asyncio.to_thread(verify_password, password, stored)


async def hash_password_async(password: str, params: ScryptParams, slots: HashSlots) -> str:
    async with slots.slot():
        return await asyncio.to_thread(hash_password, password, params)
