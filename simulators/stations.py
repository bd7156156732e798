"""MQTT measurement-kiosk simulator: demo stations where residents check in and measure.

A kiosk (측정 키오스크) at each station reads a resident's centre card and publishes a check-in
event on ``{root}/st/{centre}/{station}/checkin``, then one measurement message per device
(blood pressure, glucose, weight, body composition) on ``{root}/st/{centre}/{station}/dev/{id}``,
in the versioned station payload of :mod:`devices.station` (encoded and validated by
``encode_station_payload`` / ``encode_station_event``; topics from :mod:`devices.wire`).

Values come from the resident's ground truth in the synthetic population (office BP with its
white-coat effect, fasting glucose and meal context, BMI and height), with reading-to-reading
noise, so what reaches the risk engine is consistent with :mod:`simulators.population`.
A few visitors (5 % by default) present a card the registry does not know.

Malformed messages on demand: with ``malformed_every=N`` every N-th message is replaced by a
broken variant, cycling through :class:`Malformation` (not JSON, truncated, unknown schema,
missing field, unknown code, wrong unit, negative or string value, no measurements, check-in
time without offset). Each is a message ``devices.station`` rejects; the gateway must
dead-letter it and carry on.

Layout: :class:`VisitPlanner` is pure (time and randomness are parameters) and says what a
visit publishes; :func:`kiosk_link` is the MQTT edge (the one adapter, ``devices.mqttlink``,
every network call bounded by a timeout);
:func:`run_station` / :func:`run_stations` run kiosks in-process (the demo), :func:`run_sync`
is the blocking entry of ``daon simulate stations``.

Errors::

    StationSimError            base of what this module raises on purpose
    ├── BrokerUnavailable      could not connect (refused, unreachable, timed out)
    └── PublishTimeout         a QoS 1 publish was not acknowledged in time
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np

from devices.model import Component, Kind, Measurement
from devices.mqttlink import Broker, MqttError, MqttLink, MqttTimeout
from devices.station import encode_station_event, encode_station_payload
from devices.wire import station_checkin_topic, station_topic
from simulators.demo_data import DemoDevice, DemoResident, DemoWorld, Station, demo_world
from simulators.population import Residents

logger = logging.getLogger(__name__)

KST = timezone(timedelta(hours=9), "KST")
CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 10.0


class StationSimError(Exception):
    """Base of the errors the station simulator raises on purpose."""


class BrokerUnavailable(StationSimError):
    """The broker could not be reached or refused the connection."""


class PublishTimeout(StationSimError):
    """A QoS 1 publish was not acknowledged within the timeout."""


class Malformation(StrEnum):
    """Ways a message is broken on demand; each is rejected by ``devices.station``."""

    NOT_JSON = "not_json"
    TRUNCATED = "truncated"
    UNKNOWN_SCHEMA = "unknown_schema"
    MISSING_DEVICE_ID = "missing_device_id"
    UNKNOWN_CODE = "unknown_code"
    WRONG_UNIT = "wrong_unit"
    NEGATIVE_VALUE = "negative_value"
    STRING_VALUE = "string_value"
    NO_MEASUREMENTS = "no_measurements"
    NAIVE_CHECKIN_TIME = "naive_checkin_time"


#: Which malformations apply to which message kind.
MEASUREMENT_MALFORMATIONS: tuple[Malformation, ...] = tuple(
    m for m in Malformation if m is not Malformation.NAIVE_CHECKIN_TIME
)
CHECKIN_MALFORMATIONS: tuple[Malformation, ...] = (
    Malformation.NOT_JSON,
    Malformation.TRUNCATED,
    Malformation.UNKNOWN_SCHEMA,
    Malformation.NAIVE_CHECKIN_TIME,
)


def malform(payload: bytes, how: Malformation) -> bytes:
    """A broken variant of a valid ``payload`` (pure). Raises ValueError if ``how`` cannot apply."""
    if how is Malformation.NOT_JSON:
        return b"{schema: 1, type: measurement, <- not JSON"
    if how is Malformation.TRUNCATED:
        return payload[: max(1, len(payload) // 2)]
    obj: dict[str, Any] = json.loads(payload)
    if how is Malformation.UNKNOWN_SCHEMA:
        obj["schema"] = 99
    elif how is Malformation.NAIVE_CHECKIN_TIME:
        if obj.get("type") != "checkin":
            raise ValueError("naive_checkin_time applies to check-in events only")
        obj["at"] = datetime.fromisoformat(obj["at"]).replace(tzinfo=None).isoformat()
    else:
        if obj.get("type") != "measurement":
            raise ValueError(f"{how} applies to measurement messages only")
        first = obj["measurements"][0]["values"][0]
        if how is Malformation.MISSING_DEVICE_ID:
            del obj["device_id"]
        elif how is Malformation.UNKNOWN_CODE:
            first["code"] = "sistolic"
        elif how is Malformation.WRONG_UNIT:
            first["unit"] = "mmHg"  # not UCUM: mm[Hg]
        elif how is Malformation.NEGATIVE_VALUE:
            first["value"] = -abs(first["value"])
        elif how is Malformation.STRING_VALUE:
            first["value"] = str(first["value"])
        elif how is Malformation.NO_MEASUREMENTS:
            obj["measurements"] = []
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


# --- what a visit publishes (pure) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message a kiosk publishes, ``delay_s`` after the previous one of the visit."""

    topic: str
    payload: bytes
    kind: str  # "checkin" | "measurement"
    delay_s: float = 0.0
    malformation: Malformation | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Visit:
    """A resident's visit to a station: who, with which card, and the messages it produces."""

    station: str
    card: str
    resident: str | None  # None for a card the registry does not know
    messages: tuple[Outgoing, ...]


