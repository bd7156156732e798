"""``daon demo``: the whole service in one process, on embedded defaults.

What runs (each a task in one TaskGroup, all stopped by one event):

- PostgreSQL and Mosquitto: the configured ones, else private embedded servers whose data stays
  under the state directory across runs;
- the virtual BlueZ on a private dbus-daemon with the three centres' BLE devices (cuff, glucose
  meter, scale, body-composition analyser per station, plus residents' home devices), residents
  measuring on them;
- the MQTT measurement kiosks of the three centres (card check-in, then measurements);
- one edge gateway per centre (BLE + kiosks → check-in binding → outbox → central broker);
- ingest (gateway batches → FHIR Observations, acknowledged after commit);
- the clinical runner (flags, tasks, visiting groups);
- the delivering service (notify events → FHIR Subscription rest-hooks), with a demo relay: a
  local rest-hook receiver subscribed to every Flag that prints each alert it receives;
- the web application and FHIR API.

The demo world (centres, stations, devices, residents, staff) is seeded idempotently on every
start, so a second run continues with the data of the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import uvicorn

from daon.brokerauth import API_USER, INGEST_USER
from daon.commands.clinical import build_config as clinical_config
from daon.commands.deliver import build_config as delivery_config
from daon.commands.gateway import build_config as gateway_config
from daon.commands.gateway import demo_tables
from daon.commands.ingest import build_config as ingest_config
from daon.runtime import DEMO_KIOSKS_USER, demo_account_url, demo_broker, endpoints
from daon.settings import MqttUrl, Settings
from ingest import store

logger = logging.getLogger("daon.demo")

#: How fast the simulated world moves: kiosk visits and BLE measurements, seconds apart.
KIOSK_INTERVAL_S = 20.0
# Simulated visitors use these centres' stations; 필동's is left to people trying the station
# screen (a simulated check-in at the same station would take the readings over, as a real
# resident stepping up to the station does).
SIMULATED_KIOSK_CENTRES = ("yaksu", "hwanghak")
PEOPLE_STATION = "pil-station-1"
KIOSK_PACE = 0.05
BLE_INTERVAL_S = 25.0
#: Every N-th kiosk visit is a hypertensive crisis (186/121 mmHg), made by a resident of
#: DEMO_NURSE where the station has one: the alert chain end to end (issue 11).
DEMO_CRISIS_EVERY = 12
DEMO_NURSE = "N05"
#: The virtual Bluetooth adapter of each centre's gateway.
ADAPTERS = {"yaksu": "hci0", "hwanghak": "hci1", "pil": "hci2"}
#: The method calls the demo's virtual BlueZ remembers (nothing in the demo reads them; the
#: default of 20,000, for tests, is ~11 MB that a demo fills in its first 30-50 minutes).
BLUEZ_CALL_LOG = 500


@dataclass(frozen=True, slots=True)
class DemoReport:
    url: str
    logins: tuple[str, ...]
    ble: str  # what happened to the BLE side, for the banner
    fhir_token: str  # an admin bearer token for the FHIR API (valid a day)
    relay: str = ""  # the demo relay's rest-hook endpoint


async def seed(database_url: str) -> tuple[tuple[str, ...], str]:
    """Seed the demo world; returns the login lines to print and a FHIR bearer token."""
    from api.seed import StaffSpec, seed_demo_consents, seed_demo_users
    from api.store import access
    from api.store.access import Role
    from ingest.store import registry
    from simulators.demo_data import demo_world

    world = demo_world()
    today = date.today()
    role_of = {"nurse": Role.NURSE, "liaison": Role.LIAISON, "rehab": Role.THERAPIST}
    async with store.connection(database_url) as conn:
        await registry.upsert_centres(
            conn, [registry.Centre(c.id, c.name, c.neighbourhood) for c in world.centres]
        )
        await registry.upsert_gateways(
            conn,
            [
                registry.Gateway(f"{c.id}-gw-1", c.id, "station", f"{c.name} gateway")
                for c in world.centres
            ],
        )
        await registry.upsert_stations(
            conn,
            [registry.Station(s.id, s.centre, s.name, f"{s.centre}-gw-1") for s in world.stations],
        )
        await registry.upsert_residents(
            conn,
            [
                registry.Resident(
                    id=r.id,
                    display_name=r.name,
                    neighbourhood=r.neighbourhood,
                    card_number=r.card_number,
                    birth_date=date(today.year - r.age, 1, 1),
                    sex=r.sex,
                    height_cm=round(r.height_cm, 1),
                    profile=_profile(r),
                    nurse_id=r.nurse or None,
                    liaison_id=r.liaison or None,
                    rehab=r.rehab,
                )
                for r in world.residents
            ],
        )
        await registry.upsert_contacts(conn, [_contacts(world, r) for r in world.residents])
        await registry.upsert_devices(
            conn,
            [
                registry.Device(
                    id=d.id,
                    kind=str(d.kind),
                    address=d.address,
                    manufacturer=d.manufacturer,
                    model=d.model,
                    serial=d.serial,
                    firmware=d.firmware,
                    station_id=d.station,
                    owner_id=d.owner,
                    calibration=d.calibration,
                )
                for d in world.devices
            ],
        )
        staff = [
            StaffSpec(m.id, m.name, role_of[m.role], m.neighbourhoods)
            for m in (*world.nurses, *world.liaisons, *world.therapists)
        ]
        logins = await seed_demo_users(
            conn,
            staff=staff,
            stations=[(s.id, s.name) for s in world.stations],
            gateways=[f"{c.id}-gw-1" for c in world.centres],
        )
        await seed_demo_consents(conn, [(r.id, r.consent) for r in world.residents])
        fhir_token = await access.create_token(
            conn, "admin", "데모 FHIR 클라이언트 / demo FHIR client", lifetime=timedelta(days=1)
        )
        await conn.commit()
    return tuple(login.line() for login in logins), fhir_token.token


async def seed_history(database_url: str, topic_root: str) -> int:
    """On the first start, store the demo residents' last 90 days through ingest's own path
    (decode, map, de-duplicate, store, NOTIFY), so charts and series rules have a past.
    Returns the readings stored (0 when the database already holds observations)."""
    from ingest.pipeline import process_message
    from ingest.store import registry
    from ingest.store.observations import write_outcomes
    from simulators.demo_data import demo_world
    from simulators.demo_history import history_batches, history_readings

    async with store.connection(database_url) as conn:
        row = await (await conn.execute("SELECT EXISTS (SELECT 1 FROM observation)")).fetchone()
        if row is not None and row[0]:
            return 0
        print("  지난 90일 기록 쓰는 중 / writing the last 90 days ...", flush=True)
        snapshot = await registry.load_registry(conn)
        readings = history_readings(demo_world(), end=date.today() - timedelta(days=1))
        outcomes = [
            process_message(t, b, snapshot) for t, b in history_batches(readings, topic_root)
        ]
        stored = 0
        for start in range(0, len(outcomes), 4):  # a consumer-sized batch per transaction
            chunk = outcomes[start : start + 4]
            await write_outcomes(conn, chunk, worker="demo-history")
            await conn.commit()
            stored += sum(len(o.ack_ids) for o in chunk)
    return stored


DEMO_RELAY_REASON = "데모 알림 중계 / demo alert relay"


async def demo_relay(database_url: str) -> tuple[Any, str]:
    """Start the demo's rest-hook receiver and subscribe it to every Flag (the subscription of
    an earlier run, whose port is gone, is replaced). Each alert it receives is printed."""
    from api.store import access, delivery
    from api.subscription import parse
    from simulators.resthook import serve_in_thread

    def show(record: dict[str, Any]) -> None:
        notice = record["headers"].get("x-daon-notice", "?")
        print(
            f"  [알림 중계 / relay] {record['method']} {record['path']} ({notice}) "
            f"Idempotency-Key {record['headers'].get('idempotency-key', '?')}",
            flush=True,
        )

    server = serve_in_thread(0, show)
    url = f"http://127.0.0.1:{server.server_address[1]}/demo-relay"
    async with store.connection(database_url) as conn:
        admin = await access.load_actor(conn, "admin")
        if admin is None:
            return server, ""
        for old in await delivery.search_subscriptions(conn, admin):
            if old.reason == DEMO_RELAY_REASON:
                await delivery.delete_subscription(conn, admin, old.id)
        await delivery.create_subscription(
            conn,
            admin,
            parse(
                {
                    "resourceType": "Subscription",
                    "status": "requested",
                    "reason": DEMO_RELAY_REASON,
                    "criteria": "Flag",
                    "channel": {
                        "type": "rest-hook",
                        "endpoint": url,
                        "payload": "application/fhir+json",
                    },
                }
            ),
        )
        await conn.commit()
    return server, url


def _contacts(world: Any, resident: Any) -> Any:
    """The resident's synthetic contact details (numbers that reach nobody)."""
    from ingest.store import registry

    c, i = world.population.contacts, resident.population_index
    persons: tuple[registry.Contact, ...] = ()
    if c.contact_name[i]:
        persons = (
            registry.Contact(
                str(c.contact_name[i]),
                str(c.contact_relationship[i]),
                str(c.contact_phone[i]),
                bool(c.contact_guardian[i]),
            ),
        )
    return registry.ResidentContacts(
        resident_id=resident.id,
        mobile_phone=str(c.mobile_phone[i]),
        home_phone=str(c.home_phone[i]) or None,
        address_road=str(c.address_road[i]),
        address_detail=str(c.address_detail[i]),
        lives_alone=bool(c.lives_alone[i]),
        contacts=persons,
    )


