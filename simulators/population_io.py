"""Summaries and files of a generated population (for ``daon simulate population``).

``save`` writes one file per table: ``.npz`` (numpy's own, exact dtypes, fast) or ``.csv``
(UTF-8, a header row, ISO 8601 UTC times ending in ``Z``), plus ``staff.json`` (nurses and
liaison officers) and ``meta.json`` (seed, period, row counts).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from simulators.population import NEIGHBOURHOODS, Population

Format = Literal["npz", "csv"]
TABLES: tuple[str, ...] = ("residents", "contacts", "bp", "glucose", "weight", "body_comp")
_CSV_CHUNK = 100_000


def _columns(table: Any) -> dict[str, npt.NDArray[Any]]:
    return {f.name: getattr(table, f.name) for f in dataclasses.fields(table)}


def summary(population: Population) -> list[str]:
    """Human-readable summary lines, Korean first with English."""
    r = population.residents
    per_nb = Counter(r.neighbourhood.tolist())
    benefit = Counter(r.benefit.tolist())
    lines = [
        f"합성 인구 synthetic population: seed {population.seed}, "
        f"{population.start.isoformat()} – {population.end.isoformat()} (Asia/Seoul)",
        f"주민 residents: {len(r):,}",
        "동별 per neighbourhood: "
        + ", ".join(f"{nb.name} {per_nb.get(nb.name, 0):,}" for nb in NEIGHBOURHOODS),
        f"기초수급 basic livelihood: {benefit['basic']:,}; "
        f"차상위 near-poor: {benefit['near_poor']:,}",
        f"65세 이상 aged 65+: {(r.age >= 65).mean():.1%}",
    ]
    for label, column in (
        ("고혈압 hypertension", r.hypertension),
        ("당뇨 diabetes", r.diabetes),
        ("비만 obesity (BMI ≥25)", r.obesity),
        ("이상지질혈증 dyslipidemia", r.dyslipidemia),
    ):
        lines.append(f"{label}: {column.mean():.1%}")
    lines += [
        f"방문간호사 visiting nurses: {len(population.nurses)}; "
        f"현장소통담당관 liaison officers: {len(population.liaisons)} "
        f"(담당 주민 residents covered: {(r.liaison != '').sum():,})",
        f"정보제공 동의 consent: {r.consent.mean():.1%}",
        f"가정용 기기 home devices: BP {r.home_bp.sum():,}, "
        f"glucose {r.home_glucose.sum():,}, scale {r.home_scale.sum():,}",
        f"측정값 readings: BP {len(population.bp):,}, glucose {len(population.glucose):,}, "
        f"weight {len(population.weight):,}, body composition {len(population.body_comp):,}",
    ]
    return lines


def _iso(t: npt.NDArray[np.datetime64]) -> npt.NDArray[np.str_]:
    text: npt.NDArray[np.str_] = np.char.add(np.datetime_as_string(t, unit="s"), "Z")
    return text


def _write_csv(path: Path, columns: dict[str, npt.NDArray[Any]]) -> None:
    names = list(columns)
    length = len(next(iter(columns.values())))
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for start in range(0, length, _CSV_CHUNK):
            chunk = []
            for name in names:
                values = columns[name][start : start + _CSV_CHUNK]
                if values.dtype.kind == "M":
                    values = _iso(values)
                elif values.dtype.kind == "b":
                    values = values.astype(np.int8)
                chunk.append(values.tolist())
            writer.writerows(zip(*chunk, strict=True))


def save(population: Population, directory: Path, fmt: Format = "npz") -> list[Path]:
    """Write the population under ``directory`` (created if needed); returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for table_name in TABLES:
        columns = _columns(getattr(population, table_name))
        if fmt == "npz":
            path = directory / f"{table_name}.npz"
            np.savez(path, allow_pickle=False, **columns)
        else:
            path = directory / f"{table_name}.csv"
            _write_csv(path, columns)
        written.append(path)
    staff = {
        "nurses": [dataclasses.asdict(n) for n in population.nurses],
        "liaisons": [dataclasses.asdict(o) for o in population.liaisons],
    }
    staff_path = directory / "staff.json"
    staff_path.write_text(json.dumps(staff, ensure_ascii=False, indent=1), encoding="utf-8")
    meta = {
        "seed": population.seed,
        "start": population.start.isoformat(),
        "end": population.end.isoformat(),
        "timezone_of_dates": "Asia/Seoul",
        "times": "UTC",
        "rows": {name: len(getattr(population, name)) for name in TABLES},
        "format": fmt,
        "synthetic": True,
    }
    meta_path = directory / "meta.json"
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return [*written, staff_path, meta_path]
