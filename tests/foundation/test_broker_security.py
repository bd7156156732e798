"""The shipped broker configuration with its accounts, ACL and a TLS listener, on a real
Mosquitto (issue 13.5): anonymous clients are refused, a gateway writes only under its own
topics and reads only its own commands and its centre's stations, and TLS works with a CA made
for the test (and not with another CA)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daon.brokerauth import API_USER, INGEST_USER, Accounts, BrokerAuth, acl_text
from daon.embedded import EmbeddedBroker, TlsFiles, find_mosquitto, free_port
from devices.errors import MqttConnectError, MqttError
from devices.mqttlink import Broker, MqttLink

NO_MOSQUITTO = pytest.mark.skipif(find_mosquitto() is None, reason="Mosquitto is not installed")

ROOT = "daon"
GATEWAYS = {"yaksu-gw-1": "yaksu", "pil-gw-1": "pil"}
KIOSKS = {"yaksu-station-1": "yaksu/yaksu-station-1", "pil-station-1": "pil/pil-station-1"}
ACCOUNTS = Accounts.generate([*GATEWAYS, *KIOSKS, INGEST_USER, API_USER])


def auth() -> BrokerAuth:
    return BrokerAuth(ACCOUNTS.password_file(), acl_text(ROOT, gateways=GATEWAYS, kiosks=KIOSKS))


@pytest.fixture(params=[pytest.param("mosquitto", marks=NO_MOSQUITTO), "fallback"])
def broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EmbeddedBroker]:
    """Mosquitto with the shipped configuration, and Daon's fallback broker with the same
    password file and ACL (machines without Mosquitto run the demo on it)."""
    running = EmbeddedBroker(tmp_path / "mqtt", free_port(), prefer=request.param, auth=auth())
    running.start()
    try:
        yield running
    finally:
        running.stop()


def login(port: int, user: str | None, password: str | None = None, **tls: object) -> Broker:
    if user is not None and password is None:
        password = ACCOUNTS.passwords[user]
    return Broker(host="127.0.0.1", port=port, username=user, password=password, **tls)  # type: ignore[arg-type]


async def received(link: MqttLink, wait_s: float = 1.5) -> list[tuple[str, bytes]]:
    """Every message that arrives within ``wait_s``."""
    out = []
    try:
        async with asyncio.timeout(wait_s):
            while True:
                message = await link.next_message()
                out.append((message.topic, message.payload))
    except TimeoutError:
        return out


def test_anonymous_and_wrong_passwords_are_refused(broker: EmbeddedBroker) -> None:
    async def go() -> None:
        for who in (login(broker.port, None), login(broker.port, "yaksu-gw-1", "guess")):
            with pytest.raises(MqttConnectError):
                async with MqttLink(who, client_id="intruder", timeout=5):
                    pass

    asyncio.run(go())


def test_a_gateway_publishes_only_under_its_own_topics(broker: EmbeddedBroker) -> None:
    """Before: allow_anonymous true, and any client could write any gateway's readings."""

    async def go() -> None:
        ingest = MqttLink(login(broker.port, INGEST_USER), client_id="ingest", clean_session=True)
        yaksu = MqttLink(login(broker.port, "yaksu-gw-1"), client_id="yaksu", clean_session=True)
        async with ingest, yaksu:
            await ingest.subscribe([(f"{ROOT}/gw/+/readings", 1)])
            await yaksu.publish(f"{ROOT}/gw/yaksu-gw-1/readings", b"own", qos=1)
            await yaksu.publish(f"{ROOT}/gw/pil-gw-1/readings", b"forged", qos=1)
            assert await received(ingest) == [(f"{ROOT}/gw/yaksu-gw-1/readings", b"own")]

    asyncio.run(go())


def test_check_ins_come_only_from_the_web_app_and_reach_only_their_gateway(
    broker: EmbeddedBroker,
) -> None:
    async def go() -> None:
        api = MqttLink(login(broker.port, API_USER), client_id="api", clean_session=True)
        yaksu = MqttLink(login(broker.port, "yaksu-gw-1"), client_id="yaksu", clean_session=True)
        pil = MqttLink(login(broker.port, "pil-gw-1"), client_id="pil", clean_session=True)
        async with api, yaksu, pil:
            await yaksu.subscribe([(f"{ROOT}/gw/yaksu-gw-1/checkin", 1)])
            # Mosquitto grants the subscription but never delivers what the ACL does not
            # allow; the fallback broker refuses the subscription outright
            with contextlib.suppress(MqttError):
                await pil.subscribe([(f"{ROOT}/gw/yaksu-gw-1/checkin", 1)])
            await api.publish(f"{ROOT}/gw/yaksu-gw-1/checkin", b"from-api", qos=1)
            await pil.publish(f"{ROOT}/gw/yaksu-gw-1/checkin", b"forged", qos=1)
            assert await received(yaksu) == [(f"{ROOT}/gw/yaksu-gw-1/checkin", b"from-api")]
            assert await received(pil, 0.5) == []  # another gateway's commands

    asyncio.run(go())


