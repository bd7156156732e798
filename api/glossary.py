"""One home for the Korean words staff and residents read (issue 15.2): rule names, worklist
headings, measurement parts and units, unbound and dead-letter reasons, audit terms, relative
times. Templates and messages take their words from here; tests/api/test_glossary.py fails
when a code the pages print has no Korean.

Korean comes first; English, where it helps staff, is the smaller second part after " / ".
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from clinical.staff import rule_title

SEOUL = ZoneInfo("Asia/Seoul")
HANGUL = re.compile(r"[\uac00-\ud7a3]")

#: Worklist sections (api.store.web_worklist.Category values): badge, Korean heading, English.
CATEGORIES: dict[str, tuple[str, str, str]] = {
    "critical": ("위급", "1시간 안에 연락", "Critical: contact within 1 hour"),
    "urgent": ("긴급", "오늘 안에 연락", "Urgent: today"),
    "routine": ("정기", "7일 안에 또는 다음 방문 때", "Routine: within 7 days or the next visit"),
    "no-data": ("측정 없음", "측정을 멈춘 주민", "No data: stopped measuring"),
    "device": ("기기 문제", "기기 점검이 필요한 주민", "Device problems"),
}

#: Parts of a measurement as devices and the wire name them (devices.model Component names).
COMPONENTS: dict[str, str] = {
    "systolic": "수축기 혈압",
    "diastolic": "이완기 혈압",
    "mean": "평균 동맥압",
    "pulse": "맥박",
    "glucose": "혈당",
    "weight": "체중",
    "height": "키",
    "bmi": "체질량지수",
    "body_fat": "체지방률",
    "fat_free_mass": "제지방량",
    "body_water_mass": "체수분량",
    "muscle_mass": "근육량",
    "impedance": "임피던스",
    "cuff": "커프 압력",
    "basal_metabolism": "기초대사량",
    "muscle_pct": "근육률",
    "soft_lean_mass": "근육량(연조직)",
    "temperature": "체온",
    "ketone": "케톤",
}

#: UCUM units as stored → as a Korean reader reads them.
UNITS: dict[str, str] = {
    "mm[Hg]": "mmHg",
    "/min": "회/분",
    "kg/m2": "kg/m²",
    "Ohm": "Ω",
    "mg/dL": "mg/dL",
    "mmol/L": "mmol/L",
    "kg": "kg",
    "cm": "cm",
    "%": "%",
    "Cel": "°C",
    "kJ": "kJ",
}

#: Why a reading waits in the unbound queue or became a dead letter (ingest.errors.Reason).
REASONS: dict[str, str] = {
    "no_binding": "체크인 없음 / no check-in",
    "implausible_time": "시각 이상 / impossible time",
    "unknown_user": "알 수 없는 사용자 / unknown user slot",
    "malformed_json": "읽을 수 없는 메시지 / not JSON",
    "unknown_schema": "모르는 형식 / unknown schema",
    "invalid_message": "잘못된 메시지 / invalid message",
    "unknown_gateway": "등록되지 않은 게이트웨이 / unknown gateway",
    "unknown_device": "등록되지 않은 기기 / unknown device",
    "unknown_resident": "등록되지 않은 주민 / unknown resident",
    "decode_error": "해석 오류 / decode error",
    "not_a_result": "측정 결과 아님 / not a result",
    "unsupported": "지원하지 않음 / unsupported",
    "impossible_value": "불가능한 값 / impossible value",
    "implausible_value": "믿기 어려운 값 / implausible value",
    "conflicting_duplicate": "값이 다른 중복 / conflicting duplicate",
    "gateway_dead_letter": "게이트웨이에서 처리 불가 / gateway dead letter",
    "foreign_centre": "다른 센터 소속 / another centre",
    "internal_error": "내부 오류 / internal error",
}

#: The audit trail's request kinds (AuditEvent.subtype) and v3 purposes of use.
AUDIT_SUBTYPES: dict[str, str] = {
    "read": "조회 / read",
    "search-type": "검색 / search",
    "create": "생성 / create",
    "update": "수정 / update",
    "delete": "삭제 / delete",
    "operation": "작업 / operation",
    "login": "로그인 / login",
    "check-in": "측정대 접수 / check-in",
    "denied": "거부 / denied",
    "notify": "알림 전송 / notify",
}
PURPOSES: dict[str, str] = {
    "TREAT": "진료 / treatment",
    "COC": "돌봄 연계 / coordination of care",
    "PATRQT": "주민 요청 / resident's request",
    "HOPERAT": "운영 / operations",
}


#: The centres' short Korean names, for station ids of the form ``<centre>-station-<n>``.
CENTRES: dict[str, str] = {"yaksu": "약수", "hwanghak": "황학", "pil": "필동"}
_STATION = re.compile(r"^([a-z]+)-station-(\d+)$")


_GATEWAY = re.compile(r"^([a-z]+)-gw-(\d+)$")

#: Kinds of device the registry takes (devices.model.Kind values).
DEVICE_KINDS: dict[str, str] = {
    "blood-pressure": "혈압계 / blood pressure monitor",
    "glucose": "혈당계 / glucose meter",
    "weight": "체중계 / scale",
    "body-composition": "체성분 분석기 / body composition analyser",
}


def device_kind(kind: str) -> str:
    return DEVICE_KINDS.get(kind, kind)


def gateway(gateway_id: str | None) -> str:
    """'pil-gw-1' → '필동 게이트웨이 1' (any other id as it is)."""
    if not gateway_id:
        return "—"
    found = _GATEWAY.match(gateway_id)
    if found is None or found.group(1) not in CENTRES:
        return gateway_id
    return f"{CENTRES[found.group(1)]} 게이트웨이 {found.group(2)}"


def station(station_id: str | None) -> str:
    """'yaksu-station-1' → '약수 1번 측정대' (any other id as it is)."""
    if not station_id:
        return "—"
    found = _STATION.match(station_id)
    if found is None or found.group(1) not in CENTRES:
        return station_id
    return f"{CENTRES[found.group(1)]} {found.group(2)}번 측정대"


#: What an audit line touched: FHIR resource types, pages and actions (audit_event.entity).
AUDIT_WORDS: dict[str, str] = {
    "AuditEvent": "감사 기록",
    "Consent": "동의",
    "DeadLetter": "처리 불가 메시지",
    "Device": "기기",
    "Flag": "알림",
    "Observation": "측정값",
    "Patient": "주민",
    "Practitioner": "직원",
    "Review": "검토",
    "RiskAssessment": "위험 평가",
    "Session": "로그인 세션",
    "Station": "측정대",
    "Subscription": "알림 구독",
    "Task": "할 일",
    "Unbound": "미배정 측정값",
    "User": "사용자",
    "Visit": "방문",
    "page": "화면",
}
_AUDIT_WORD = re.compile(r"^(page:|[A-Z][A-Za-z]+)")


def audit_entity(entities: str) -> str:
    """ "page:worklist, Patient" → "화면 (page:worklist), 주민 (Patient)": Korean first, the
    recorded term kept after it for whoever compares with the FHIR AuditEvent."""
    shown = []
    for part in (p.strip() for p in entities.split(",") if p.strip()):
        head = _AUDIT_WORD.match(part)
        word = AUDIT_WORDS.get(head.group(1).rstrip(":")) if head else None
        shown.append(f"{word} ({part})" if word else part)
    return ", ".join(shown)


def rule_name(rule_id: str) -> str:
    """A rule's Korean name (the rule set's title); the id itself stays a small label."""
    return rule_title(rule_id) or rule_id


def category(key: str) -> tuple[str, str, str]:
    return CATEGORIES.get(key, (key, key, key))


def unit(text: str | None) -> str:
    return UNITS.get(text or "", text or "")


def reason(code: str) -> str:
    return REASONS.get(code, code)


def audit_subtype(codes: str) -> str:
    """One request's kinds ("read, search-type") in Korean: "조회, 검색"."""
    parts = [c.strip() for c in codes.split(",") if c.strip()]
    return ", ".join(AUDIT_SUBTYPES.get(c, c).split(" / ")[0] for c in parts)


