"""``daon assess``: run the risk engine on one resident's history (specs/cli-assess.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from clinical.assess import assess
from clinical.errors import InvalidCaseError


def add_parser(sub: Any, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=(
            "위험 판정 엔진을 한 주민의 기록에 실행합니다 / Run the risk engine on one resident's "
            "history: flags, rejected readings and the visiting-programme group, exactly as the "
            "running service decides them. Exit 0 when evaluated, 2 when the input is not a "
            "valid case."
        ),
    )
    p.add_argument(
        "case",
        nargs="?",
        metavar="CASE.json",
        help="one case as a JSON file (with --jsonl: a file of one case per line)",
    )
    p.add_argument(
        "--jsonl",
        action="store_true",
        help="one case per line from the file or stdin; one result line each",
    )
    p.set_defaults(handler=run)


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _error(where: str, message: str) -> None:
    sys.stderr.write(f"daon assess: {where}{message}\n")


def run(args: argparse.Namespace) -> int:
    if args.jsonl:
        if args.case in (None, "-"):
            return _run_lines(sys.stdin)
        try:
            with open(args.case, encoding="utf-8") as fh:
                return _run_lines(fh)
        except OSError as exc:
            _error("", f"cannot read {args.case}: {exc.strerror}")
            return 2
    if args.case is None:
        _error("", "CASE.json is required (or use --jsonl to read stdin)")
        return 2
    try:
        if args.case == "-":
            text = sys.stdin.read()
        else:
            with open(args.case, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        _error("", f"cannot read {args.case}: {exc.strerror}")
        return 2
    try:
        case = json.loads(text)
    except json.JSONDecodeError as exc:
        _error("", f"(case): not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return 2
    try:
        _out(assess(case))
    except InvalidCaseError as exc:
        _error("", str(exc))
        return 2
    return 0


def _run_lines(stream: TextIO) -> int:
    """One result line per case line; a bad line is reported (naming line and field) and the
    rest are still evaluated; exit 2 if any line was invalid."""
    status = 0
    for lineno, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            _out(assess(case))
            sys.stdout.flush()
        except json.JSONDecodeError as exc:
            _error(f"line {lineno}: ", f"(case): not valid JSON: {exc.msg}")
            _out({"error": {"line": lineno, "field": "(case)", "message": exc.msg}})
            status = 2
        except InvalidCaseError as exc:
            _error(f"line {lineno}: ", str(exc))
            _out({"error": {"line": lineno, "field": exc.field, "message": exc.reason}})
            status = 2
    return status
