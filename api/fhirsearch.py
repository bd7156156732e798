"""FHIR search syntax → plain query values (pure; raises :class:`SearchError` on bad input).

Dates follow FHIR R4 §3.1.1.4.2 ("search on date"): the parameter value is an implicit range
given by its precision (``2026`` is the whole year, ``2026-03-04`` the whole local day), and
the prefix compares that range with the observation's instant:

    eq  lo <= t < hi        ge  t >= lo        gt / sa  t >= hi
    le  t < hi              lt / eb  t < lo

Values without a time zone are read in Asia/Seoul (the district's clock; Korea has no DST).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from api.store.queries import Comparison, Token

SEOUL = ZoneInfo("Asia/Seoul")


class SearchError(ValueError):
    """A search parameter cannot be understood; the message names it (Korean / English)."""

    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        super().__init__(f"검색 조건 오류 / bad search parameter {parameter}: {reason}")


_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def _add_months(when: datetime, months: int) -> datetime:
    month = when.month - 1 + months
    return when.replace(year=when.year + month // 12, month=month % 12 + 1)


def date_range(value: str) -> tuple[datetime, datetime]:
    """The [lo, hi) range a FHIR date/dateTime value stands for.

    Every value the pattern admits either gives a range or a :class:`SearchError` (400): a
    zone beyond ±14:00, a day that does not exist, or a range ending after year 9999 (which
    Python's datetime cannot hold) are the client's error, never a 500.
    """
    match = _DATE.match(value)
    if not match:
        raise SearchError("date", f"{value!r} is not a FHIR date (YYYY, YYYY-MM-DD, ...)")
    try:
        return _range(match.groupdict())
    except (ValueError, OverflowError) as exc:
        raise SearchError("date", f"{value!r} is out of range ({exc})") from exc


def _range(g: dict[str, str | None]) -> tuple[datetime, datetime]:
    tz: tzinfo = SEOUL
    if g["tz"] and g["tz"] != "Z":
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
        if hours > 14 or minutes > 59 or hours * 60 + minutes > 14 * 60:
            raise ValueError(f"time zone {g['tz']} is beyond ±14:00")
        offset = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-offset if g["tz"][0] == "-" else offset)
    elif g["tz"] == "Z":
        tz = UTC
    lo = datetime(
        int(g["y"] or 0),
        int(g["m"] or 1),
        int(g["d"] or 1),
        int(g["H"] or 0),
        int(g["M"] or 0),
        int(g["S"] or 0),
        int(float(g["f"]) * 1_000_000) if g["f"] else 0,
        tzinfo=tz,
    )
    if g["f"]:
        hi = lo + timedelta(microseconds=1)
    elif g["S"]:
        hi = lo + timedelta(seconds=1)
    elif g["M"]:
        hi = lo + timedelta(minutes=1)
    elif g["d"]:
        hi = lo + timedelta(days=1)
    elif g["m"]:
        hi = _add_months(lo, 1)
    else:
        hi = lo.replace(year=lo.year + 1)
    for end in (lo, hi):
        end.astimezone(UTC)  # OverflowError when an end is no instant UTC can hold
    return lo, hi


def date_conditions(values: Iterable[str]) -> tuple[tuple[Comparison, datetime], ...]:
    """All ``date`` parameters (ANDed) as comparisons on the observation instant."""
    out: list[tuple[Comparison, datetime]] = []
    for value in values:
        if "," in value:
            raise SearchError("date", "comma-separated dates (OR) are not supported")
        prefix = value[:2] if value[:2] in _PREFIXES else "eq"
        lo, hi = date_range(value[2:] if value[:2] in _PREFIXES else value)
        if prefix == "eq":
            out += [("ge", lo), ("lt", hi)]
        elif prefix == "ge":
            out.append(("ge", lo))
        elif prefix in ("gt", "sa"):
            out.append(("ge", hi))
        elif prefix == "le":
            out.append(("lt", hi))
        elif prefix in ("lt", "eb"):
            out.append(("lt", lo))
        else:
            raise SearchError("date", f"prefix {prefix!r} is not supported")
    return tuple(out)


def tokens(parameter: str, values: Iterable[str]) -> tuple[Token, ...]:
    """``system|code``, ``|code`` (no system) or ``code`` (any system); commas OR."""
    out: list[Token] = []
    for raw in values:
        for value in raw.split(","):
            if "|" in value:
                system, _, code = value.partition("|")
            else:
                system, code = None, value
            if not code:
                raise SearchError(parameter, f"{value!r} has no code")
            out.append(Token(code=code, system=system))
    return tuple(out)


def references(parameter: str, values: Iterable[str], resource_type: str) -> tuple[str, ...]:
    """Ids from ``Type/id``, ``id`` or an absolute URL ending in ``Type/id``; commas OR."""
    out: list[str] = []
    for raw in values:
        for value in raw.split(","):
            ref = value.strip()
            if "/" in ref:
                kind, _, ident = ref.rstrip("/").rpartition("/")
                if kind.rsplit("/", 1)[-1] != resource_type:
                    raise SearchError(parameter, f"expected a {resource_type} reference")
                ref = ident
            if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", ref):
                raise SearchError(parameter, "not a valid id")
            out.append(ref)
    return tuple(out)


def count(values: Iterable[str], default: int, maximum: int) -> int:
    given = list(values)
    if not given:
        return default
    try:
        number = int(given[-1])
    except ValueError as exc:
        raise SearchError("_count", "must be a whole number") from exc
    if number < 1:
        raise SearchError("_count", "must be at least 1")
    return min(number, maximum)


def encode_cursor(after: tuple[datetime, str]) -> str:
    """An opaque page cursor (the last row's time and id; no personal data)."""
    text = json.dumps([after[0].isoformat(), after[1]])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        at, ident = json.loads(raw)
        when = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise SearchError("_cursor", "not a cursor this server issued") from exc
    if when.tzinfo is None or not isinstance(ident, str):
        raise SearchError("_cursor", "not a cursor this server issued")
    return when, ident


# --- which parameters a search takes (R4 §3.1.1.4: unknown and unsupported parameters) --------

#: Result parameters every search type takes (with the values we support).
RESULT_PARAMETERS = frozenset({"_count", "_format", "_summary", "_total"})
SUMMARY_VALUES = ("count", "false")
TOTAL_VALUES = ("none", "estimate", "accurate")


@dataclass(frozen=True, slots=True)
class SearchParams:
    """The parameters a search understood, in request order (unknown ones dropped in lenient
    mode); ``self_query`` is what the Bundle's self link says was searched."""

    pairs: tuple[tuple[str, str], ...]
    ignored: tuple[str, ...] = ()

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def last(self, name: str) -> str | None:
        found = self.values(name)
        return found[-1] if found else None

    @property
    def self_query(self) -> str:
        return urlencode([(k, v) for k, v in self.pairs if k != "_cursor"])

    @property
    def summary_count(self) -> bool:
        return self.last("_summary") == "count"

    @property
    def total_wanted(self) -> bool:
        """``_total=accurate``, ``_summary=count`` or ``_count=0`` (a page of nothing is asked
        for its total)."""
        return self.last("_total") == "accurate" or self.summary_count or self.last("_count") == "0"


def strict_handling(prefer: str | None) -> bool:
    """``Prefer: handling=strict`` (default lenient, R4 §3.1.1.4)."""
    if not prefer:
        return False
    parts = {p.strip().lower() for p in prefer.split(";") + prefer.split(",")}
    return "handling=strict" in parts


def search_params(
    items: Iterable[tuple[str, str]],
    allowed: frozenset[str],
    *,
    strict: bool,
    includes: frozenset[str] = frozenset(),
) -> SearchParams:
    """Check every parameter against ``allowed`` (plus the result parameters).

    Strict: an unknown or unsupported parameter (also a modifier such as ``code:text``) is a
    :class:`SearchError` naming it. Lenient: it is ignored and left out of the self link.
    """
    kept: list[tuple[str, str]] = []
    ignored: list[str] = []
    for name, value in items:
        known = name in allowed or name in RESULT_PARAMETERS or name == "_cursor"
        if name == "_include":
            known = bool(includes)
            if known and value not in includes:
                if strict:
                    raise SearchError(name, f"{value!r} is not supported ({', '.join(includes)})")
                ignored.append(f"{name}={value}")
                continue
        if not known:
            if strict:
                raise SearchError(name, "이 검색 조건은 지원하지 않습니다 / unknown or unsupported")
            ignored.append(name)
            continue
        if name == "_summary" and value not in SUMMARY_VALUES:
            raise SearchError(name, f"only {' and '.join(SUMMARY_VALUES)} are supported")
        if name == "_total" and value not in TOTAL_VALUES:
            raise SearchError(name, f"one of {', '.join(TOTAL_VALUES)}")
        kept.append((name, value))
    return SearchParams(tuple(kept), tuple(ignored))


def page_size(params: SearchParams, default: int, maximum: int) -> int:
    """``_count`` (0 = only the total, R4 §3.1.1.5.4); ``_summary=count`` is 0 too."""
    if params.summary_count:
        return 0
    given = params.values("_count")
    if not given:
        return default
    try:
        number = int(given[-1])
    except ValueError as exc:
        raise SearchError("_count", "must be a whole number") from exc
    if number < 0:
        raise SearchError("_count", "must be 0 or more")
    return min(number, maximum)


def dates_only(parameter: str, values: Iterable[str]) -> tuple[tuple[Comparison, date], ...]:
    """A ``date``-typed parameter on a date element (birthdate) as day comparisons."""
    out: list[tuple[Comparison, date]] = []
    for cmp, when in date_conditions(values):
        out.append((cmp, when.astimezone(SEOUL).date()))
    del parameter
    return tuple(out)
