"""``daon decode`` against specs/cli-decode.md: output lines, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daon.cli import main

BPM = "00002a35-0000-1000-8000-00805f9b34fb"
VIRTUAL_CUFF_1 = "0e 80 00 52 00 61 00 e8 07 05 0e 07 1e 00 48 00 01"  # virtual-bluez.md reading 1


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, object]]]:
    code = main(["decode", *argv])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return code, lines


def test_one_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, [line] = run(capsys, "0x2A35", VIRTUAL_CUFF_1)
    assert code == 0
    assert line["uuid"] == BPM
    decoded = line["decoded"]
    assert isinstance(decoded, dict)
    assert (decoded["systolic"], decoded["diastolic"], decoded["map"]) == (128, 82, 97)
    assert decoded["timestamp"] == "2024-05-14T07:30:00"


def test_colons_and_128_bit_uuid(capsys: pytest.CaptureFixture[str]) -> None:
    code, [line] = run(capsys, BPM.upper(), "00:78:00:52:00:61:00")
    assert code == 0
    assert line["decoded"]["systolic"] == 120  # type: ignore[index]


@pytest.mark.parametrize(
    ("uuid", "hex_text"),
    [
        ("2a35", "0102030405"),
        ("2a19", ""),
        ("2a19", "65"),
        ("2a35", "xyz"),
        ("2a99", "00"),
        ("zz", "00"),
    ],
)
def test_rejected_value_is_an_error_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], uuid: str, hex_text: str
) -> None:
    code, [line] = run(capsys, uuid, hex_text)
    assert code == 1
    assert set(line) == {"uuid", "error"}
    assert isinstance(line["error"], str)
    assert line["error"]


def test_precision_is_printed_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    main(["decode", "2a1c", "06B00E00FEDC070C050B321B04"])
    assert '"temperature": 37.60' in capsys.readouterr().out


def test_quirk_option(capsys: pytest.CaptureFixture[str]) -> None:
    beurer = bytes([86, 106, 0, 71, 0, 0, 0, 234, 7, 8, 11, 18, 31, 0, 0, 63, 0, 0, 0]).hex()
    code, [line] = run(
        capsys,
        "2a35",
        beurer,
        "--quirk",
        "beurer_bm85_byte_order",
        "--quirk",
        "map_zero_not_computed",
    )
    assert code == 0
    decoded = line["decoded"]
    assert isinstance(decoded, dict)
    assert (decoded["pulse_rate"], decoded["user_id"], decoded["map"]) == (63, 0, None)


def test_unknown_quirk_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["decode", "2a35", VIRTUAL_CUFF_1, "--quirk", "nope"])
    assert info.value.code == 2


def test_jsonl_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "values.jsonl"
    source.write_text(
        "\n".join(
            [
                json.dumps({"uuid": "2a19", "hex": "64"}),
                json.dumps({"uuid": "2a19", "hex": "65"}),
                json.dumps({"uuid": "2a52", "hex": "06 00 01 06"}),
            ]
        )
        + "\n"
    )
    code, lines = run(capsys, "--jsonl", str(source))
    assert code == 0  # rejected values are reported per line
    assert lines[0]["decoded"] == {"battery_level_pct": 100}
    assert "error" in lines[1]
    assert lines[2]["decoded"]["response_name"] == "no_records_found"  # type: ignore[index]


def test_jsonl_bad_lines_exit_2_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "values.jsonl"
    source.write_text(
        '{"uuid": "2a19", "hex": "64"}\nnot json\n{"uuid": "2a19"}\n[1]\n'
        '{"uuid": "2a19", "hex": "00"}\n'
    )
    code, lines = run(capsys, "--jsonl", str(source))
    assert code == 2
    assert [line.get("line") for line in lines] == [None, 2, 3, 4, None]
    assert lines[-1]["decoded"] == {"battery_level_pct": 0}  # the run went on after bad lines


def test_jsonl_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO('{"uuid": "2a0f", "hex": "2400"}\n'))
    code, [line] = run(capsys, "--jsonl")
    assert code == 0
    assert line["decoded"] == {
        "time_zone_quarter_hours": 36,
        "utc_offset_min": 540,
        "dst_offset_code": 0,
    }


def test_missing_arguments_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decode", "2a35"]) == 2
    assert main(["decode", "--jsonl", str(tmp_path / "absent.jsonl")]) == 2
    assert main(["decode", "2a35", "00", "--jsonl", "x"]) == 2


def test_entry_point_subprocess() -> None:
    daon = Path(sys.executable).with_name("daon")
    result = subprocess.run(
        [str(daon), "decode", "2a9d", "00 B0 36"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["decoded"]["weight_kg"] == 70  # ble-profiles.md §5.1: B0 36 = 70.00 kg
