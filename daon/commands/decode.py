"""``daon decode``: decode Bluetooth health characteristic values (specs/cli-decode.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from devices.decode import decode_value, dumps
from devices.errors import DecodeError, InvalidUuid, UnknownQuirk
from devices.quirks import QUIRKS
from devices.uuids import normalize_uuid

DESCRIPTION = """\
캡처한 특성 값을 해독합니다 (nRF Connect, btmon, 게이트웨이 로그).
Decode a characteristic value captured from a device and print what the service reads
from it, as one JSON object per line:
  {"uuid": "<128-bit>", "decoded": {...}}  or  {"uuid": "<128-bit>", "error": "<reason>"}

  daon decode UUID HEX          one value; exit 1 if the value is rejected
  daon decode --jsonl [FILE]    JSON lines {"uuid": ..., "hex": ...} from FILE or stdin;
                                exit 2 at the end if a line was not JSON or lacked uuid/hex

UUID: 2a35, 0x2A35 or 128-bit, any case. HEX: spaces and colons allowed, may be empty.
No vendor quirk applies unless named with --quirk (repeatable)."""


def add_parser(sub: Any, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("uuid", nargs="?", metavar="UUID", help="characteristic UUID")
    p.add_argument("hex", nargs="?", metavar="HEX", help="the ATT value as hex")
    p.add_argument(
        "--jsonl",
        nargs="?",
        const="-",
        metavar="FILE",
        help="read JSON lines from FILE (default: stdin)",
    )
    p.add_argument(
        "--quirk",
        action="append",
        default=[],
        metavar="NAME",
        choices=sorted(QUIRKS),
        help="apply a named vendor quirk (repeatable): " + ", ".join(sorted(QUIRKS)),
    )
    p.set_defaults(handler=run)


def _payload(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    return bytes.fromhex(cleaned)


def _uuid_label(text: str) -> str:
    try:
        return normalize_uuid(text)
    except InvalidUuid:
        return text.strip().lower()


def decode_line(uuid: str, hex_text: str, quirks: list[str]) -> tuple[dict[str, object], bool]:
    """(output object, accepted) for one UUID/HEX pair."""
    label = _uuid_label(uuid)
    try:
        data = _payload(hex_text)
    except ValueError:
        return {"uuid": label, "error": f"HEX {hex_text!r} is not hexadecimal bytes"}, False
    try:
        decoded = decode_value(uuid, data, quirks=quirks)
    except DecodeError as exc:
        return {"uuid": label, "error": str(exc)}, False
    return {"uuid": label, "decoded": decoded}, True


def _emit(out: TextIO, obj: dict[str, object]) -> None:
    out.write(dumps(obj) + "\n")
    out.flush()


def _run_jsonl(source: TextIO, quirks: list[str], out: TextIO) -> int:
    bad_lines = False
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            _emit(out, {"line": number, "error": f"not JSON: {exc.msg} at column {exc.colno}"})
            bad_lines = True
            continue
        if not isinstance(item, dict):
            _emit(out, {"line": number, "error": "not a JSON object with uuid and hex"})
            bad_lines = True
            continue
        uuid, hex_text = item.get("uuid"), item.get("hex")
        missing = [key for key, v in (("uuid", uuid), ("hex", hex_text)) if not isinstance(v, str)]
        if missing or not isinstance(uuid, str) or not isinstance(hex_text, str):
            _emit(out, {"line": number, "error": f"missing or non-string {', '.join(missing)}"})
            bad_lines = True
            continue
        result, _ = decode_line(uuid, hex_text, quirks)
        _emit(out, result)
    return 2 if bad_lines else 0


def run(args: argparse.Namespace) -> int:
    quirks: list[str] = list(args.quirk)
    out = sys.stdout
    if args.jsonl is not None:
        if args.uuid is not None or args.hex is not None:
            sys.stderr.write("daon decode: give either UUID HEX or --jsonl, not both\n")
            return 2
        if args.jsonl == "-":
            return _run_jsonl(sys.stdin, quirks, out)
        try:
            with open(args.jsonl, encoding="utf-8") as source:
                return _run_jsonl(source, quirks, out)
        except OSError as exc:
            sys.stderr.write(f"daon decode: cannot read {args.jsonl}: {exc.strerror}\n")
            return 2
    if args.uuid is None or args.hex is None:
        sys.stderr.write("daon decode: give UUID and HEX (HEX may be ''), or --jsonl [FILE]\n")
        return 2
    try:
        result, accepted = decode_line(args.uuid, args.hex, quirks)
    except UnknownQuirk as exc:  # pragma: no cover - argparse choices reject them first
        sys.stderr.write(f"daon decode: {exc}\n")
        return 2
    _emit(out, result)
    return 0 if accepted else 1