def test_a_gateway_reads_only_its_own_centres_stations(broker: EmbeddedBroker) -> None:
    async def go() -> None:
        yaksu = MqttLink(login(broker.port, "yaksu-gw-1"), client_id="yaksu", clean_session=True)
        kiosk_y = MqttLink(
            login(broker.port, "yaksu-station-1"), client_id="ky", clean_session=True
        )
        kiosk_p = MqttLink(login(broker.port, "pil-station-1"), client_id="kp", clean_session=True)
        async with yaksu, kiosk_y, kiosk_p:
            await yaksu.subscribe([(f"{ROOT}/st/yaksu/#", 1)])
            await kiosk_y.publish(f"{ROOT}/st/yaksu/yaksu-station-1/checkin", b"card", qos=1)
            # a kiosk cannot speak for another station, even of its own centre's gateway
            await kiosk_p.publish(f"{ROOT}/st/yaksu/yaksu-station-1/checkin", b"forged", qos=1)
            assert await received(yaksu) == [(f"{ROOT}/st/yaksu/yaksu-station-1/checkin", b"card")]

    asyncio.run(go())


# --- TLS with a CA made for the test ---------------------------------------------------------


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def make_server_cert(folder: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(csr)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
         "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@NO_MOSQUITTO
def test_the_tls_listener_with_a_ca_made_for_the_test(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = make_ca(pki, "daon-test-ca")
    other_ca = make_ca(pki, "someone-else")
    cert, key = make_server_cert(pki, ca)
    running = EmbeddedBroker(
        tmp_path / "mqtt",
        free_port(),
        prefer="mosquitto",
        auth=auth(),
        tls=TlsFiles(ca_file=ca[0], cert_file=cert, key_file=key),
    )
    running.start()
    try:
        assert running.url.startswith("mqtts://")

        async def go() -> None:
            trusted = login(running.port, "yaksu-gw-1", tls=True, ca_file=ca[0])
            async with MqttLink(trusted, client_id="yaksu", clean_session=True) as link:
                await link.publish(f"{ROOT}/gw/yaksu-gw-1/heartbeat", b"online", qos=1)
            stranger = login(running.port, "yaksu-gw-1", tls=True, ca_file=other_ca[0])
            with pytest.raises(MqttConnectError):  # a server our CA did not sign is refused
                async with MqttLink(stranger, client_id="yaksu2", clean_session=True, timeout=5):
                    pass
            plain = login(running.port, "yaksu-gw-1")  # no TLS: no connection
            with pytest.raises((MqttConnectError, MqttError)):
                async with MqttLink(plain, client_id="yaksu3", clean_session=True, timeout=5):
                    pass

        asyncio.run(go())
    finally:
        running.stop()


# --- the demo under the same ACL -------------------------------------------------------------


@pytest.mark.db
@pytest.mark.slow
async def test_the_demo_runs_under_the_shipped_acl(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make demo``'s broker enforces the accounts and ACL: every service logs in with its
    own account, and a kiosk's reading still travels kiosk → gateway → ingest → FHIR API.
    (On a free port instead of the demo's fixed one, so a running demo is not disturbed.)"""
    from daon import runtime
    from daon.demo import DemoReport, run_demo
    from daon.settings import Settings
    from tests.foundation.test_demo import _get

    monkeypatch.setattr(runtime, "DEMO_MQTT_PORT", free_port())
    settings = Settings(
        database_url=db_url, topic_root="daon", state_dir=tmp_path, api_port=free_port()
    )
    broker = runtime.demo_broker(settings)
    assert broker.auth is not None
    broker.start()
    stop = asyncio.Event()
    ready: asyncio.Future[DemoReport] = asyncio.get_running_loop().create_future()
    demo = asyncio.create_task(
        run_demo(settings, db_url, broker.url, stop=stop, on_ready=ready.set_result)
    )
    try:
        # nobody gets in without an account
        with pytest.raises(MqttConnectError):
            async with MqttLink(login(broker.port, None), client_id="anon", timeout=5):
                pass
        report = await asyncio.wait_for(ready, timeout=60)
        url = f"{report.url}fhir/Observation?_count=50&_sort=-date"
        subjects: list[str] = []
        async with asyncio.timeout(90):
            while not any(s.startswith("Patient/") for s in subjects):
                await asyncio.sleep(2)
                bundle = await asyncio.to_thread(_get, url, report.fhir_token)
                entries = bundle.get("entry") or []
                assert isinstance(entries, list)
                subjects = [e["resource"]["subject"]["reference"] for e in entries]
    finally:
        stop.set()
        await asyncio.wait_for(demo, timeout=60)
        broker.stop()
    # the demo's broker is Mosquitto where installed, else Daon's fallback broker (a normal
    # user on a bare machine): either one's configuration names the ACL and password files
    if broker.kind == "mosquitto":
        config = (tmp_path / "mqtt" / "mosquitto.conf").read_text()
        assert "allow_anonymous true" not in config
    else:
        config = (tmp_path / "mqtt" / "broker.toml").read_text()
        assert "password_file" in config
    assert "acl_file" in config