def purpose(code: str | None) -> str:
    return PURPOSES.get(code or "", code or "")


# "<code> <value>": a component code followed by its value (not "(weight)" of the kind text)
_WORDS = re.compile(
    r"(?<![(\w])(" + "|".join(sorted(COMPONENTS, key=len, reverse=True)) + r")(?= [^\s)])"
)
_UNITS = re.compile(r"(?<=\d )(mm\[Hg\]|/min|kg/m2|Ohm|Cel)(?![\w\]])")


def summary(text: str | None) -> str:
    """A stored reading summary ("body_fat 31.2 %, impedance 538 Ohm") in Korean words."""
    if not text:
        return "—"
    named = _WORDS.sub(lambda m: COMPONENTS[m.group(1)], text)
    return _UNITS.sub(lambda m: UNITS[m.group(1)], named)


_FRAGMENTS = (
    (re.compile(r"\b(\d+) present\b"), r"\1개 해당"),
    (re.compile(r"\b(\d+) absent\b"), r"\1개 해당 없음"),
    (re.compile(r"\b(\d+) unknown\b"), r"\1개 미확인"),
    (re.compile(r"\bclass (\d)\b"), r"\1단계"),
    (re.compile(r"^auto: resident prompted$"), "자동 종료: 주민에게 안내함 / resident prompted"),
)


def flag_text(text: str | None) -> str:
    """A flag's stored summary or close reason with its English fragments in Korean."""
    if not text:
        return ""
    for pattern, korean in _FRAGMENTS:
        text = pattern.sub(korean, text)
    return text


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """'방금', '3분 전', '2시간 전', '3일 전' (English second, smaller where shown)."""
    if value is None:
        return "기록 없음 / never"
    current = now or datetime.now(SEOUL)
    seconds = (current - value).total_seconds()
    if seconds < 60:
        return "방금 / just now"
    if seconds < 3600:
        minutes = int(seconds // 60)
        return f"{minutes}분 전 / {minutes} min ago"
    if seconds < 86400:
        hours = int(seconds // 3600)
        return f"{hours}시간 전 / {hours} h ago"
    days = int(seconds // 86400)
    return f"{days}일 전 / {days} d ago"
