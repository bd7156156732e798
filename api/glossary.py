"""One home for the Korean words staff and residents read (issue 15.2): rule names, worklist
headings, measurement parts and units, unbound and dead-letter reasons, audit terms, relative
times, roles, task and flag states, priorities, codes, alert notices; and the sentences: the
station's explanations (EXPLAIN), the pages' notes (NOTES) and the messages after an action
(MESSAGES). Templates and messages take their words from here; tests/api/test_glossary.py fails
when a code the pages print has no Korean, and tests/api/test_korean_first.py when a page shows
text that is not Korean first.

Korean comes first; English, where it helps staff, is the smaller second part after " / ".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
_REQUEST = re.compile(r"^(GET|POST|PUT|DELETE|PATCH|HEAD) /")


def audit_entity(entities: str) -> str:
    """ "page:worklist, Patient" → "화면 (page:worklist), 주민 (Patient)": Korean first, the
    recorded term kept after it for whoever compares with the FHIR AuditEvent."""
    shown = []
    for part in (p.strip() for p in entities.split(",") if p.strip()):
        if _REQUEST.match(part):  # what a refused request asked for
            shown.append(f"요청 ({part})")
            continue
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


#: The detail fragments clinical.evaluation writes after a flag's title (its _PAIRS and
#: _DETAIL_FORMAT), in Korean: used on the Korean side of a stored summary only.
_FRAGMENTS = (
    (re.compile(r"\b(\d+) present\b"), r"\1개 해당"),
    (re.compile(r"\b(\d+) absent\b"), r"\1개 해당 없음"),
    (re.compile(r"\b(\d+) unknown\b"), r"\1개 미확인"),
    (re.compile(r"\bclass (\d)\b"), r"\1단계"),
    (re.compile(r"\boffice mean\b"), "진료실 평균"),
    (re.compile(r"\bmean\b"), "평균"),
    (re.compile(r"\bdrop\b"), "하강"),
    (re.compile(r"\bn=(\d+)"), r"\1회"),
    (re.compile(r"\b(\d+) days\b"), r"\1일"),
    (re.compile(r"\btarget\b"), "목표"),
    (re.compile(r"\bwaist\b"), "허리둘레"),
    (re.compile(r"\bbody fat\b"), "체지방률"),
    (re.compile(r"\bgrip\b"), "악력"),
    (re.compile(r"\bscore\b"), "점수"),
    (re.compile(r"\bitem 9 ="), "9번 문항 ="),
    (re.compile(r"\bT (-?\d)"), r"T점수 \1"),
    (re.compile(r"\b(\d+) h since the last reading\b"), r"마지막 측정 후 \1시간"),
    (re.compile(r"\b(\d+) rejected\b"), r"\1건 제외"),
)
_AUTO = {"auto: resident prompted": "자동 종료: 주민에게 안내함 / resident prompted"}
#: "(...)" right after Korean: the Korean title's details ("고혈압 의심 (mean 142/91 mmHg)").
_KOREAN_DETAILS = re.compile(r"(?<=[\uac00-\ud7a3]) \(([^()]*)\)")


def _details_in_korean(text: str) -> str:
    for pattern, korean in _FRAGMENTS:
        text = pattern.sub(korean, text)
    return text


def flag_text(text: str | None) -> str:
    """A flag's stored summary, task or close reason with the English fragments of its Korean
    side in Korean: "고혈압 의심 (mean 142.0/91.0 mmHg, n=14) / suspected hypertension (mean
    ...)" reads "고혈압 의심 (평균 142.0/91.0 mmHg, 14회) / suspected hypertension (mean ...)";
    a text with no English side ("1 present, 4 unknown") is translated whole."""
    if not text:
        return ""
    if text in _AUTO:
        return _AUTO[text]
    if " / " not in text:
        return _details_in_korean(text)
    return _KOREAN_DETAILS.sub(lambda m: f" ({_details_in_korean(m.group(1))})", text)


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


# --- labels the pages print: roles, task and flag states, priorities, codes -------------------

ROLE_LABELS: dict[str, str] = {
    "nurse": "방문간호사 / nurse",
    "therapist": "재활운동사 / therapist",
    "liaison": "현장소통담당관 / liaison officer",
    "station": "측정대 / station",
    "gateway": "게이트웨이 / gateway",
    "admin": "관리자 / admin",
}

TASK_ROLE_LABELS: dict[str, str] = {
    "nurse": "방문간호사 / nurse",
    "nurse_lead": "간호팀장 / nurse lead",
    "rehab": "재활운동사 / therapist",
    "liaison": "현장소통담당관 / liaison",
}

PRIORITY_LABELS: dict[str, str] = {
    "stat": "즉시 / stat",
    "asap": "최대한 빨리 / asap",
    "urgent": "긴급 / urgent",
    "routine": "정기 / routine",
}

TASK_STATE_LABELS: dict[str, str] = {
    "open": "열림 / open",
    "requested": "요청됨 / requested",
    "accepted": "수락 / accepted",
    "in-progress": "진행 중 / in progress",
    "on-hold": "보류 / on hold",
    "completed": "완료 / completed",
    "acknowledged": "확인됨 / acknowledged",
    "snoozed": "미룸 / snoozed",
    "escalated": "상향 / escalated",
    "resolved": "해결 / resolved",
    "superseded": "대체됨 / superseded",
    "cancelled": "취소 / cancelled",
}

SEVERITY_LABELS: dict[str, str] = {
    "critical": "위급 / critical",
    "urgent": "긴급 / urgent",
    "routine": "정기 / routine",
    "info": "참고 / info",
}

#: Agents of the audit trail that are not roles of an account.
AGENT_LABELS: dict[str, str] = {
    "subscription": "외부 알림 수신처 / subscription",
}

#: Korean-first labels for the codes staff see most (fhir-mapping-and-anchors.md §1.1).
CODE_LABELS: dict[str, str] = {
    "85354-9": "혈압 / Blood pressure",
    "8867-4": "맥박 / Pulse",
    "41653-7": "혈당 / Glucose",
    "14743-9": "혈당 / Glucose",
    "2339-0": "혈당 / Glucose",
    "41604-0": "공복혈당 / Fasting glucose",
    "29463-7": "체중 / Weight",
    "8302-2": "키 / Height",
    "39156-5": "체질량지수 / BMI",
    "41982-0": "체지방률 / Body fat",
    "73708-0": "체지방량 / Fat mass",
    "73964-9": "근육량 / Muscle mass",
    "73965-6": "근육률 / Muscle %",
    "101683-1": "체수분 / Body water",
    "8280-0": "허리둘레 / Waist",
    "56115-9": "허리둘레 / Waist",
    "4548-4": "당화혈색소 / HbA1c",
    "daon-grip": "악력 / Handgrip",
    "daon-gait-speed": "보행 속도 / Gait speed",
    "daon-chair-stand": "의자 일어서기 5회 / Chair stand",
}


#: What an alert card says happened (flag_event.notice; api.store.web_alerts).
ALERT_NOTICES: dict[str, str] = {
    "raised": "새 알림 / New alert",
    "reminder": "다시 알림: 아직 확인 안 됨 / Reminder: not yet acknowledged",
    "escalated_lead": "팀장 보고: 30분 미확인 / Escalated: 30 minutes unacknowledged",
    "escalated_liaison": "안부 확인 요청 / Welfare check requested",
    "severity_rose": "심각도 상승 / Severity rose",
    "reraised": "다시 발생 / Raised again",
    "worsened": "악화 / Worse than when acknowledged",
    "symptom": "새 증상 / New symptom reported",
    "resolved": "해결됨 / Resolved",
    "superseded": "대체됨 / Superseded",
    "reopened": "다시 열림 / Reopened",
    "remeasure": "다시 측정 안내 / Asked to measure again",
    "prompt": "주민 안내 / Resident prompted",
    "weekly_digest": "주간 요약 / Weekly digest",
}

#: The liaison officer's welfare-check alert: plain language, no values (README, alert chain).
WELFARE_CHECK = (
    "간호사가 주민과 연락이 닿지 않습니다. 지금 전화나 방문으로 안부를 확인해 주세요. "
    "응답이 없고 위급해 보이면 119에 신고하세요(119 안전신고 절차). / The nurse cannot reach "
    "this resident. Please phone or visit now. If there is no answer and you fear for them, "
    "call 119 (the 119 protocol)."
)


#: Error pages and FHIR OperationOutcomes (api.main): titles by status, and the texts.
ERRORS: dict[str, str] = {
    "400": "잘못된 요청 / Bad request",
    "401": "로그인 필요 / Login required",
    "403": "권한 없음 / Forbidden",
    "404": "없음 / Not found",
    "500": "오류 / Error",
    "503": "잠시 후 / Busy",
    "hidden": "권한이 없거나 찾을 수 없습니다 / forbidden or not found",
    "forbidden": "권한이 없습니다 / forbidden",
    "not-found": "찾을 수 없습니다 / not found",
    "no-page": "페이지가 없습니다 / no such page",
    "invalid": "잘못된 요청 / invalid request",
    "login": "로그인이 필요합니다 / authentication required (Bearer token or session)",
    "csrf.title": "다시 시도해 주세요 / Please try again",
    "csrf": "양식이 만료되었습니다. 페이지를 새로 고친 뒤 다시 보내 주세요. "
    "/ The form expired; reload the page and submit again.",
    "busy": "잠시 후 다시 시도해 주세요 / the service is busy, retry shortly",
    "database.title": "일시적 오류 / Unavailable",
    "database": "데이터베이스에 연결할 수 없습니다 / database unavailable",
    "internal": "서버 오류 / internal error (logged)",
}
#: Korean for the framework's own HTTP errors (the English detail follows it); 0: any other.
HTTP_KOREAN: dict[int, str] = {
    0: "요청을 처리할 수 없습니다",
    404: "찾을 수 없습니다",
    405: "지원하지 않는 방법입니다",
    406: "제공하지 않는 형식입니다",
    415: "지원하지 않는 본문 형식입니다",
}


#: The resident page's charts: titles, series, guideline bands and lines (api.routes.resident;
#: the values are clinical-rules.md's, named in api.charts).
CHART: dict[str, str] = {
    "bp": "혈압 / Blood pressure (mmHg)",
    "systolic": "수축기 / systolic",
    "diastolic": "이완기 / diastolic",
    "normal-systolic": "정상 수축기 90-120 / normal systolic (KSH)",
    "office-htn": "고혈압 140 / office hypertension",
    "home-htn": "가정 135 / home threshold",
    "diastolic-90": "이완기 90 / diastolic",
    "glucose": "혈당 / Glucose (mg/dL)",
    "glucose.series": "혈당 / glucose",
    "pre-meal": "식전 목표 80-130 / pre-meal target",
    "low": "저혈당 70 / low",
    "after-meals": "식후 180 / after meals",
    "weight": "체중 / Weight (kg)",
    "weight.series": "체중 / weight",
    "body": "체성분 / Body composition",
    "body-fat": "체지방률 % / body fat",
    "muscle": "근육량 kg / muscle",
    "fat-limit": "체지방 {limit}% (WHO 제안 / suggested)",
}
#: What a consent is for (access.Consent.purpose).
CONSENT_PURPOSES: dict[str, str] = {
    "liaison-sharing": "현장소통담당관 정보 제공 / share with the liaison officer",
    "care-coordination": "돌봄 연계 / care coordination",
}


# --- sentences: explanations, page notes and messages -------------------------------------------


@dataclass(frozen=True, slots=True)
class Said:
    """One sentence or label: the Korean, and the English that may follow it, smaller."""

    ko: str
    en: str = ""

    def __str__(self) -> str:
        return f"{self.ko} / {self.en}" if self.en else self.ko

    def __add__(self, other: Said) -> Said:
        """Two sentences one after the other, the Korean with the Korean."""
        return Said(f"{self.ko} {other.ko}", f"{self.en} {other.en}".strip())

    def format(self, **values: object) -> Said:
        return Said(self.ko.format(**values), self.en.format(**values))


_KEEP_IT_UP = Said("지금처럼 지내세요.", "Keep it up.")
_REST_CALL_119 = Said(
    "5분 동안 앉아 쉬신 뒤 다시 재 주세요. 가슴 통증, 숨참, 마비, 심한 두통이 있으면 바로 "
    "직원에게 알리거나 119에 전화하세요.",
    "Sit and rest 5 minutes, then measure again. If you have chest pain, breathlessness, "
    "weakness or a severe headache, tell staff now or call 119.",
)

#: What the station screen tells a resident about one reading (api.explain picks the sentence;
#: clinical-rules.md §0, §2 and the Korean bands it names). Plain sentences, Korean first.
EXPLAIN: dict[str, Said] = {
    "bp": Said("혈압", "Blood pressure"),
    "bp.crisis": Said("혈압이 매우 높습니다.", "Your blood pressure is very high."),
    "bp.crisis.next": _REST_CALL_119,
    "bp.very-high": Said("혈압이 많이 높습니다.", "Your blood pressure is high."),
    "bp.very-high.next": Said(
        "5분 쉬고 다시 재 주세요. 다시 재도 높으면 센터 간호사에게 오늘 알려 주세요.",
        "Rest 5 minutes and measure again; if it stays high, tell the centre nurse today.",
    ),
    "bp.very-low": Said("혈압이 많이 낮습니다.", "Your blood pressure is very low."),
    "bp.very-low.next": Said(
        "앉아서 쉬시고 바로 직원에게 알려 주세요.", "Sit down and tell staff now."
    ),
    "bp.low": Said("혈압이 낮은 편입니다.", "Your blood pressure is on the low side."),
    "bp.low.next": Said(
        "어지럽거나 기운이 없으면 직원에게 알려 주세요.", "If you feel dizzy or weak, tell staff."
    ),
    "bp.high": Said(
        "이번 측정은 고혈압 범위입니다. 한 번의 측정으로 판단하지 않습니다.",
        "This reading is in the high range; one reading does not decide anything.",
    ),
    "bp.high.next": Said(
        "5분 쉬고 한 번 더 재 주세요. 집에서 1주일 동안 아침·저녁으로 재면 정확합니다.",
        "Rest 5 minutes and measure once more. Measuring at home morning and evening for a "
        "week gives a reliable picture.",
    ),
    "bp.pre": Said("고혈압 전단계 범위입니다.", "In the pre-hypertension range."),
    "bp.pre.next": Said(
        "싱겁게 드시고 꾸준히 걸으세요. 다음에 오시면 또 재 주세요.",
        "Eat less salt, keep walking, and measure again on your next visit.",
    ),
    "bp.elevated": Said("주의혈압 범위입니다.", "In the elevated range."),
    "bp.elevated.next": Said(
        "생활습관을 지키시고 다음에도 재 주세요.",
        "Keep up healthy habits and measure again next time.",
    ),
    "bp.normal": Said("정상 혈압입니다.", "Normal blood pressure."),
    "bp.normal.next": _KEEP_IT_UP,
    "glucose": Said("혈당", "Blood sugar"),
    "glucose.very-low": Said("혈당이 매우 낮습니다.", "Your blood sugar is very low."),
    "glucose.very-low.next": Said(
        "지금 주스나 사탕(당 15~20g)을 드시고 직원에게 알려 주세요. 15분 뒤 다시 재요.",
        "Take juice or sweets (15-20 g sugar) now and tell staff; measure again in 15 min.",
    ),
    "glucose.low": Said("혈당이 낮습니다.", "Your blood sugar is low."),
    "glucose.low.next": Said(
        "주스나 사탕(당 15~20g)을 드시고 15분 뒤 다시 재 주세요.",
        "Take 15-20 g of sugar and measure again in 15 minutes.",
    ),
    "glucose.very-high": Said("혈당이 매우 높습니다.", "Your blood sugar is very high."),
    "glucose.very-high.next": Said(
        "바로 직원에게 알려 주세요. 토하거나, 숨이 차거나, 정신이 흐리면 119에 전화하세요.",
        "Tell staff now; call 119 if you vomit, are breathless or confused.",
    ),
    "glucose.high": Said("혈당이 많이 높습니다.", "Your blood sugar is high."),
    "glucose.high.next": Said(
        "물을 드시고 오늘 센터 간호사와 상의해 주세요.",
        "Drink water and talk to the centre nurse today.",
    ),
    "glucose.high-once": Said(
        "이번 측정은 높은 편입니다. 한 번으로는 판단하지 않습니다.",
        "This reading is high; one reading does not decide anything.",
    ),
    "glucose.high-once.next": Said(
        "다른 날 아침 공복(8시간 이상 금식)에 다시 재 주세요.",
        "Measure again on another day, fasting (8 hours without food).",
    ),
    "glucose.fasting-high": Said(
        "공복혈당이 조금 높은 편입니다.", "Fasting sugar is a little high."
    ),
    "glucose.fasting-high.next": Said(
        "식사 조절과 운동이 도움이 됩니다. 간호사와 상의해 보세요.",
        "Diet and exercise help; ask the nurse.",
    ),
    "glucose.ok": Said("혈당이 목표 범위에 있습니다.", "Blood sugar is in range."),
    "glucose.ok.next": _KEEP_IT_UP,
    "weight": Said("체중", "Weight"),
    "bmi.underweight": Said("저체중", "underweight"),
    "bmi.normal": Said("정상 체중", "normal weight"),
    "bmi.pre-obese": Said("비만 전단계", "pre-obese"),
    "bmi.obese": Said("비만", "obese"),
    "weight.bmi": Said("체질량지수(BMI) {bmi}: {band}", "BMI {bmi}: {band}"),
    "weight.bmi.next": Said(
        "고르게 드시고 꾸준히 움직이세요. 궁금한 점은 직원에게 물어보세요.",
        "Eat a balanced diet, keep moving, and ask staff if unsure.",
    ),
    "weight.recorded": Said("체중을 기록했습니다.", "Weight recorded."),
    "weight.recorded.next": Said(
        "키를 알려 주시면 체질량지수를 계산해 드립니다.", "Tell staff your height for a BMI."
    ),
    "pulse": Said("맥박", "Pulse"),
    "pulse.recorded": Said("맥박을 기록했습니다.", "Pulse recorded."),
    "body-fat": Said("체지방률", "Body fat"),
    "body-fat.recorded": Said(
        "체성분을 기록했습니다. 재활운동사가 함께 봅니다.",
        "Recorded; the rehabilitation therapist will review it with you.",
    ),
    "muscle": Said("근육량", "Muscle mass"),
    "muscle.recorded": Said("근육량을 기록했습니다.", "Muscle mass recorded."),
    "remeasure": Said(
        "이번 측정은 올바르게 되지 않았습니다.", "This measurement did not work properly."
    ),
    "remeasure.next": Said(
        "바른 자세로 앉아 5분 쉬신 뒤 다시 재 주세요.",
        "Sit upright, rest 5 minutes and measure again.",
    ),
    "attention-now": Said("지금 확인이 필요한 수치입니다.", "This reading needs attention now."),
    "critical.glucose-low.next": Said(
        "지금 주스나 사탕(당 15~20g)을 드시고 15분 뒤 다시 재 주세요. 어지럽거나 정신이 흐리면 "
        "119에 전화하세요.",
        "Take juice or sweets (15-20 g sugar) now and measure again in 15 minutes. If you "
        "feel faint or confused, call 119.",
    ),
    "critical.glucose-high.next": Said(
        "물을 드시고 1~2시간 뒤 다시 재 주세요. 토하거나, 숨이 차거나, 정신이 흐리면 바로 "
        "119에 전화하세요.",
        "Drink water and measure again in 1-2 hours. If you vomit, are breathless or "
        "confused, call 119 now.",
    ),
    "critical.bp-low.next": Said(
        "앉거나 누워서 쉬세요. 어지럽거나 쓰러질 것 같으면 바로 직원에게 알리거나 119에 "
        "전화하세요.",
        "Sit or lie down and rest. If you feel faint, tell staff now or call 119.",
    ),
    "critical.next": _REST_CALL_119,
    "told.now": Said(
        "담당 간호사에게 지금 알렸습니다. 곧 연락드립니다.",
        "Your nurse has been told and will call you.",
    ),
    "told.later": Said(
        "간호사는 {when} 이후에 연락드립니다. 그 전에 몸이 안 좋으면 119에 전화하세요.",
        "Your nurse will call after {when}; if you feel unwell before then, call 119.",
    ),
    "evaluated.high.next": Said(
        "5분 쉬고 다시 재 주세요. 몸이 안 좋으면 직원에게 알리거나 119에 전화하세요.",
        "Rest 5 minutes and measure again; if you feel unwell, tell staff or call 119.",
    ),
}


def explained(key: str, **values: object) -> str:
    """A station explanation as "Korean / English" (the screen draws the English smaller)."""
    found = EXPLAIN[key]
    return str(found.format(**values) if values else found)


#: Notes and instructions the pages print (api.ui's ``say``: Korean, then the English smaller).
NOTES: dict[str, Said] = {
    "liaison-visits.intro": Said(
        "정보 제공에 동의한 담당 주민을 매달 방문합니다. 요청된 일이 있는 주민이 먼저, 이번 "
        "달 아직 방문하지 않은 주민이 다음입니다. 건강 수치는 보이지 않습니다.",
        "Your consented residents for this month's visits: those with a request first, then "
        "those not yet visited this month. No health values.",
    ),
    "liaison.intro": Said(
        "정보 제공에 동의한 담당 주민만 보입니다. 건강 수치는 보이지 않습니다. 동의를 "
        "철회하면 바로 목록에서 빠집니다.",
        "Only your assigned residents who consented to share are listed, without any health "
        "values. A withdrawal removes them at once.",
    ),
    "registry.moving-in": Said(
        "전입일을 넣으면 1주일 안에 연락할 일이 생깁니다: 기초수급은 현장소통담당관 방문, 그 "
        "밖에는 보건지소 간호사의 건강 요구도 조사 전화.",
        "A moving-in date creates the contact task due a week later: benefit recipients a "
        "liaison visit, everyone else a health-branch survey call.",
    ),
    "resident.entries": Said(
        "기기가 재지 않는 값입니다. 저장하면 바로 위험 규칙으로 평가합니다.",
        "What devices do not measure; evaluated as soon as it is saved.",
    ),
    "search.none": Said(
        "찾지 못했습니다. 이름 일부(예: 하늘), 주민 번호(R로 시작), 카드 번호, 전화번호 뒷자리 "
        "4자리 이상을 입력해 보세요. 담당 범위 밖의 주민은 보이지 않습니다.",
        "Nobody found. Try part of a name, the resident id, the card number or at least the "
        "last 4 digits of a phone. Residents outside your scope are not shown.",
    ),
    "station.card-unknown": Said(
        "카드를 찾을 수 없습니다. 번호를 확인하고 다시 눌러 주세요.",
        "We could not find that card. Check the number and try again.",
    ),
    "station.idle": Said(
        "잠시 아무것도 누르지 않으면 화면이 저절로 지워집니다.",
        "The screen clears itself after a short while.",
    ),
    "station.locked": Said(
        "카드 입력이 잠시 멈췄습니다. 직원에게 말씀해 주세요.",
        "Card entry is paused at this station. Please ask staff.",
    ),
    "station.measure-now": Said(
        "이제 측정하세요. 결과가 나오면 여기에 바로 보입니다.",
        "Please measure now. Each result appears here by itself.",
    ),
    "station.more-results": Said(
        "다른 측정도 하시면 결과가 여기에 더 나옵니다. 다 하셨으면 ‘측정 끝’을 눌러 주세요.",
        "More results appear here as you measure. Press “Finish” when you are done.",
    ),
    "station.not-delivered": Said(
        "측정기에 접수가 전해지지 않았습니다. 직원에게 알려 주세요.",
        "The measuring devices were not told you checked in. Please tell staff.",
    ),
    "station.replaced-other": Said(
        "앞서 접수한 분의 측정은 끝났습니다. 그분은 다시 접수해 주세요.",
        "The person checked in before you has been signed off here; they can check in again.",
    ),
    "station.staff-exit": Said(
        "직원용: 측정대 로그아웃",
        "staff: sign the kiosk out",
    ),
    "station.tap-card": Said(
        "카드를 리더기에 대셔도 됩니다.",
        "You can also tap your card on the reader.",
    ),
    "stations.intro": Said(
        "모르는 카드 번호가 짧은 시간에 여러 번 입력되면 그 측정대의 카드 입력이 잠깁니다. "
        "측정대에 가서 상황을 확인한 뒤 잠금을 푸세요.",
        "After repeated unknown card numbers in a short time a station's card entry is locked. "
        "Check the station, then clear the lock.",
    ),
    "stations.none": Said(
        "잠긴 측정대가 없습니다.",
        "No station is locked.",
    ),
    "tokens.scope": Said(
        "토큰은 그 계정의 역할과 담당 범위만큼만 읽고 씁니다.",
        "A token reads and writes exactly what its account's role and scope allow.",
    ),
    "tokens.shown-once": Said(
        "지금 한 번만 보입니다. 복사해서 안전하게 전하세요.",
        "Shown once: copy it now and hand it over safely.",
    ),
    "unbound.intro": Said(
        "체크인 없이 측정되었거나 시각이 맞지 않는 측정값입니다. 주민에게 배정하거나 "
        "버리세요. 모든 결정은 기록되며 되돌릴 수 있습니다.",
        "Readings without a check-in or with an impossible time. Assign them to a resident or "
        "discard them; every decision is recorded and reversible.",
    ),
    "users.password-once": Said(
        '지금 한 번만 보입니다. 본인에게 전하고, 첫 로그인 뒤 "내 계정"에서 바꾸게 하세요.',
        'Shown once. Give it to the user; they change it under "My account" after signing in.',
    ),
    "dead-letters.intro": Said(
        "측정값이 되지 못한 메시지입니다. 원본은 그대로 보관됩니다. 없는 기기·게이트웨이·주민 "
        "때문이면 등록한 뒤 다시 처리하세요.",
        "Messages that could not become readings, kept as received. When a device, gateway or "
        "resident was unknown, register it, then replay.",
    ),
    "delivery.failing": Said(
        "연속 {error_after}회 실패하면 오류로 표시됩니다. 실패한 수신처는 다른 수신처의 전송을 "
        "막지 않고, 간격을 늘려 다시 시도합니다.",
        "A receiver is marked as failing after {error_after} consecutive failures; it is "
        "retried with growing intervals and never holds up other receivers.",
    ),
    "digest.intro": Said(
        "매주 첫 근무 시간에, 지난 한 주 동안 열려 있던 내 주민의 일상 관리 항목을 모아 "
        "보여 드립니다. 급하지 않은 항목이라 따로 알림을 보내지 않습니다.",
        "At the first staffed hour of each week: the routine items of your residents that were "
        "open during the week before. They are not urgent, so they never alert you on their own.",
    ),
    "digest.none": Said(
        "아직 받은 주간 요약이 없습니다.",
        "No weekly digest has reached you yet.",
    ),
    "delivery.ended": Said(
        "종료 시각이 지난 구독은 꺼지고, 아직 보내지 못한 알림은 보내지 않고 만료로 기록합니다.",
        "A subscription past its end is turned off; what was still pending for it is recorded "
        "as expired, never sent.",
    ),
}


def note(key: str, **values: object) -> Said:
    found = NOTES[key]
    return found.format(**values) if values else found


#: What a page says after an action (``?m=<key>``), by page: api.ui's ``okbox``.
MESSAGES: dict[str, Said] = {
    "account.password": Said("비밀번호를 바꿨습니다", "Password changed."),
    "dead-letters.discarded": Said("버렸습니다 (기록은 남음)", "Discarded (kept for the record)."),
    "dead-letters.replayed": Said(
        "다시 처리했습니다: 측정값 {stored}건, 미배정 {unbound}건",
        "Replayed: {stored} observations, {unbound} unbound.",
    ),
    "tokens.revoked": Said(
        "토큰을 폐기했습니다. 바로 막힙니다", "Token revoked; it stops working now."
    ),
    "liaison.task": Said("완료로 기록했습니다", "Marked done."),
    "liaison.undone": Said("되돌렸습니다", "Undone."),
    "stations.unlocked": Said("잠금을 풀었습니다", "Lock cleared."),
    "registry.imported": Said("새로 {new}명, 고침 {updated}명", "{new} new, {updated} updated."),
    "users.caseload": Said("담당 주민 {n}명을 배정했습니다", "{n} residents assigned."),
    "login.too-many": Said(
        "로그인 시도가 너무 많습니다. {when} 뒤에 다시 시도해 주세요.",
        "Too many attempts from here; try again in {seconds} s.",
    ),
    "login.expired": Said("양식이 만료되었습니다. 다시 입력해 주세요.", "Form expired."),
    "login.wrong": Said("아이디 또는 비밀번호가 맞지 않습니다.", "Wrong user name or password."),
    "login.service-account": Said("서비스 계정은 웹에 로그인할 수 없습니다.", "Service account."),
    "registry.resident-created": Said("주민을 등록했습니다", "Resident registered."),
    "registry.resident-updated": Said("주민 정보를 고쳤습니다", "Resident updated."),
    "registry.device": Said("기기를 등록했습니다", "Device registered."),
    "users.created": Said("사용자를 만들었습니다", "User created."),
    "users.updated": Said("저장했습니다", "Saved."),
    "users.activated": Said("다시 사용하게 했습니다", "Reactivated."),
    "users.deactivated": Said(
        "사용 중지했습니다. 로그인과 토큰이 바로 막힙니다",
        "Deactivated: sign-in and tokens stop now.",
    ),
    "users.reset": Said("비밀번호를 초기화했습니다", "Password reset."),
    "resident.acknowledged": Said("확인했습니다", "Acknowledged."),
    "resident.snoozed": Said("미뤘습니다", "Snoozed."),
    "resident.resolved": Said("해결로 기록했습니다", "Resolved."),
    "resident.reviewed": Said("검토를 기록했습니다", "Review recorded."),
    "resident.visit": Said("방문을 기록했습니다", "Visit recorded."),
    "resident.visit-cancelled": Said("방문 기록을 취소했습니다", "Visit cancelled."),
    "resident.consent": Said(
        "{name} 님의 동의를 기록했습니다 (오늘 안에 되돌릴 수 있음)",
        "Consent recorded (undo today).",
    ),
    "resident.withdrawn": Said(
        "{name} 님의 동의 철회를 기록했습니다. 즉시 적용됩니다 (오늘 안에 되돌릴 수 있음)",
        "Withdrawal recorded; effective now (undo today).",
    ),
    "resident.undone": Said("되돌렸습니다", "Undone."),
    "resident.checked-in": Said("측정대에 체크인했습니다", "Checked in at the station."),
    "resident.checkin-not-delivered": Said(
        "체크인은 기록했지만 게이트웨이에 전달되지 않았습니다",
        "Check-in recorded but not delivered to the gateway.",
    ),
    "resident.reading": Said("측정값을 저장했습니다", "Reading saved."),
    "resident.function-tests": Said("기능 검사를 저장했습니다", "Function tests saved."),
    "resident.reading-duplicate": Said("이미 저장된 측정값입니다", "Already stored (duplicate)."),
    "resident.entry": Said("저장하고 바로 평가했습니다", "Saved and evaluated."),
    "unbound.assigned": Said("배정했습니다", "Assigned."),
    "unbound.discarded": Said("버렸습니다 (되돌릴 수 있음)", "Discarded (reversible)."),
    "unbound.restored": Said("대기열로 되돌렸습니다", "Restored to the queue."),
    "worklist.acknowledged": Said("확인했습니다", "Acknowledged."),
    "worklist.snoozed": Said("미뤘습니다", "Snoozed."),
    "worklist.resolved": Said("해결로 기록했습니다", "Resolved."),
    "worklist.reviewed": Said("검토를 기록했습니다", "Review recorded."),
}


def message(page: str, key: str | None, **values: object) -> Said | None:
    """The message ``key`` of ``page``, or None for none or an unknown one."""
    found = MESSAGES.get(f"{page}.{key}") if key else None
    return found.format(**values) if found and values else found