def _dec(value: float, places: int) -> Decimal:
    return Decimal(f"{value:.{places}f}")


def _wall(at: datetime) -> datetime:
    return at.astimezone(KST).replace(tzinfo=None, microsecond=0)


def _luhn_digit(body: str) -> str:
    total = 0
    for i, char in enumerate(reversed(body)):
        digit = int(char)
        if i % 2 == 0:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return str((10 - total % 10) % 10)


class VisitPlanner:
    """Plans visits to one station: deterministic for a seed, no I/O, time is a parameter."""

    def __init__(
        self,
        station: Station,
        residents: Sequence[DemoResident],
        truth: Residents,
        *,
        root: str,
        seed: int,
        malformed_every: int = 0,
        unknown_card_rate: float = 0.05,
        card_in_payload_rate: float = 0.5,
        crisis_every: int = 0,
        crisis_nurse: str | None = None,
    ) -> None:
        if not residents:
            raise ValueError(f"station {station.id}: no residents to visit it")
        if malformed_every < 0:
            raise ValueError("malformed_every must be 0 (never) or a positive number")
        self.station = station
        self.residents = tuple(residents)
        self.truth = truth
        self.root = root
        self.malformed_every = malformed_every
        self.unknown_card_rate = unknown_card_rate
        self.card_in_payload_rate = card_in_payload_rate
        if crisis_every < 0:
            raise ValueError("crisis_every must be 0 (never) or a positive number")
        self.crisis_every = crisis_every
        # crisis visits are made by this nurse's residents when the station has some
        self._crisis_residents = (
            tuple(r for r in self.residents if crisis_nurse and r.nurse == crisis_nurse)
            or self.residents
        )
        self._visits = 0
        self._rng = np.random.default_rng([seed, *station.id.encode()])
        self._crisis_rng = np.random.default_rng([seed, 186, *station.id.encode()])
        self._messages = 0
        self._malformations = {
            "measurement": itertools.cycle(MEASUREMENT_MALFORMATIONS),
            "checkin": itertools.cycle(CHECKIN_MALFORMATIONS),
        }
        registered = {r.population_index for r in self.residents}
        self._visitors = np.array([i for i in range(len(truth)) if i not in registered])

    # -- one visit --

    def visit(self, at: datetime) -> Visit:
        """The messages of one visit starting at ``at`` (an aware datetime)."""
        rng = self._rng
        self._visits += 1
        crisis = (
            bool(self.crisis_every) and self._visits % self.crisis_every == 1 % self.crisis_every
        )
        if rng.random() < self.unknown_card_rate and len(self._visitors):
            row = int(self._visitors[rng.integers(len(self._visitors))])
            body = "9419" + "".join(str(d) for d in rng.integers(0, 10, 7))
            card, resident_id = body + _luhn_digit(body), None
        else:
            resident = self.residents[int(rng.integers(len(self.residents)))]
            row, card, resident_id = resident.population_index, resident.card_number, resident.id
        if crisis:  # its own generator: the other visits stay exactly as without crises
            pick = int(self._crisis_rng.integers(len(self._crisis_residents)))
            resident = self._crisis_residents[pick]
            row, card, resident_id = resident.population_index, resident.card_number, resident.id
        centre, station_id = self.station.centre, self.station.id
        messages = [
            self._finish(
                Outgoing(
                    topic=station_checkin_topic(self.root, centre, station_id),
                    payload=encode_station_event(station_id, card, at.astimezone(KST)),
                    kind="checkin",
                )
            )
        ]
        elapsed = 0.0
        in_payload = card if rng.random() < self.card_in_payload_rate else None
        for delay, device, measurement in self._measurements(row, at, crisis=crisis):
            elapsed += delay
            when = _wall(at + timedelta(seconds=elapsed))
            measurement = Measurement(
                kind=measurement.kind,
                components=measurement.components,
                device_time=when,
                status=measurement.status,
                context=measurement.context,
            )
            payload = encode_station_payload(
                device.id,
                [measurement],
                station=station_id,
                checkin=in_payload,
                device_time=when,
                message_id=f"{station_id}-{self._messages + 1:06d}",
            )
            messages.append(
                self._finish(
                    Outgoing(
                        topic=station_topic(self.root, centre, station_id, device.id),
                        payload=payload,
                        kind="measurement",
                        delay_s=delay,
                        device_id=device.id,
                    )
                )
            )
        return Visit(station_id, card, resident_id, tuple(messages))

    def _finish(self, message: Outgoing) -> Outgoing:
        """Count the message; every N-th one is replaced by a malformed variant."""
        self._messages += 1
        if self.malformed_every and self._messages % self.malformed_every == 0:
            how = next(self._malformations[message.kind])
            return Outgoing(
                topic=message.topic,
                payload=malform(message.payload, how),
                kind=message.kind,
                delay_s=message.delay_s,
                malformation=how,
                device_id=message.device_id,
            )
        return message

    def _measurements(
        self, row: int, at: datetime, *, crisis: bool = False
    ) -> list[tuple[float, DemoDevice, Measurement]]:
        """(delay before it, device, measurement) in the order a resident goes round the station.
        A ``crisis`` visit's first blood pressure is a hypertensive crisis (186/121 mmHg, the
        reading of issue 11): the demo's way to show the alert chain end to end."""
        rng, t = self._rng, self.truth
        out: list[tuple[float, DemoDevice, Measurement]] = []
        # Blood pressure: one or two readings a minute or so apart, seated, at the centre.
        cuff = self.station.kiosk_device("cuff")
        pulse_mean = 72.0 + 6.0 * np.random.default_rng([row, 1]).standard_normal()
        for i in range(1 if rng.random() < 0.4 else 2):
            sys = round(t.true_office_sys[row] + (2.0 if i == 0 else 0.0) + rng.normal(0, 8))
            dia = round(min(t.true_office_dia[row] + rng.normal(0, 5), sys - 15))
            pulse = round(pulse_mean + rng.normal(0, 5))
            status: tuple[str, ...] = ()
            if rng.random() < 0.02:
                status = ("irregular_pulse",)
            elif rng.random() < 0.02:
                status = ("body_movement",)
            if crisis and i == 0:  # a valid reading: no status bits
                sys, dia, status = 186, 121, ()
            components = (
                Component("systolic", Decimal(sys), "mm[Hg]"),
                Component("diastolic", Decimal(dia), "mm[Hg]"),
                Component("mean", Decimal(round(dia + (sys - dia) / 3)), "mm[Hg]"),
                Component("pulse", Decimal(pulse), "/min"),
            )
            context = (("position", "sitting"), ("setting", "centre"))
            out.append(
                (
                    float(rng.uniform(40, 70)) if i == 0 else float(rng.uniform(60, 90)),
                    cuff,
                    Measurement(
                        Kind.BLOOD_PRESSURE, components, None, status=status, context=context
                    ),
                )
            )
        # Glucose: more often for residents with diabetes; fasting before 10:30, else casual.
        diabetic = bool(t.diabetes[row])
        if rng.random() < (0.6 if diabetic else 0.25):
            hour = _wall(at).hour + _wall(at).minute / 60
            meal = (
                "fasting"
                if hour < 10.5 and rng.random() < 0.6
                else ("postprandial" if rng.random() < 0.25 else "casual")
            )
            offset = {"fasting": 0.0, "postprandial": 60.0 if diabetic else 25.0}.get(
                meal, 25.0 if diabetic else 12.0
            )
            mean = t.true_fasting_glucose[row] + offset
            value = mean + rng.normal(0, 0.12 * mean if diabetic else 6.0)
            if t.hypo_prone[row] and rng.random() < 0.03:
                value = rng.uniform(45, 69)
            mg_dl = int(np.clip(round(value), 20, 600))
            out.append(
                (
                    float(rng.uniform(60, 120)),
                    self.station.kiosk_device("glucose_meter"),
                    Measurement(
                        Kind.GLUCOSE,
                        (Component("glucose", Decimal(mg_dl), "mg/dL"),),
                        None,
                        context=(("meal", meal), ("sample_type", "capillary_plasma")),
                    ),
                )
            )
        # Weight (in clothes), then sometimes body composition on the analyser.
        height_m = float(t.height_cm[row]) / 100
        kg = float(t.bmi[row]) * height_m**2 + 0.8 + rng.normal(0, 0.3)
        bmi = kg / height_m**2
        if rng.random() < 0.85:
            out.append(
                (
                    float(rng.uniform(30, 60)),
                    self.station.kiosk_device("scale"),
                    Measurement(
                        Kind.BODY_WEIGHT,
                        (
                            Component("weight", _dec(kg, 1), "kg"),
                            Component("height", _dec(t.height_cm[row], 1), "cm"),
                            Component("bmi", _dec(bmi, 1), "kg/m2"),
                        ),
                        None,
                    ),
                )
            )
        if rng.random() < 0.5:
            male = 1.0 if t.sex[row] == "M" else 0.0
            offset = 3.0 * np.random.default_rng([row, 2]).standard_normal()
            fat = 1.2 * bmi + 0.23 * float(t.age[row]) - 10.8 * male - 5.4 + offset
            fat = float(np.clip(fat + rng.normal(0, 0.8), 5.0, 60.0))
            fat_free = kg * (1 - fat / 100)
            out.append(
                (
                    float(rng.uniform(30, 60)),
                    self.station.kiosk_device("body_composition"),
                    Measurement(
                        Kind.BODY_COMPOSITION,
                        (
                            Component("body_fat", _dec(fat, 1), "%"),
                            Component("fat_free_mass", _dec(fat_free, 1), "kg"),
                            Component("body_water_mass", _dec(0.73 * fat_free, 1), "kg"),
                            Component("impedance", Decimal(round(rng.normal(520, 60))), "Ohm"),
                            Component("weight", _dec(kg, 1), "kg"),
                            Component("height", _dec(t.height_cm[row], 1), "cm"),
                            Component("bmi", _dec(bmi, 1), "kg/m2"),
                        ),
                        None,
                    ),
                )
            )
        return out