def _profile(resident: Any) -> dict[str, Any]:
    diagnoses = [
        name
        for name, present in (
            ("hypertension", resident.hypertension),
            ("diabetes_t2", resident.diabetes),
            ("obesity", resident.obesity),
            ("dyslipidemia", resident.dyslipidemia),
        )
        if present
    ]
    medications = []
    if resident.hypertension:
        medications.append("antihypertensive")
    if resident.diabetes:
        medications.append("metformin")
    return {
        "diagnoses": diagnoses,
        "medications": medications,
        "older_adult_health": "healthy",
        "home_monitoring": bool(resident.home_devices),
        "benefit": resident.benefit,
    }


@contextlib.asynccontextmanager
async def virtual_ble(stop: asyncio.Event) -> AsyncIterator[tuple[Any, str]]:
    """The private bus + virtual BlueZ + demo fleet; yields (fleet or None, description)."""
    from simulators.bluez.bleak_cleanup import close_bleak_manager
    from simulators.bluez.bus import PrivateBus
    from simulators.bluez.errors import BusUnavailable
    from simulators.bluez.service import VirtualBlueZ
    from simulators.peripherals.demo import build_fleet

    try:
        bus = PrivateBus(detach=True).start()  # its own session: Ctrl-C reaches only us
    except (BusUnavailable, OSError) as exc:
        yield (
            None,
            f"꺼짐 / off, the kiosks and everything else run. {exc}",
        )
        return
    saved = {name: os.environ.get(name) for name in ("DBUS_SYSTEM_BUS_ADDRESS", "PATH")}
    try:
        # bleak finds BlueZ through this variable, read at every connection: process-wide
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        # bleak asks `bluetoothctl --version` for BlueZ's version: the bus brings an answer.
        os.environ["PATH"] = f"{bus.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        fleet = build_fleet()
        # One adapter per centre, as each centre has its own gateway box and radio.
        bluez = VirtualBlueZ(
            bus.address, adapters=tuple(ADAPTERS.values()), call_log=BLUEZ_CALL_LOG
        )
        await bluez.start()
        for device in fleet.devices:
            centre = fleet.sources[device.address].centre
            bluez.add_peripheral(device, adapters=(ADAPTERS[centre],))
        try:
            yield fleet, f"{len(fleet.devices)} virtual BLE devices on {bus.address}"
        finally:
            # The gateways have stopped: close bleak's client connection, then the service.
            await close_bleak_manager()
            try:
                await bluez.stop()
            except (OSError, RuntimeError) as exc:  # the bus is going away anyway
                logger.debug("virtual BlueZ stopped uncleanly: %s", exc)
    finally:
        bus.stop()
        for name, value in saved.items():  # no later bleak user of this process finds a dead bus
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the demo owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


