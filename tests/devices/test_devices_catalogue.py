"""The device catalogue covers ble-profiles.md §8 and is consistent with the quirks table."""

from __future__ import annotations

import pytest

from devices.catalogue import CATALOGUE, find_model, match_advertisement, quirks_for
from devices.model import Kind
from devices.quirks import QUIRKS

# Every device named in ble-profiles.md §8's table, as (manufacturer, model) rows.
SECTION_8 = [
    ("i-SENS", "CareSens N Premier"),
    ("i-SENS", "CareSens N Plus BT"),
    ("i-SENS", "CareSens Dual"),
    ("Omron", "HEM-7155T"),
    ("Omron", "HEM-7142T2"),
    ("Omron", "HEM-7361T"),
    ("Omron", "EVOLV"),
    ("Omron", "BP5250"),
    ("Omron", "SC-150"),
    ("Omron", "HBF-702T"),
    ("A&D Medical", "UA-651BLE"),
    ("A&D Medical", "UA-651CNBLE"),
    ("A&D Medical", "UB-1100BLE"),
    ("A&D Medical", "UC-352BLE"),
    ("Roche", "Accu-Chek Guide"),
    ("Roche", "Accu-Chek Instant"),
    ("Roche", "Accu-Chek Aviva Connect"),
    ("Ascensia", "Contour Next One"),
    ("Ascensia", "Contour Plus One"),
    ("ForaCare", "TN'G Voice"),
    ("LifeScan", "OneTouch Verio Flex"),
    ("LifeScan", "OneTouch Select Plus Flex"),
    ("TaiDoc", "Diamond Mobile Mini DM30b"),
    ("Silvercrest", "SBM69"),
    ("Beurer", "BM59"),
    ("Beurer", "BM85"),
    ("Medisana", "BU 550"),
    ("Medisana", "BU 572"),
    ("Beurer", "BF600"),
    ("Beurer", "BF720"),
    ("Beurer", "BF850"),
    ("Sanitas", "SBF72"),
    ("Sanitas", "SBF73"),
    ("InBody", "H20N"),
    ("Xiaomi", "Mi Scale v1/v2 / MIBFS"),
    ("Medisana", "BS444"),
    ("Medisana", "BS440"),
    ("Microlife", "BP3GY1-2N"),
    ("iHealth", "BP5"),
    ("Allmedicus", "GlucoDr"),
    ("SD Biosensor", "SD CodeFree"),
    ("Osang Healthcare", "GluNEO"),
    ("InBody", "BPBIO"),
]


@pytest.mark.parametrize(("manufacturer", "model"), SECTION_8)
def test_every_section_8_device_is_catalogued(manufacturer: str, model: str) -> None:
    row = find_model(manufacturer, model)
    assert row is not None, f"{manufacturer} {model}"
    assert row.manufacturer == manufacturer


def test_vocabularies_and_quirk_names() -> None:
    for row in CATALOGUE:
        assert row.pairing in (None, "just_works", "passkey", "single_bond")
        assert row.clock in (None, "cts_write", "date_time_write", "vendor_command", "none")
        assert row.records in (None, "racp", "resend_all", "delete_after_transfer", "live_only")
        assert set(row.quirks) <= set(QUIRKS), row.label
        assert row.supported == (row.profile not in ("proprietary", "unverified")), row.label


def test_quirks_name_catalogued_models() -> None:
    labels = {row.label for row in CATALOGUE}
    for quirk in QUIRKS.values():
        assert set(quirk.models) <= labels, quirk.name
        for label in quirk.models:
            (row,) = [r for r in CATALOGUE if r.label == label]
            assert quirk.name in row.quirks


@pytest.mark.parametrize(
    ("name", "services", "label"),
    [
        ("BLESmart_00000398C47C8D6A1B22", [], "Omron BLESmart monitor"),
        ("BLEsmart_00000398C47C8D6A1B22", [], "Omron BLESmart monitor"),  # pairing mode
        ("A&D_UA-651BLE_6A1B22", ["1810"], "A&D Medical UA-651BLE"),
        ("A&D_UC-352BLE_01", [], "A&D Medical UC-352BLE"),
        ("CareSens 0A1B", ["1808"], "i-SENS CareSens (N Premier / N Plus BT / Dual)"),
        ("TNG VOICE 1234", [], "ForaCare TN'G Voice"),
        ("InBodyH20New", [], "InBody H20N"),
        ("SBM69", [], "Silvercrest SBM69"),
        # Xiaomi advertises the standard body-composition UUID with a vendor layout.
        ("MIBFS", ["0000181b-0000-1000-8000-00805f9b34fb"], "Xiaomi Mi Scale v1/v2 / MIBFS"),
        ("Unknown Cuff", ["0x1810"], "(generic) Blood Pressure Service device"),
        (None, ["1808"], "(generic) Glucose Service device"),
        (None, ["181D"], "(generic) Weight Scale Service device"),
    ],
)
def test_match_advertisement(name: str | None, services: list[str], label: str) -> None:
    row = match_advertisement(name, services)
    assert row is not None
    assert row.label == label


def test_xiaomi_is_not_decoded_as_standard() -> None:
    row = match_advertisement("MIBFS", ["181b"])
    assert row is not None
    assert not row.supported


def test_nothing_to_match() -> None:
    assert match_advertisement("Headphones", ["110b", "not-a-uuid"]) is None
    assert match_advertisement(None, []) is None


def test_find_model_from_device_information() -> None:
    row = find_model("OMRON HEALTHCARE", "HEM-7155T-EBK")  # colour suffix
    assert row is not None
    assert row.label == "Omron HEM-7155T"
    assert row.records == "delete_after_transfer"
    row = find_model(None, "TNG VOICE")  # Fora leaves the manufacturer empty
    assert row is not None
    assert row.quirks == ("fora_memory_full_2037",)
    assert find_model("Beurer", "BM850") is None  # not a BM85
    assert find_model("Acme", "BM85") is None
    assert find_model("Beurer", None) is None
    assert quirks_for("Beurer", "BM85") == ("beurer_bm85_byte_order", "map_zero_not_computed")
    assert quirks_for("i-SENS, Inc.", "CareSens Dual") == ("isens_month_13", "caresens_dual_ketone")
    assert quirks_for("Nobody", "Nothing") == ()


def test_the_catalogue_covers_every_profile_kind_we_decode() -> None:
    kinds = {row.kind for row in CATALOGUE if row.supported}
    assert {Kind.BLOOD_PRESSURE, Kind.GLUCOSE, Kind.BODY_WEIGHT, Kind.BODY_COMPOSITION} <= kinds