# --- the MQTT edge ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def kiosk_link(
    url: str,
    client_id: str,
    *,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    publish_timeout: float = PUBLISH_TIMEOUT_S,
) -> AsyncIterator[MqttLink]:
    """One kiosk's MQTT connection (``devices.mqttlink``), with the simulator's errors.

    A kiosk keeps no session (``clean_session``): what it has not published when the broker
    goes away is the resident's to measure again. Connect and every QoS 1 publish are bounded.
    """
    broker = Broker.parse(url)
    link = MqttLink(broker, client_id=client_id, timeout=connect_timeout, clean_session=True)
    try:
        await link.connect()
    except MqttError as exc:
        raise BrokerUnavailable(
            f"cannot connect to {broker.host}:{broker.port}: {exc.reason}"
        ) from None
    logger.info("kiosk %s connected to %s", client_id, broker.display())
    try:
        yield link
    except MqttTimeout as exc:
        raise PublishTimeout(f"{exc} within {publish_timeout:g} s") from None
    except MqttError as exc:
        raise BrokerUnavailable(str(exc)) from None
    finally:
        await link.close()


# --- running kiosks ---------------------------------------------------------------------------


@dataclass(slots=True)
class StationStats:
    """Counters of one running kiosk (mutable: the runner updates them as it goes)."""

    station: str
    visits: int = 0
    messages: int = 0
    malformed: int = 0
    unknown_cards: int = 0


