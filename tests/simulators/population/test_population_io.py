"""Writing a population out, and ``daon simulate population``."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from daon.cli import main
from simulators.population import Population, generate
from simulators.population_io import save, summary

END = dt.date(2026, 3, 31)


@pytest.fixture(scope="module")
def small() -> Population:
    return generate(3, n_residents=300, days=14, end=END)


def test_npz_keeps_every_column_exactly(small: Population, tmp_path: Path) -> None:
    files = save(small, tmp_path, "npz")
    assert {p.name for p in files} >= {"residents.npz", "bp.npz", "staff.json", "meta.json"}
    with np.load(tmp_path / "bp.npz", allow_pickle=False) as bp:
        np.testing.assert_array_equal(bp["sys"], small.bp.sys)
        np.testing.assert_array_equal(bp["t"], small.bp.t)
        np.testing.assert_array_equal(bp["setting"], small.bp.setting)
    with np.load(tmp_path / "residents.npz", allow_pickle=False) as residents:
        np.testing.assert_array_equal(residents["card_number"], small.residents.card_number)
    meta = json.loads((tmp_path / "meta.json").read_text(encoding="utf-8"))
    assert meta["rows"]["bp"] == len(small.bp)
    assert meta["synthetic"] is True
    staff = json.loads((tmp_path / "staff.json").read_text(encoding="utf-8"))
    assert len(staff["nurses"]) == 12


def test_csv_has_a_header_and_one_row_per_reading(small: Population, tmp_path: Path) -> None:
    save(small, tmp_path, "csv")
    with (tmp_path / "glucose.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["resident", "t", "mg_dl", "meal"]
    assert len(rows) - 1 == len(small.glucose)
    first = rows[1]
    assert first[1].endswith("Z")
    assert dt.datetime.fromisoformat(first[1].replace("Z", "+00:00")).tzinfo is not None
    assert int(first[2]) == int(small.glucose.mg_dl[0])
    with (tmp_path / "residents.csv").open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:4] == ["id", "name", "neighbourhood", "age"]


def test_summary_is_bilingual(small: Population) -> None:
    lines = summary(small)
    assert lines[1] == "주민 residents: 300"
    assert any(line.startswith("고혈압 hypertension:") for line in lines)


def test_cli_population_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        [
            "simulate",
            "population",
            "--residents",
            "200",
            "--days",
            "7",
            "--end",
            "2026-03-31",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["residents"] == 200
    assert result["start"] == "2026-03-25"
    assert (tmp_path / "weight.npz").exists()


def test_cli_population_rejects_zero_residents(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "population", "--residents", "0"]) == 2
    assert "n_residents" in capsys.readouterr().err
