"""Check-in binding at stations and the registry for personal devices (issue 5, item 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.binding import Binder, CheckIn, Method
from gateway.config import DeviceConfig, UserSlot

T0 = datetime(2026, 3, 4, 1, 0, 0, tzinfo=UTC)
STATION = "yaksu-station-1"
CUFF = DeviceConfig(address="C4:7C:8D:6A:1B:22", model="UA-651BLE", id="cuff", station=STATION)
SCALE = DeviceConfig(
    address="D0:2B:20:00:00:01",
    model="BF720",
    id="home-scale",
    users=(UserSlot(1, "R0001234", 1234), UserSlot(2, "R0001235", 5678)),
)
OWNED = DeviceConfig(address="E8:2A:00:00:00:07", model="Accu-Chek Guide", id="m", owner="R0001236")


def binder(window_s: float = 600.0) -> Binder:
    return Binder(
        stations=(STATION,), window_s=window_s, cards={"0001234": "R0001234", "0001235": "R0001235"}
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_reading_inside_a_session_is_bound_to_the_checked_in_resident() -> None:
    b = binder()
    result = b.check_in(CheckIn(STATION, at(0), Method.CHECK_IN, card="0001234"))
    assert result.opened is not None
    d = b.bind(CUFF, measured_at=at(45), time_trusted=True)
    assert d.binding is not None
    assert (d.binding.resident, d.binding.method, d.binding.session) == (
        "R0001234",
        Method.CHECK_IN,
        result.opened.id,
    )


def test_two_residents_back_to_back() -> None:
    b = binder()
    first = b.check_in(CheckIn(STATION, at(0), Method.CHECK_IN, card="0001234"))
    second = b.check_in(CheckIn(STATION, at(120), Method.CHECK_IN, card="0001235"))
    assert second.closed is not None
    assert second.closed.closes_at == at(120)
    # The first resident's cuff memory arrives late, after the second check-in: it still
    # belongs to whoever was checked in when it was measured.
    late = b.bind(CUFF, measured_at=at(100), time_trusted=True)
    assert late.binding is not None
    assert late.binding.resident == "R0001234"
    assert first.opened is not None
    assert late.binding.session == first.opened.id
    now = b.bind(CUFF, measured_at=at(150), time_trusted=True)
    assert now.binding is not None
    assert now.binding.resident == "R0001235"


def test_reading_outside_any_session_is_unbound() -> None:
    b = binder(window_s=300)
    b.check_in(CheckIn(STATION, at(0), Method.STAFF, resident="R0001234"))
    before = b.bind(CUFF, measured_at=at(-1), time_trusted=True)
    after = b.bind(CUFF, measured_at=at(300), time_trusted=True)  # window end is exclusive
    assert before.binding is None
    assert after.binding is None
    assert "no check-in session" in after.reason


def test_untrusted_or_missing_time_is_never_guessed() -> None:
    b = binder()
    b.check_in(CheckIn(STATION, at(0), Method.STAFF, resident="R0001234"))
    assert b.bind(CUFF, measured_at=at(10), time_trusted=False).binding is None
    assert b.bind(CUFF, measured_at=None, time_trusted=True).binding is None


def test_unknown_card_ends_the_previous_session_and_opens_none() -> None:
    b = binder()
    b.check_in(CheckIn(STATION, at(0), Method.CHECK_IN, card="0001234"))
    result = b.check_in(CheckIn(STATION, at(60), Method.CHECK_IN, card="9999999"))
    assert result.opened is None
    assert result.closed is not None
    assert "not registered" in result.reason
    assert b.bind(CUFF, measured_at=at(90), time_trusted=True).binding is None


def test_check_out_and_repeated_check_in() -> None:
    b = binder()
    one = b.check_in(CheckIn(STATION, at(0), Method.STAFF, resident="R0001234"))
    again = b.check_in(CheckIn(STATION, at(0), Method.STAFF, resident="R0001234"))
    assert again.opened == one.opened
    assert again.closed is None
    b.check_out(STATION, at(30))
    assert b.bind(CUFF, measured_at=at(40), time_trusted=True).binding is None


def test_unknown_station_is_refused() -> None:
    result = binder().check_in(CheckIn("elsewhere", at(0), Method.STAFF, resident="R1"))
    assert result.opened is None
    assert "unknown station" in result.reason


def test_multi_user_scale_maps_slots_through_the_registry_only() -> None:
    b = binder()
    one = b.bind(SCALE, measured_at=at(0), time_trusted=True, user_index=1)
    assert one.binding is not None
    assert one.binding.resident == "R0001234"
    assert one.binding.method is Method.REGISTRY
    assert b.bind(SCALE, measured_at=at(0), time_trusted=True, user_index=3).binding is None
    assert b.bind(SCALE, measured_at=at(0), time_trusted=True, user_index=255).binding is None
    assert b.bind(SCALE, measured_at=at(0), time_trusted=True, user_index=None).binding is None


def test_a_station_device_ignores_its_user_slot() -> None:
    b = binder()
    # No session: the cuff's user 1 is not a person.
    assert b.bind(CUFF, measured_at=at(0), time_trusted=True, user_index=1).binding is None


def test_personal_single_user_device_binds_to_its_owner() -> None:
    d = binder().bind(OWNED, measured_at=None, time_trusted=False)
    assert d.binding is not None
    assert d.binding.resident == "R0001236"


def test_kiosk_message_with_its_own_check_in() -> None:
    b = binder()
    d = b.bind(CUFF, measured_at=None, time_trusted=False, card="0001235")
    assert d.binding is not None
    assert d.binding.resident == "R0001235"
    assert b.bind(CUFF, measured_at=None, time_trusted=False, card="42").binding is None


def test_unregistered_device() -> None:
    assert binder().bind(None, measured_at=at(0), time_trusted=True).binding is None


def test_unknown_card_does_not_end_a_session_the_station_screen_opened() -> None:
    """Issue 15.1: a resident checked in on the station screen (the API's command names them)
    kept measuring while a card the gateway does not know was shown at the same station; their
    readings went to the unbound queue. A stray card ends no named resident's session."""
    b = binder()
    screen = b.check_in(CheckIn(STATION, at(0), Method.STAFF, resident="R0001234"))
    stray = b.check_in(CheckIn(STATION, at(30), Method.CHECK_IN, card="9999999"))
    assert stray.opened is None
    assert stray.closed is None
    assert "stays open" in stray.reason
    for seconds in (40, 90, 200):  # blood pressure, glucose, weight
        d = b.bind(CUFF, measured_at=at(seconds), time_trusted=True)
        assert d.binding is not None
        assert screen.opened is not None
        assert (d.binding.resident, d.binding.session) == ("R0001234", screen.opened.id)
    # a registered resident checking in still takes the station over (back to back)
    b.check_in(CheckIn(STATION, at(300), Method.CHECK_IN, card="0001235"))
    after = b.bind(CUFF, measured_at=at(310), time_trusted=True)
    assert after.binding is not None
    assert after.binding.resident == "R0001235"


def test_a_late_check_in_never_shadows_a_later_one() -> None:
    """A check-in event that arrives after a newer one (delayed in flight) is placed by its own
    time: it ends where the newer session starts and the newer resident keeps their readings."""
    b = binder()
    newer = b.check_in(CheckIn(STATION, at(100), Method.STAFF, resident="R0001234"))
    late = b.check_in(CheckIn(STATION, at(90), Method.CHECK_IN, card="0001235"))
    assert late.opened is not None
    assert late.opened.closes_at == at(100)
    mine = b.bind(CUFF, measured_at=at(150), time_trusted=True)
    assert newer.opened is not None
    assert mine.binding is not None
    assert (mine.binding.resident, mine.binding.session) == ("R0001234", newer.opened.id)
    theirs = b.bind(CUFF, measured_at=at(95), time_trusted=True)
    assert theirs.binding is not None
    assert theirs.binding.resident == "R0001235"
    # the same late event delivered twice (QoS 1) changes nothing
    again = b.check_in(CheckIn(STATION, at(90), Method.CHECK_IN, card="0001235"))
    assert again.reason.startswith("check-in already open")
    assert len(b.sessions(STATION)) == 2