async def run_station(
    url: str,
    station: Station,
    *,
    root: str = "daon",
    world: DemoWorld | None = None,
    seed: int = 2014,
    interval: float = 5.0,
    visits: int | None = None,
    malformed_every: int = 0,
    crisis_every: int = 0,
    crisis_nurse: str | None = None,
    pace: float = 1.0,
    stats: StationStats | None = None,
    on_publish: Callable[[Outgoing], None] | None = None,
    stop: asyncio.Event | None = None,
) -> StationStats:
    """Run one kiosk until ``visits`` visits are done, ``stop`` is set, or it is cancelled.

    ``interval`` is the mean time between visits (exponential); ``pace`` scales the pauses
    between a visit's messages (1.0 = real time, 0 = back to back). Broker errors propagate
    (:class:`BrokerUnavailable`, :class:`PublishTimeout`); the caller decides on retries.
    """
    world = world or demo_world()
    stats = stats or StationStats(station.id)
    planner = VisitPlanner(
        station,
        world.residents_of(station.centre) or world.residents,
        world.population.residents,
        root=root,
        seed=seed,
        malformed_every=malformed_every,
        crisis_every=crisis_every,
        crisis_nurse=crisis_nurse,
    )
    wait_rng = np.random.default_rng([seed, 99, *station.id.encode()])
    stop = stop or asyncio.Event()
    client_id = f"{station.id}-kiosk-sim-{uuid.uuid4().hex[:8]}"
    async with kiosk_link(url, client_id) as link:
        while visits is None or stats.visits < visits:
            visit = planner.visit(datetime.now(KST))
            stats.unknown_cards += visit.resident is None
            for message in visit.messages:
                if message.delay_s and pace:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(message.delay_s * pace):
                            await stop.wait()
                if stop.is_set():
                    return stats
                await link.publish(message.topic, message.payload, wait_s=PUBLISH_TIMEOUT_S)
                stats.messages += 1
                stats.malformed += message.malformation is not None
                if on_publish is not None:
                    on_publish(message)
            stats.visits += 1
            logger.info(
                "%s: visit %d (card %s, %d messages)",
                station.id,
                stats.visits,
                visit.card,
                len(visit.messages),
            )
            if visits is not None and stats.visits >= visits:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                    float(wait_rng.exponential(interval)) if interval else 0
                ):
                    await stop.wait()
            if stop.is_set():
                break
    return stats