#: The web application's start (its lifespan opens the database pool, the check-in publisher
#: and the alert hub) is tried this many times, with pauses of 2, 4, 8, then 15 s, before the
#: demo stops with the reason: a database that is slow or briefly unavailable at start costs
#: a retry, not the demo (uvicorn itself calls sys.exit when the lifespan fails).
API_START_ATTEMPTS = 8
API_RETRY_MAX_S = 15.0
#: A start still going after this long is reported (the demo waits on for it).
API_START_WAIT_S = 60.0


class ApiDidNotStart(RuntimeError):
    """The web application did not start within API_START_ATTEMPTS attempts."""


class _StartupWatch:
    """ASGI wrapper that keeps why the application's lifespan start failed: uvicorn logs the
    traceback and exits, the demo wants one line to print and a reason to retry."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.failure = ""  # the last line of the traceback: the exception and its message
        self.traceback = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watched(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed":
                self.traceback = str(message.get("message", ""))
                lines = [ln.strip() for ln in self.traceback.splitlines()]
                self.failure = next((ln for ln in reversed(lines) if ln), "")
            await send(message)

        await self.app(scope, receive, watched)


class _NoLifespanTraceback(logging.Filter):
    """Drops uvicorn's traceback of a failed lifespan start: :func:`serve_web` says why in one
    line per attempt (the traceback is logged at debug level, ``daon -vv demo``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Exception in 'lifespan' protocol")


async def _serve(server: uvicorn.Server) -> bool:
    """``server.serve()``; False when uvicorn gave up at start. uvicorn raises SystemExit
    then, which from a task of its own would escape the event loop and end the demo."""
    try:
        await server.serve()
    except SystemExit:
        return False
    return True


async def serve_web(
    app: Any,
    host: str,
    port: int,
    stop: asyncio.Event,
    up: asyncio.Event,
    *,
    attempts: int = API_START_ATTEMPTS,
    retry_max_s: float = API_RETRY_MAX_S,
) -> None:
    """Serve ``app`` until ``stop`` is set; ``up`` is set once it listens. A start that fails
    (the lifespan cannot reach the database in time, the port is taken) is retried after a
    growing pause, bounded by ``retry_max_s``; after ``attempts`` failed starts
    :class:`ApiDidNotStart` is raised with the last reason."""
    watch = _StartupWatch(app)
    config = uvicorn.Config(watch, host=host, port=port, log_level="warning", lifespan="on")
    quiet = _NoLifespanTraceback()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        for attempt in range(1, attempts + 1):
            watch.failure = watch.traceback = ""
            server = _QuietServer(config)
            serving = asyncio.create_task(_serve(server))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(API_START_WAIT_S):
                    # uvicorn.Server has only a flag for "listening", no event to wait on.
                    while not (server.started or serving.done() or stop.is_set()):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            if server.started or not serving.done():
                if not server.started and not stop.is_set():
                    logger.warning(
                        "웹 애플리케이션이 %.0f초 안에 시작되지 않았습니다 / the web application "
                        "did not start within %.0f s",
                        API_START_WAIT_S,
                        API_START_WAIT_S,
                    )
                up.set()
                await stop.wait()
                server.should_exit = True
                await serving
                return
            await serving
            if watch.traceback:
                logger.debug("the web application's start failed:\n%s", watch.traceback)
            reason = watch.failure or f"uvicorn exited at start (port {port} in use?)"
            if attempt == attempts:
                raise ApiDidNotStart(
                    f"웹 애플리케이션을 시작하지 못했습니다 ({attempts}번 시도) / the web "
                    f"application did not start after {attempts} attempts: {reason}"
                )
            pause = min(retry_max_s, 2.0**attempt)
            logger.warning(
                "웹 애플리케이션을 시작하지 못했습니다 (시도 %d/%d), %.0f초 후 다시 시도합니다 / "
                "the web application did not start (attempt %d of %d), retrying in %.0f s: %s",
                attempt,
                attempts,
                pause,
                attempt,
                attempts,
                pause,
                reason,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await stop.wait()
            if stop.is_set():
                return
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)


async def run_demo(
    settings: Settings,
    database_url: str,
    mqtt_url: str,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[DemoReport], None] | None = None,
) -> None:
    """Run every service until ``stop`` is set (default: Ctrl-C or SIGTERM)."""
    from api.config import ApiConfig, MqttTarget
    from api.delivery import Deliverer
    from api.main import create_app
    from clinical.runner import run as run_clinical
    from gateway.service import run as run_gateway
    from ingest.service import run as run_ingest
    from simulators.stations import run_stations

    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)

    print("데이터베이스 준비 중 / preparing the database ...", flush=True)
    migrated = await store.migrate(database_url, timescaledb=settings.timescaledb)
    print(f"  schema version {migrated.version} on {migrated.backend}", flush=True)
    logins, fhir_token = await seed(database_url)
    stored = await seed_history(database_url, settings.topic_root)
    if stored:
        print(f"  지난 90일 측정 기록 / the last 90 days: {stored:,} readings", flush=True)
    relay_server, relay_url = await demo_relay(database_url)

    def account(user: str) -> str:
        """Each service logs in to the demo's own broker with its account (the shipped ACL);
        a broker given by DAON_MQTT_URL is used as it is."""
        return (
            demo_account_url(settings, user) if mqtt_url == demo_broker(settings).url else mqtt_url
        )

    broker = MqttUrl.parse(account(API_USER))
    api_config = ApiConfig(
        database_url=database_url,
        mqtt=MqttTarget(broker.host, broker.port, broker.tls, broker.username, broker.password),
        topic_root=settings.topic_root,
    ).with_overrides(dict(settings.api))
    app = create_app(api_config)

    async with virtual_ble(stop) as (fleet, ble_state):
        slots = {
            address: [(slot.user_index, slot.consent_code, slot.resident) for slot in held]
            for address, held in (fleet.scale_slots.items() if fleet is not None else ())
        }
        tables = demo_tables(scale_slots=slots)
        for table in tables:
            table["ble"] = {**table.get("ble", {}), "adapter": ADAPTERS[table["centre"]]}
        if fleet is None:
            for table in tables:  # no radio: keep the kiosks, drop the BLE devices
                table["devices"] = [d for d in table["devices"] if "address" not in d]
        gateways = [gateway_config(settings, t, broker_url=account(t["id"])) for t in tables]

        async def until_stopped(name: str, work: Callable[[], Awaitable[Any]]) -> None:
            try:
                await work()
            except Exception:
                logger.exception("%s stopped with an error; the rest of the demo goes on", name)

        api_up = asyncio.Event()
        failed: list[ApiDidNotStart] = []

        async def serve_api() -> None:
            # The banner waits for api_up: its address must answer when it is printed.
            try:
                await serve_web(app, settings.api_host, settings.api_port, stop, api_up)
            except ApiDidNotStart as exc:
                failed.append(exc)
                stop.set()  # no banner; the demo stops and says why
            finally:
                api_up.set()

        async with asyncio.TaskGroup() as group:
            group.create_task(
                until_stopped(
                    "ingest",
                    lambda: run_ingest(
                        ingest_config(settings, database_url, account(INGEST_USER)), stop=stop
                    ),
                )
            )
            group.create_task(
                until_stopped(
                    "clinical",
                    lambda: run_clinical(
                        clinical_config(_with_demo_roster(settings), database_url), stop=stop
                    ),
                )
            )
            for config in gateways:
                group.create_task(
                    until_stopped(
                        f"gateway {config.gateway_id}",
                        lambda config=config: run_gateway(config, stop=stop),  # type: ignore[misc]
                    )
                )
            group.create_task(
                until_stopped(
                    "kiosks",
                    lambda: run_stations(
                        account(DEMO_KIOSKS_USER),
                        root=settings.topic_root,
                        centres=SIMULATED_KIOSK_CENTRES,
                        interval=KIOSK_INTERVAL_S,
                        pace=KIOSK_PACE,
                        crisis_every=DEMO_CRISIS_EVERY,
                        crisis_nurse=DEMO_NURSE,
                        stop=stop,
                    ),
                )
            )
            if fleet is not None:
                group.create_task(
                    until_stopped("BLE residents", lambda: fleet.activity(BLE_INTERVAL_S, stop))
                )
            group.create_task(until_stopped("api", serve_api))
            deliverer = Deliverer(delivery_config(settings, database_url))
            group.create_task(until_stopped("delivery", lambda: deliverer.run(stop)))
            report = DemoReport(
                url=f"http://{settings.api_host}:{settings.api_port}/",
                logins=logins,
                ble=ble_state,
                fhir_token=fhir_token,
                relay=relay_url,
            )
            await _first(api_up.wait(), stop.wait())
            if not stop.is_set():
                (on_ready or _banner)(report)
            await stop.wait()
            print("\n종료 중 / stopping ...", flush=True)
    relay_server.shutdown()
    relay_server.server_close()
    if failed:
        raise failed[0]
    print("데모를 종료했습니다. 데이터는 다음 실행에도 남아 있습니다. / Demo stopped; data kept.")


