"""``daon fhir --jsonl [FILE]``: the FHIR resources stored for readings (specs/cli-fhir.md)."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import Any, TextIO

from ingest.fhir.encoding import dumps
from ingest.preview import PreviewError, preview

DESCRIPTION = """\
측정 기록 한 줄마다 저장되는 FHIR R4 리소스를 보여 줍니다.
For each input line (one record: characteristic values, device, gateway, patient,
received_at, clock), print the FHIR R4 resources the service stores and serves for it, as one
JSON array per line. It runs ingest's own code path (decode → bind → transform) without the
database. A line that cannot be turned into resources prints {"line": N, "error": "..."} (what
ingest would dead-letter) and the run exits 2 at the end; without a patient the output is the
unbound-reading record the staff queue shows.

  daon fhir --jsonl [FILE]      JSON lines from FILE or stdin"""


def add_parser(sub: Any, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--jsonl",
        nargs="?",
        const="-",
        metavar="FILE",
        required=True,
        help="read JSON lines from FILE (default: stdin)",
    )
    p.set_defaults(handler=run)


def _emit(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def run_lines(source: TextIO, out: TextIO) -> int:
    failed = False
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            _emit(
                out, dumps({"line": number, "error": f"not JSON: {exc.msg} at column {exc.colno}"})
            )
            failed = True
            continue
        if not isinstance(item, dict):
            _emit(out, dumps({"line": number, "error": "not a JSON object"}))
            failed = True
            continue
        try:
            result = preview(item)
        except PreviewError as exc:
            _emit(out, dumps({"line": number, "error": str(exc)}))
            failed = True
            continue
        _emit(out, result.text)
    return 2 if failed else 0


def run(args: argparse.Namespace) -> int:
    if args.jsonl == "-":
        return run_lines(sys.stdin, sys.stdout)
    try:
        with open(args.jsonl, encoding="utf-8") as source:
            return run_lines(source, sys.stdout)
    except OSError as exc:
        sys.stderr.write(f"daon fhir: cannot read {args.jsonl}: {exc.strerror}\n")
        return 2