async def run_stations(
    url: str,
    *,
    root: str = "daon",
    centres: Sequence[str] = (),
    world: DemoWorld | None = None,
    seed: int = 2014,
    interval: float = 5.0,
    visits: int | None = None,
    malformed_every: int = 0,
    crisis_every: int = 0,
    crisis_nurse: str | None = None,
    pace: float = 1.0,
    stats: dict[str, StationStats] | None = None,
    on_publish: Callable[[Outgoing], None] | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, StationStats]:
    """Run the kiosks of ``centres`` (default: every demo centre) side by side (TaskGroup)."""
    world = world or demo_world()
    wanted = set(centres) if centres else {c.id for c in world.centres}
    unknown = wanted - {c.id for c in world.centres}
    if unknown:
        raise ValueError(f"unknown centre(s): {', '.join(sorted(unknown))} (yaksu, hwanghak, pil)")
    stations = [s for s in world.stations if s.centre in wanted]
    stats = stats if stats is not None else {}
    for station in stations:
        stats.setdefault(station.id, StationStats(station.id))
    async with asyncio.TaskGroup() as group:
        for station in stations:
            group.create_task(
                run_station(
                    url,
                    station,
                    root=root,
                    world=world,
                    seed=seed,
                    interval=interval,
                    visits=visits,
                    malformed_every=malformed_every,
                    crisis_every=crisis_every,
                    crisis_nurse=crisis_nurse,
                    pace=pace,
                    stats=stats[station.id],
                    on_publish=on_publish,
                    stop=stop,
                )
            )
    return stats


def run_sync(
    url: str,
    *,
    root: str = "daon",
    centres: Sequence[str] = (),
    seed: int = 2014,
    interval: float = 5.0,
    visits: int | None = None,
    malformed_every: int = 0,
    pace: float = 0.1,
) -> dict[str, StationStats]:
    """Blocking entry for the command line; Ctrl-C stops the kiosks and returns the counts.

    Raises :class:`StationSimError` when the broker cannot be used, ValueError on bad input.
    """
    stats: dict[str, StationStats] = {}

    async def main() -> None:
        try:
            await run_stations(
                url,
                root=root,
                centres=centres,
                seed=seed,
                interval=interval,
                visits=visits,
                malformed_every=malformed_every,
                pace=pace,
                stats=stats,
            )
        except* StationSimError as group:
            raise group.exceptions[0] from None

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return stats