async def _first(*waits: Awaitable[Any]) -> None:
    """Wait until the first of ``waits`` completes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def demo_roster() -> dict[str, Any]:
    """The alert roster of the demo world (``[clinical.alerts]``): per 동, the team lead and a
    backup nurse among the nurses who cover it, and an on-call nurse, so that the §0 chain runs
    at any hour the demo is shown (a district may have no on-call cover; then critical alerts
    wait for the next staffed morning, README "Alert chain")."""
    from simulators.demo_data import demo_world

    world = demo_world()
    areas: dict[str, dict[str, str]] = {}
    for area in sorted({r.neighbourhood for r in world.residents}):
        cover = [n.id for n in world.nurses if area in n.neighbourhoods]
        if not cover:
            continue
        duty = {"team_lead": cover[0], "on_call_nurse": cover[-1]}
        if len(cover) > 1:
            duty["backup_nurse"] = cover[1]
        areas[area] = duty
    return {"neighbourhood": areas}


def _with_demo_roster(settings: Settings) -> Settings:
    """The settings with the demo roster, unless ``[clinical.alerts]`` sets one."""
    if "alerts" in settings.clinical:
        return settings
    return settings.model_copy(update={"clinical": {**settings.clinical, "alerts": demo_roster()}})


def _banner(report: DemoReport) -> None:
    print(flush=True)
    print("=" * 78)
    print(" 다온 데모가 실행 중입니다 / Daon demo is running")
    print(f"   웹 / web:   {report.url}")
    print(f"   BLE:        {report.ble}")
    print("   로그인 / logins (all demo passwords are the same):")
    for line in report.logins:
        print(f"     {line}")
    print("   FHIR API (admin token, valid for a day):")
    print(
        f"     curl -H 'Authorization: Bearer {report.fhir_token}' "
        f"'{report.url}fhir/Observation?_count=10&_sort=-date'"
    )
    if report.relay:
        print(f"   알림 중계 / alert relay (FHIR Subscription rest-hook): {report.relay}")
    print(
        f"   위급 알림 / alerts: every {DEMO_CRISIS_EVERY}th kiosk visit is a crisis reading; "
        f"sign in as {DEMO_NURSE.lower()} and keep /worklist open"
    )
    print(
        f"   측정대 화면 / station screen: sign in as kiosk-{PEOPLE_STATION} "
        "(no simulated visitors there) and check in with a card from the resident pages"
    )
    print("   Ctrl-C 로 종료 / Ctrl-C to stop (data is kept for the next run)")
    print("=" * 78, flush=True)


def main(settings: Settings) -> int:
    """Entry of ``daon demo``: embedded servers around :func:`run_demo`."""
    with endpoints(settings, need_mqtt=True) as ep:
        assert ep.mqtt_url is not None
        print(f"  database {store.redact_url(ep.database_url)}, broker {ep.mqtt_url}", flush=True)
        asyncio.run(run_demo(settings, ep.database_url, ep.mqtt_url))
    return 0
