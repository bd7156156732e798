"""``daon fhir`` as specs/cli-fhir.md defines it."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from daon.cli import main
from ingest.fhir.encoding import loads, render, validate
from tests.ingest import payloads as p

MEASURED = datetime(2025, 3, 4, 9, 15, 0)


def spec_line(**changes: Any) -> dict[str, Any]:
    """The input line of cli-fhir.md, with a complete 0x2A35 value."""
    line: dict[str, Any] = {
        "values": [{"uuid": "2a35", "hex": p.bp(MEASURED)}],
        "device": {
            "address": "C4:7C:8D:6A:1B:22",
            "manufacturer": "A&D Medical",
            "model": "UA-651BLE",
            "serial": "5120034871",
            "calibration": "plasma",
        },
        "gateway": {"id": "yaksu-station-1"},
        "patient": "R0001234",
        "received_at": "2025-03-04T10:02:11+09:00",
        "clock": {"device": "2025-03-04T09:15:00", "gateway": "2025-03-04T09:21:00+09:00"},
    }
    line.update(changes)
    return line


def run(
    tmp_path: Path, lines: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = main(["fhir", "--jsonl", str(source)])
    return code, capsys.readouterr().out.splitlines()


def test_one_array_of_resources_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(tmp_path, [json.dumps(spec_line())], capsys)
    assert code == 0
    [line] = out
    resources = loads(line)
    codes = [r["code"]["coding"][0]["code"] for r in resources]
    # panel, pulse, status bits (0x0005), then the coincident timestamp: clocks differ by 6 min
    assert codes == ["150020", "149546", "8410608", "67975"]
    for resource in resources:
        validate(resource)
    panel = resources[0]
    assert panel["effectiveDateTime"] == "2025-03-04T09:21:00+09:00"
    assert panel["subject"] == {"reference": "Patient/R0001234"}
    assert panel["extension"][0]["valueReference"] == {"reference": "Device/phg-yaksu-station-1"}


def test_output_is_what_the_api_serves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, [line] = run(tmp_path, [json.dumps(spec_line())], capsys)
    for resource in loads(line):
        stored = render(resource)
        assert stored in line  # each element is the canonical text the store keeps


def test_without_a_patient_the_output_is_the_unbound_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = spec_line()
    del line["patient"]
    code, [out] = run(tmp_path, [json.dumps(line)], capsys)
    assert code == 0
    [record] = loads(out)
    assert record["unbound"] is True
    assert record["reason"] == "no_binding"
    assert record["kind"] == "blood-pressure"


def test_bad_lines_report_their_number_and_exit_2_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        "this is not JSON",
        json.dumps(spec_line(values=[{"uuid": "2a35", "hex": "16"}])),
        json.dumps(spec_line(gateway={})),
        json.dumps(spec_line()),
    ]
    code, out = run(tmp_path, lines, capsys)
    assert code == 2
    assert [loads(o).get("line") if o.startswith("{") else None for o in out] == [1, 2, 3, None]
    assert "decode_error" in loads(out[1])["error"]
    assert out[3].startswith("[")


def test_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(spec_line()) + "\n"))
    assert main(["fhir", "--jsonl"]) == 0
    assert capsys.readouterr().out.startswith('[{"resourceType":"Observation"')


def test_precision_as_the_device_sent_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = spec_line(values=[{"uuid": "2a1c", "hex": p.temperature()}])
    _, [out] = run(tmp_path, [json.dumps(line)], capsys)
    assert '"value":37.60' in out  # 3760 x 10^-2: 36.50 stays 36.50 (cli-fhir.md)
