"""The versioned rule set: every threshold, window, severity and recipient as data.

A :class:`RuleSet` is what the clinical lead signs off: its ``version`` string is stored on every
flag, so a later change of a threshold is traceable to the flags it raised. Rules read their
numbers from here and nowhere else. The values and their sources are those of
``reference/clinical-rules.md`` (section numbers in the comments); **OPERATIONAL** marks a choice
the reference made where no guideline gives a number (its §12 lists them for local sign-off).

To change a threshold, build a new rule set with :func:`dataclasses.replace` and a new version,
run ``bench/clinical.py`` against stored data (the §10.2.9 "simulation of threshold changes"),
and have it signed off before switching the runner to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from clinical.errors import RuleSetError
from clinical.flags import Recipient, Severity
from clinical.limits import QualityLimits

N = Recipient.NURSE
R = Recipient.REHAB
L = Recipient.LIAISON
P = Recipient.RESIDENT  # "patient-facing": the resident app


class Timing(StrEnum):
    """§0 evaluation model."""

    SINGLE = "single"  # fires when a qualifying reading (or event) arrives
    AGGREGATE = "aggregate"  # the state of a window ending at the evaluation time


class Closure(StrEnum):
    """How an open flag closes (§0, §10.2.5-6)."""

    STAFF = "staff"  # immediate flags close after staff document the follow-up
    HYSTERESIS = "hysteresis"  # closes when below threshold − margin for a full window
    AUTO = "auto"  # clears by itself when data say so (ADH-NO-DATA, BP-UNRELIABLE-HIGH)
    SUPERSEDE = "supersede"  # closed as superseded when newer data make its premise false


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule of the reference: identity, routing and wording. Thresholds live in
    :class:`Thresholds`; this is who hears about it and what they are asked to do."""

    id: str
    timing: Timing
    severity: Severity  # the usual severity; some rules raise it (e.g. WT-GAIN-RAPID with HF)
    recipients: tuple[Recipient, ...]
    inputs: frozenset[str]  # reading types whose new data can supersede the flag
    closure: Closure
    title_ko: str
    title_en: str
    action_ko: str
    action_en: str
    source: str
    escalation: tuple[Recipient, ...] = ()  # §0: liaison for critical welfare checks
    worsening_sys_mmhg: float | None = None  # §10.2.4: re-notify inside the cool-down when exceeded

    @property
    def clinical(self) -> bool:
        """Does the flag reach staff at all (i.e. is it more than a resident prompt)?"""
        return any(r is not Recipient.RESIDENT for r in self.recipients)


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True, slots=True)
class BpThresholds:
    """§3 blood pressure (mmHg): two crisis tiers (§11 #3), 140/90 office and 135/85 home (#1-2)."""

    crisis_sys: float = 180.0  # BP-CRISIS: SBP > 180 (ACC/AHA)
    crisis_dia: float = 120.0  # … or DBP > 120
    grade3_sys: float = 180.0  # BP-GRADE3: SBP ≥ 180 (ESH 2023)
    grade3_dia: float = 110.0  # … or DBP ≥ 110
    low_severe_sys: float = 80.0  # BP-LOW-SEVERE: SBP < 80 (OPERATIONAL)
    low_sys: float = 90.0  # hypotension < 90/60
    low_dia: float = 60.0
    low_sustained_days: int = 7  # BP-LOW-SUSTAINED window
    low_sustained_dates: int = 2
    symptom_window_min: float = 60.0  # BP-LOW-SYMPTOMATIC ± 60 min
    unreliable_wait_min: float = 30.0  # BP-UNRELIABLE-HIGH pending time
    ortho_standing_max_min: float = 3.0  # BP-ORTHO: standing reading ≤ 3 min after standing
    ortho_baseline_max_min: float = 10.0  # baseline ≤ 10 min before
    ortho_sys_drop: float = 20.0
    ortho_dia_drop: float = 10.0
    ortho_standing_sys: float = 90.0
    ortho_symptom_min: float = 15.0  # urgent if symptoms within 15 min
    home_sys: float = 135.0  # BP-HOME-HTN (KSH/ESH/ESC; AHA 2025 Table 7)
    home_dia: float = 85.0
    office_sys: float = 140.0  # BP-OFFICE-HTN (KSH; §11 #1)
    office_dia: float = 90.0
    home_clear_sys: float = 130.0  # §10.2.5 hysteresis: home < 130/82 for a full window
    home_clear_dia: float = 82.0
    office_clear_sys: float = 135.0  # office < 135/87
    office_clear_dia: float = 87.0
    target_high_risk_sys: float = 130.0  # BP-ABOVE-TARGET, KSH 2022 high-risk target < 130/80
    target_high_risk_dia: float = 80.0
    home_window_dates: int = 7  # §3.2 valid home mean
    home_latest_max_days: int = 14
    home_episode_gap_days: int = 14
    home_min_readings: int = 12
    home_min_dates: int = 3
    office_window_days: int = 90
    office_occasion_min: float = 60.0
    office_min_dates: int = 2
    irregular_window_days: int = 14  # BP-IRREG-PULSE
    irregular_min_count: int = 3
    recheck_sys: float = 140.0  # BP-RECHECK single reading ≥ 140 or ≥ 90
    recheck_dia: float = 90.0
    worsening_sys: float = 20.0  # §10.2.4: re-notify inside the cool-down when SBP ≥ 20 higher


@dataclass(frozen=True, slots=True)
class GlucoseTargets:
    """One row of ADA Table 13.1 (or the < 65 default of §4.2), mg/dL and %."""

    fasting_low: float
    fasting_high: float
    bedtime_low: float
    a1c_target: float | None  # None: no A1C flag ("avoid reliance on A1C")
    postprandial_rule: bool


@dataclass(frozen=True, slots=True)
class GlucoseThresholds:
    """§4 glucose and HbA1c (mg/dL, %)."""

    hypo_l1: float = 70.0  # < 70 (ADA §6; §11 #9)
    hypo_l2: float = 54.0  # < 54
    hyper_severe: float = 300.0  # 300-399 urgent (§11 #10)
    hyper_critical: float = 400.0  # ≥ 400 or HI critical
    hyper_symptomatic: float = 200.0  # ≥ 200 + DKA-type symptom within ± 24 h (§4.3 table)
    hyper_symptom_hours: float = 24.0
    fpg_dm: float = 126.0  # ADA/KDA
    fpg_ifg: float = 100.0
    random_dm: float = 200.0
    classic_symptom_days: float = 7.0  # GLU-RANDOM-DM-RANGE symptomatic form: ± 7 days
    diagnosis_window_days: int = 30
    diagnosis_min_dates: int = 2
    recurrent_window_days: int = 14  # GLU-HYPO-RECURRENT
    recurrent_min_dates: int = 2
    target_window_days: int = 14  # GLU-*-TARGET rules
    target_min_readings: int = 3
    target_min_dates: int = 3
    postprandial_high: float = 180.0
    fasting_clear_margin: float = 10.0  # §10.2.5: closes at ≤ upper target − 10
    a1c_dm: float = 6.5
    a1c_predm: float = 5.7
    a1c_window_days: int = 180
    a1c_predm_window_days: int = 365  # OPERATIONAL: "latest A1C" given no window
    older_age: int = 65
    # §4.2 default targets: < 65, and ADA Table 13.1 rows for ≥ 65 (7.5 % for healthy, §11 #8)
    under_65: GlucoseTargets = GlucoseTargets(80.0, 130.0, 80.0, 7.0, True)
    healthy: GlucoseTargets = GlucoseTargets(80.0, 130.0, 80.0, 7.5, True)
    complex: GlucoseTargets = GlucoseTargets(90.0, 150.0, 100.0, 8.0, False)
    very_complex: GlucoseTargets = GlucoseTargets(100.0, 180.0, 110.0, None, False)


@dataclass(frozen=True, slots=True)
class BodyThresholds:
    """§5 weight, obesity (KSSO 2022, §11 #11-12), body composition, sarcopenia (AWGS 2019, #14)."""

    bmi_under: float = 18.5
    bmi_preobese: float = 23.0
    bmi_obese: float = 25.0
    bmi_class2: float = 30.0
    bmi_class3: float = 35.0
    weight_window_days: int = 365
    waist_m: float = 90.0
    waist_f: float = 85.0
    waist_window_days: int = 365
    fat_m: float = 25.0  # BC-FAT-HIGH, display only
    fat_f: float = 35.0
    body_comp_window_days: int = 180
    gain_kg: float = 2.0  # WT-GAIN-RAPID: > 2.0 kg (ESC, §11 #16)
    gain_hours: float = 72.0
    loss_pct: float = 5.0  # WT-LOSS: > 5 %
    loss_clear_pct: float = 3.0  # §10.2.5: closes at < 3 %
    loss_current_days: int = 14
    loss_current_min: int = 2
    loss_baseline_from_days: int = 30
    loss_baseline_to_days: int = 183
    sarcopenia_min_age: int = 60
    function_window_days: int = 180
    grip_m: float = 28.0  # low grip: < 28 kg (M) / < 18 kg (F)
    grip_f: float = 18.0
    gait_speed: float = 1.0  # low performance: gait < 1.0 m/s …
    chair_stand_s: float = 12.0  # … or 5× chair stand ≥ 12 s …
    sppb_max_low: float = 9.0  # … or SPPB ≤ 9
    asmi_bia_m: float = 7.0
    asmi_bia_f: float = 5.7
    asmi_dxa_m: float = 7.0
    asmi_dxa_f: float = 5.4


@dataclass(frozen=True, slots=True)
class MetabolicThresholds:
    """§6 Korean-modified NCEP (§11 #13) and PHC mobile-healthcare eligibility."""

    window_days: int = 365
    bp_sys: float = 130.0
    bp_dia: float = 85.0
    fpg: float = 100.0
    tg: float = 150.0
    hdl_m: float = 40.0
    hdl_f: float = 50.0
    home_days: int = 7
    home_min_readings: int = 2
    metsyn_components: int = 3
    mh_age_min: int = 19
    mh_age_max: int = 64
    mh_disease_sys: float = 140.0  # disease range: outside the mobile-healthcare programme
    mh_disease_dia: float = 90.0
    mh_disease_fpg: float = 126.0
    mh_disease_tg: float = 200.0


@dataclass(frozen=True, slots=True)
class ScreeningThresholds:
    """§7 screening, frailty and falls."""

    bmd_osteo: float = -2.5  # T ≤ −2.5
    bmd_osteopenia: float = -1.0  # −2.5 < T < −1.0
    phq9_referral: float = 10.0  # §11 #17
    phq9_item9: float = 1.0
    frailty: float = 4.0  # Jung-gu PHC: 4-12 high-risk frail
    frailty_window_days: int = 365
    fall_window_days: int = 90


@dataclass(frozen=True, slots=True)
class AdherenceThresholds:
    """§8 (OPERATIONAL days) and clarification 8 (elapsed hours)."""

    no_data_hours: float = 168.0
    no_data_hours_alone: float = 72.0
    quality_rejects: int = 3
    quality_days: int = 7


@dataclass(frozen=True, slots=True)
class Hygiene:
    """§0 response times and §10.2 alert hygiene (cool-down OPERATIONAL, §12.4)."""

    critical_renotify_min: float = 15.0
    critical_escalate_lead_min: float = 30.0
    critical_escalate_liaison_min: float = 60.0
    ack_cooldown_h: float = 6.0
    # An aggregate flag that closed by itself and re-qualifies within this many days re-opens
    # as the same flag and task, silently (unless its severity rose): a value hovering at a
    # threshold must not become a new task every few days (OPERATIONAL; §10.2.3-5 spirit)
    reopen_quiet_days: float = 7.0
    critical_due_h: float = 1.0
    urgent_reminder_local_hour: int = 17  # "one reminder at end of day" (OPERATIONAL hour)
    urgent_due_local_hour: int = 18  # same working day
    routine_due_days: int = 7
    night_start_local_hour: int = 21  # quiet hours for routine/info (§10.2.7)
    night_end_local_hour: int = 8


@dataclass(frozen=True, slots=True)
class VisitingRules:
    """§9 visiting-programme classification (OPERATIONAL rendering, §12.1)."""

    acute_days: int = 30
    hysteresis_days: int = 30
    frailty: float = 4.0
    intensive_interval_days: int = 11  # ≥ 8 visits within 3 months (91 d / 8, rounded down)
    regular_interval_days: int = 91  # ≥ 1 visit every 3 months
    self_management_interval_days: int = 182  # ≥ 1 visit every 6 months
    reassess_days: int = 91


@dataclass(frozen=True, slots=True)
class Thresholds:
    quality: QualityLimits = field(default_factory=QualityLimits)
    bp: BpThresholds = field(default_factory=BpThresholds)
    glucose: GlucoseThresholds = field(default_factory=GlucoseThresholds)
    body: BodyThresholds = field(default_factory=BodyThresholds)
    metabolic: MetabolicThresholds = field(default_factory=MetabolicThresholds)
    screening: ScreeningThresholds = field(default_factory=ScreeningThresholds)
    adherence: AdherenceThresholds = field(default_factory=AdherenceThresholds)
    hygiene: Hygiene = field(default_factory=Hygiene)
    visiting: VisitingRules = field(default_factory=VisitingRules)


# --------------------------------------------------------------------------- vocabularies

#: Profile vocabularies (cli-assess.md): what counts as which diagnosis or drug class.
DIABETES = frozenset({"diabetes", "diabetes_t1", "diabetes_t2", "diabetes_other"})
HYPERTENSION = frozenset({"hypertension"})
DYSLIPIDEMIA = frozenset({"dyslipidemia", "dyslipidaemia", "hyperlipidemia"})
HF_OR_CKD = frozenset({"heart_failure", "ckd"})
#: KSH 2022 high-risk conditions for the < 130/80 target (organ damage, CVD, HF, CKD, lacunes).
BP_HIGH_RISK_CONDITIONS = frozenset(
    {
        "cvd",
        "coronary_artery_disease",
        "stroke",
        "heart_failure",
        "ckd",
        "lacunar_infarct",
        "organ_damage",
        "peripheral_artery_disease",
    }
)
#: §9 diagnosed chronic conditions that put a resident in the regular group.
CHRONIC_CONDITIONS = frozenset(
    HYPERTENSION
    | DIABETES
    | DYSLIPIDEMIA
    | {
        "obesity",
        "arthritis",
        "heart_failure",
        "ckd",
        "cvd",
        "coronary_artery_disease",
        "stroke",
        "osteoporosis",
        "dementia",
        "depression",
        "copd",
        "cancer",
    }
)
#: Clarification 8: any drug in the antihypertensive classes counts, whatever its indication.
ANTIHYPERTENSIVES = frozenset(
    {
        "antihypertensive",
        "diuretic",
        "thiazide",
        "loop_diuretic",
        "ace_inhibitor",
        "arb",
        "ccb",
        "beta_blocker",
        "alpha_blocker",
        "mra",
    }
)
GLUCOSE_LOWERING = frozenset(
    {"metformin", "sglt2i", "sulfonylurea", "insulin", "dpp4i", "glp1ra", "tzd", "glucose_lowering"}
)
HYPO_RISK_DRUGS = frozenset({"insulin", "sulfonylurea"})  # GLU-BEDTIME-BELOW-TARGET
TG_LOWERING = frozenset({"fibrate", "omega3", "tg_lowering"})
LIPID_LOWERING = frozenset({"statin", "ezetimibe", "lipid_lowering"}) | TG_LOWERING

#: Symptom classes (clarification 9 plus the hypotension and classic-diabetes symptoms).
HYPOTENSION_SYMPTOMS = frozenset(
    {
        "dizziness",
        "light_headedness",
        "lightheadedness",
        "syncope",
        "fainting",
        "fall",
        "blurred_vision",
    }
)
DKA_SYMPTOMS = frozenset(
    {"nausea", "vomiting", "abdominal_pain", "confusion", "rapid_breathing", "drowsiness"}
)
CLASSIC_DIABETES_SYMPTOMS = frozenset(
    {"polyuria", "polydipsia", "weight_loss", "unexplained_weight_loss"}
)
HYPO_L3_SYMPTOM = "hypoglycemia_needed_assistance"


# --------------------------------------------------------------------------- rules


def _r(
    id: str,
    timing: Timing,
    severity: Severity,
    recipients: tuple[Recipient, ...],
    inputs: str,
    closure: Closure,
    title: tuple[str, str],
    action: tuple[str, str],
    source: str,
    **extra: object,
) -> RuleSpec:
    return RuleSpec(
        id=id,
        timing=timing,
        severity=severity,
        recipients=recipients,
        inputs=frozenset(inputs.split()),
        closure=closure,
        title_ko=title[0],
        title_en=title[1],
        action_ko=action[0],
        action_en=action[1],
        source=source,
        **extra,  # type: ignore[arg-type]
    )


S, A = Timing.SINGLE, Timing.AGGREGATE
CRIT, URG, ROUT, INFO = Severity.CRITICAL, Severity.URGENT, Severity.ROUTINE, Severity.INFO
STAFF, HYST, AUTO, SUP = Closure.STAFF, Closure.HYSTERESIS, Closure.AUTO, Closure.SUPERSEDE

_RULES: tuple[RuleSpec, ...] = (
    # §2: a rejected reading (Q-01…Q-06) prompts the resident to measure again
    _r(
        "Q-REMEASURE",
        S,
        INFO,
        (P,),
        "bp glucose",
        STAFF,
        ("다시 측정해 주세요", "please measure again"),
        (
            "측정이 올바르지 않았습니다. 안정 후 다시 측정해 주세요",
            "the measurement was not valid; please rest and measure again",
        ),
        "§2 quality filters",
    ),
    # §3 blood pressure
    _r(
        "BP-CRISIS",
        S,
        CRIT,
        (N,),
        "bp",
        STAFF,
        ("고혈압 위기 수치", "hypertensive crisis reading"),
        (
            "1시간 내 전화로 증상 확인, 무증상이면 당일 의사 연락",
            "phone within 1 h to screen symptoms; without symptoms, same-day physician contact",
        ),
        "ACC/AHA 2017/2025",
        escalation=(L,),
        worsening_sys_mmhg=20.0,
    ),
    _r(
        "BP-GRADE3",
        S,
        URG,
        (N,),
        "bp",
        STAFF,
        ("3기 고혈압 수치", "grade 3 blood pressure reading"),
        (
            "당일 전화: 증상·복약 확인, 1주 내 의사 진료",
            "same-day call: symptoms and adherence; physician review within a week",
        ),
        "ESH 2023, ESC 2024",
        worsening_sys_mmhg=20.0,
    ),
    _r(
        "BP-UNRELIABLE-HIGH",
        S,
        URG,
        (N,),
        "bp",
        AUTO,
        ("측정 불량이지만 위기 수준 혈압", "unreliable reading at crisis level"),
        ("당일 전화: 올바른 재측정 요청", "same-day call; ask for a proper repeat"),
        "OPERATIONAL (safety net for Q-04)",
    ),
    _r(
        "BP-LOW-SEVERE",
        S,
        URG,
        (N,),
        "bp",
        STAFF,
        ("심한 저혈압 (수축기 < 80)", "severe low blood pressure (SBP < 80)"),
        (
            "누워서 재측정, 어지러우면 119; 간호사 당일 연락",
            "repeat lying down, call 119 if faint; nurse the same day",
        ),
        "OPERATIONAL; Healio",
    ),
    _r(
        "BP-LOW-SYMPTOMATIC",
        S,
        URG,
        (N,),
        "bp event",
        STAFF,
        ("증상 동반 저혈압", "symptomatic low blood pressure"),
        (
            "당일: 수분 섭취, 의사와 약물 검토",
            "same day: hydration, medication review with the physician",
        ),
        "hypotension definition",
    ),
    _r(
        "BP-LOW-SUSTAINED",
        A,
        ROUT,
        (N,),
        "bp",
        SUP,
        ("지속적 저혈압", "sustained low blood pressure"),
        ("과치료 가능성: 의사 검토", "possible over-treatment: physician review"),
        "OPERATIONAL; ADA/KSH elderly targets",
    ),
    _r(
        "BP-ORTHO",
        S,
        ROUT,
        (N, R),
        "bp event",
        STAFF,
        ("기립성 저혈압", "orthostatic hypotension"),
        (
            "약물 검토; 7일 내 재활 낙상위험 평가",
            "medication review; rehab fall-risk assessment within 7 days",
        ),
        "consensus OH definition; NICE NG136",
    ),
    _r(
        "BP-HOME-HTN",
        A,
        ROUT,
        (N,),
        "bp",
        HYST,
        ("가정혈압 평균 고혈압 범위", "home BP mean in the hypertensive range"),
        (
            "진단 없음: 고혈압 의심, 의사 확인 의뢰 / 진단 있음: 조절 불량, 복약 확인·의사 검토",
            "no diagnosis: suspected hypertension, refer for confirmation; known: uncontrolled, "
            "adherence check and physician review",
        ),
        "KSH, ESH, ESC, AHA 2025 Table 7",
    ),
    _r(
        "BP-OFFICE-HTN",
        A,
        ROUT,
        (N,),
        "bp",
        HYST,
        ("진료실 혈압 평균 고혈압 범위", "office BP mean in the hypertensive range"),
        (
            "7일 가정혈압 측정 요청 및/또는 의사 의뢰",
            "ask for the 7-day home protocol and/or physician referral",
        ),
        "ACC/AHA averaging; KSH threshold",
    ),
    _r(
        "BP-WHITECOAT",
        A,
        ROUT,
        (N,),
        "bp",
        SUP,
        ("백의 고혈압 양상", "white-coat pattern"),
        (
            "고혈압 경보 없음; 의사에게 알리고 가정혈압 주기적 측정",
            "no hypertension flag; tell the physician, keep periodic HBPM",
        ),
        "KSH 2018",
    ),
    _r(
        "BP-MASKED",
        A,
        ROUT,
        (N,),
        "bp",
        SUP,
        ("가면 고혈압 양상", "masked hypertension pattern"),
        ("가정혈압 고혈압과 같이 대응, 활동혈압 측정 제안", "as for BP-HOME-HTN; suggest ABPM"),
        "KSH 2018",
    ),
    _r(
        "BP-ISH",
        A,
        INFO,
        (N,),
        "bp",
        SUP,
        ("수축기 단독 고혈압", "isolated systolic hypertension"),
        ("고혈압 경보의 아형 표시", "subtype label on the hypertension flag"),
        "KSH 2018, ESH 2023",
    ),
    _r(
        "BP-ABOVE-TARGET",
        A,
        INFO,
        (N,),
        "bp",
        SUP,
        ("개인 혈압 목표 초과", "above the individual BP target"),
        ("다음 방문 시 상담", "discuss at the next visit"),
        "KSH 2022",
    ),
    _r(
        "BP-IRREG-PULSE",
        A,
        ROUT,
        (N,),
        "bp",
        SUP,
        ("불규칙 맥박 반복", "repeated irregular pulse"),
        ("맥박 촉진 / 심전도 의뢰 (심방세동 가능성)", "palpate pulse / ECG referral (possible AF)"),
        "BLE status; NICE NG136 1.1.2",
    ),
    _r(
        "BP-RECHECK",
        S,
        INFO,
        (P,),
        "bp",
        STAFF,
        ("혈압 재측정 안내", "blood pressure recheck prompt"),
        (
            "7일간 아침·저녁 2회씩 측정해 주세요",
            "please measure twice morning and evening for 7 days",
        ),
        "ESH/KSH protocol",
    ),
    # §4 glucose and HbA1c
    _r(
        "GLU-HYPO-L3",
        S,
        CRIT,
        (N,),
        "event",
        STAFF,
        ("중증 저혈당 (도움 필요)", "severe hypoglycaemia needing assistance"),
        (
            "1시간 내 안전 확인, 인슐린/설폰요소제 의사 검토",
            "within 1 h check the resident is safe; physician review of insulin/sulfonylurea",
        ),
        "ADA §6",
        escalation=(L,),
    ),
    _r(
        "GLU-HYPO-L2",
        S,
        CRIT,
        (N,),
        "glucose",
        STAFF,
        ("2단계 저혈당 (< 54 mg/dL)", "level 2 hypoglycaemia (< 54 mg/dL)"),
        (
            "당 15-20 g 섭취 후 15분 뒤 재측정; 간호사 1시간 내 연락",
            "15-20 g fast carbohydrate, recheck after 15 min; nurse within 1 h",
        ),
        "ADA §6",
        escalation=(L,),
    ),
    _r(
        "GLU-HYPO-L1",
        S,
        URG,
        (N,),
        "glucose",
        STAFF,
        ("1단계 저혈당 (54-69 mg/dL)", "level 1 hypoglycaemia (54-69 mg/dL)"),
        ("처치 후 재측정; 간호사 당일 연락", "treat and recheck; nurse the same day"),
        "ADA §6",
    ),
    _r(
        "GLU-HYPO-RECURRENT",
        A,
        URG,
        (N,),
        "glucose",
        SUP,
        ("반복 저혈당", "recurrent hypoglycaemia"),
        ("의사 약물 검토", "physician medication review"),
        "ADA §6; OPERATIONAL count",
    ),
    _r(
        "GLU-HYPER-CRITICAL",
        S,
        CRIT,
        (N,),
        "glucose",
        STAFF,
        ("매우 높은 혈당 (≥ 400 또는 HI)", "very high glucose (≥ 400 or HI)"),
        (
            "재측정, 수분, 가능하면 케톤; 구토·혼돈·호흡곤란 시 119; 간호사 1시간 내",
            "recheck, fluids, ketones if possible, 119 if vomiting/confused/breathless; "
            "nurse within 1 h",
        ),
        "patient action thresholds; HHS ≥ 600",
    ),
    _r(
        "GLU-HYPER-SEVERE",
        S,
        URG,
        (N,),
        "glucose",
        STAFF,
        ("높은 혈당 (300-399)", "high glucose (300-399)"),
        (
            "당일 전화: 증상, 아픈 날 수칙, 1-2시간 후 재측정",
            "same-day call: symptoms, sick-day rules, recheck in 1-2 h",
        ),
        "patient action thresholds",
    ),
    _r(
        "GLU-HYPER-SYMPTOMATIC",
        S,
        CRIT,
        (N,),
        "glucose event",
        STAFF,
        ("증상 동반 고혈당", "hyperglycaemia with DKA-type symptoms"),
        ("DKA/HHS 가능성: 긴급 의료 평가", "possible DKA/HHS: urgent medical assessment"),
        "2024 hyperglycaemic-crisis consensus",
    ),
    _r(
        "GLU-FPG-DM-RANGE",
        A,
        ROUT,
        (N,),
        "glucose",
        SUP,
        ("공복혈당 당뇨병 범위 (2일 이상)", "fasting glucose in the diabetes range on ≥ 2 days"),
        (
            "검사실 공복혈당/당화혈색소 의뢰 (혈당계는 진단 불가)",
            "referral for laboratory FPG/A1C (meters do not diagnose)",
        ),
        "ADA 2025/26, KDA 2023",
    ),
    _r(
        "GLU-FPG-IFG",
        A,
        ROUT,
        (N,),
        "glucose",
        SUP,
        ("공복혈당장애 범위", "impaired fasting glucose range"),
        (
            "생활습관·대사증후군 프로그램; 검사실 검사",
            "lifestyle / metabolic-syndrome programme; laboratory test",
        ),
        "ADA, KDA",
    ),
    _r(
        "GLU-RANDOM-DM-RANGE",
        A,
        ROUT,
        (N,),
        "glucose event",
        SUP,
        ("수시혈당 당뇨병 범위", "random glucose in the diabetes range"),
        (
            "검사실 검사; 증상 있으면 당일 의사 연계",
            "laboratory work-up; if symptomatic, same-day physician linkage",
        ),
        "ADA, KDA",
    ),
    _r(
        "GLU-FASTING-ABOVE-TARGET",
        A,
        ROUT,
        (N,),
        "glucose",
        HYST,
        ("공복혈당 목표 초과", "fasting glucose above target"),
        ("복약·식사 확인, 의사 검토", "adherence/diet review, physician review"),
        "ADA/KDA targets; ADA Table 13.1",
    ),
    _r(
        "GLU-FASTING-BELOW-TARGET",
        A,
        ROUT,
        (N,),
        "glucose",
        SUP,
        ("공복혈당 목표 미만", "fasting glucose below target"),
        ("과치료: 의사 감량 검토", "over-treatment: physician review for deintensification"),
        "ADA Table 13.1",
    ),
    _r(
        "GLU-PP-ABOVE-TARGET",
        A,
        ROUT,
        (N,),
        "glucose",
        SUP,
        ("식후혈당 목표 초과", "postprandial glucose above target"),
        ("식사·약물 검토", "diet/medication review"),
        "ADA targets",
    ),
    _r(
        "GLU-BEDTIME-BELOW-TARGET",
        A,
        ROUT,
        (N,),
        "glucose",
        SUP,
        ("취침 전 혈당 목표 미만", "bedtime glucose below target"),
        ("야간 저혈당 위험 검토", "nocturnal hypoglycaemia risk review"),
        "ADA Table 13.1",
    ),
    _r(
        "GLU-CONTEXT-MISSING",
        S,
        INFO,
        (P,),
        "glucose",
        STAFF,
        ("식사 정보 없는 혈당", "glucose without meal context"),
        ("공복/식전/식후를 표시해 주세요", "please tag fasting / before meal / after meal"),
        "BLE context",
    ),
    _r(
        "GLU-RECHECK",
        S,
        INFO,
        (P,),
        "glucose",
        STAFF,
        ("혈당 재검 안내", "glucose recheck prompt"),
        ("다른 날 공복혈당을 다시 측정해 주세요", "please repeat a fasting test on another day"),
        "ADA confirmation rule",
    ),
    _r(
        "A1C-DM-RANGE",
        A,
        ROUT,
        (N,),
        "a1c",
        SUP,
        ("당화혈색소 당뇨병 범위", "HbA1c in the diabetes range"),
        ("확인 검사 및 의사 의뢰", "confirm (second test) and physician referral"),
        "ADA, KDA",
    ),
    _r(
        "A1C-PREDM",
        A,
        ROUT,
        (N,),
        "a1c",
        SUP,
        ("당화혈색소 당뇨병 전단계", "HbA1c in the prediabetes range"),
        ("생활습관 프로그램", "lifestyle programme"),
        "ADA, KDA",
    ),
    _r(
        "A1C-ABOVE-TARGET",
        A,
        ROUT,
        (N,),
        "a1c",
        SUP,
        ("당화혈색소 목표 초과", "HbA1c above target"),
        ("의사 검토", "physician review"),
        "ADA §6/§13, KDA",
    ),
    # §5 weight, obesity, body composition, sarcopenia
    _r(
        "OB-BMI-UNDER",
        A,
        ROUT,
        (N, L),
        "weight",
        SUP,
        ("저체중", "underweight"),
        (
            "영양 검토; 담당관 식사·복지 연계",
            "nutrition review; liaison arranges meal/welfare linkage",
        ),
        "KSSO 2022",
    ),
    _r(
        "OB-BMI-PREOBESE",
        A,
        INFO,
        (N,),
        "weight",
        SUP,
        ("비만 전단계", "pre-obese"),
        ("생활습관 교육", "lifestyle education"),
        "KSSO 2022",
    ),
    _r(
        "OB-BMI-OBESE",
        A,
        ROUT,
        (N,),
        "weight",
        SUP,
        ("비만", "obese"),
        ("비만 관리 프로그램", "obesity programme"),
        "KSSO 2022",
    ),
    _r(
        "OB-WAIST",
        A,
        INFO,
        (N,),
        "waist",
        SUP,
        ("복부비만", "abdominal obesity"),
        ("대사증후군 평가에 반영", "feeds metabolic syndrome"),
        "KSSO 2022",
    ),
    _r(
        "BC-FAT-HIGH",
        A,
        INFO,
        (N,),
        "body_comp",
        SUP,
        ("체지방률 높음", "high body fat"),
        ("표시용", "display only"),
        "WHO-suggested",
    ),
    _r(
        "BC-LOW-MUSCLE-MASS",
        A,
        INFO,
        (R,),
        "body_comp function",
        SUP,
        ("근육량 적음 (근력·수행 정상)", "low muscle mass, normal strength and performance"),
        ("다음 평가 때 재측정", "recheck at the next assessment"),
        "AWGS 2019",
    ),
    _r(
        "WT-GAIN-RAPID",
        S,
        ROUT,
        (N,),
        "weight",
        STAFF,
        ("급격한 체중 증가 (72시간 내 > 2 kg)", "rapid weight gain (> 2 kg in 72 h)"),
        (
            "심부전: 당일 전화(부종·호흡곤란·이뇨제). 그 외: 다음 연락 때 부종·약 확인",
            "HF: same-day call (oedema, breathlessness, diuretic plan). "
            "Others: check at the next contact",
        ),
        "ESC HFA",
    ),
    _r(
        "WT-LOSS",
        A,
        ROUT,
        (N, L, R),
        "weight",
        HYST,
        ("의도하지 않은 체중 감소 (> 5 %)", "unintended weight loss (> 5 %)"),
        (
            "간호사: 식욕·치아·우울·약 원인 → 의사. 담당관: 식품·식사 지원. 재활: 근육 보존",
            "nurse: appetite, dentition, depression, causes → physician; liaison: meals; "
            "rehab: muscle preservation",
        ),
        "WikiDoc, GLIM",
    ),
    _r(
        "SAR-POSSIBLE",
        A,
        ROUT,
        (R,),
        "body_comp function",
        HYST,
        ("근감소증 의심", "possible sarcopenia"),
        (
            "7일 내 재활 평가; 다음 센터 방문 때 체성분 측정",
            "rehab assessment within 7 days; BIA at the next centre visit",
        ),
        "AWGS 2019; KWGS",
    ),
    _r(
        "SAR-CONFIRMED",
        A,
        ROUT,
        (R, N),
        "body_comp function",
        HYST,
        ("근감소증", "sarcopenia"),
        ("저항운동 프로그램, 단백질·영양 검토", "resistance exercise, protein/nutrition review"),
        "AWGS 2019",
    ),
    _r(
        "SAR-SEVERE",
        A,
        ROUT,
        (R, N),
        "body_comp function",
        HYST,
        ("중증 근감소증", "severe sarcopenia"),
        ("위와 같음 + 낙상 예방", "as above, plus falls prevention"),
        "AWGS 2019",
    ),
    # §6 metabolic syndrome
    _r(
        "MS-METSYN",
        A,
        ROUT,
        (N,),
        "waist bp glucose lipid",
        SUP,
        ("대사증후군", "metabolic syndrome"),
        ("대사증후군 관리 등록; 생활습관; 의사 확인", "enrol in metabolic-syndrome management"),
        "Korean-modified NCEP",
    ),
    _r(
        "MS-INCOMPLETE",
        A,
        INFO,
        (N,),
        "waist bp glucose lipid",
        SUP,
        ("대사증후군 평가 미완료", "metabolic-syndrome assessment incomplete"),
        ("빠진 측정(주로 지질) 요청", "request the missing measurements (usually lipids)"),
        "OPERATIONAL",
    ),
    _r(
        "MS-RISK",
        A,
        INFO,
        (N,),
        "waist bp glucose lipid",
        SUP,
        ("대사증후군 위험요인", "metabolic-syndrome risk factors"),
        ("위험요인 교육", "risk-factor education"),
        "Korean-modified NCEP",
    ),
    _r(
        "MH-ELIGIBLE",
        A,
        INFO,
        (L,),
        "waist bp glucose lipid",
        SUP,
        ("모바일 헬스케어 대상", "eligible for mobile healthcare"),
        ("모바일 헬스케어 참여 안내", "offer enrolment in mobile healthcare"),
        "Busan Jung-gu PHC criteria",
    ),
    # §7 screening, frailty, falls
    _r(
        "SCR-BMD-OSTEO",
        S,
        ROUT,
        (N, R),
        "screen",
        STAFF,
        ("골다공증 범위", "osteoporosis range"),
        ("의사 의뢰; 재활 낙상·뼈 건강 운동", "physician referral; rehab falls/bone exercise"),
        "WHO classification",
    ),
    _r(
        "SCR-BMD-OSTEOPENIA",
        S,
        INFO,
        (N,),
        "screen",
        STAFF,
        ("골감소증 범위", "osteopenia range"),
        ("교육", "education"),
        "WHO",
    ),
    _r(
        "SCR-COG",
        S,
        ROUT,
        (N, L),
        "screen",
        STAFF,
        ("인지선별 저하", "cognitive screening decline"),
        (
            "치매안심센터 진단검사; 담당관 가족·돌봄 지원",
            "dementia relief centre test; liaison support",
        ),
        "CIST",
    ),
    _r(
        "SCR-DEP",
        S,
        ROUT,
        (N, L),
        "screen",
        STAFF,
        ("우울 선별 양성 (PHQ-9 ≥ 10)", "depression screen positive (PHQ-9 ≥ 10)"),
        (
            "정신건강복지센터 의뢰; 담당관 사회적 고립 지원",
            "mental-health centre referral; liaison works on isolation",
        ),
        "PHQ-9 ≥ 10",
    ),
    _r(
        "SCR-DEP-SUICIDE",
        S,
        URG,
        (N, L),
        "screen",
        STAFF,
        ("자살 사고 문항 양성", "PHQ-9 item 9 positive"),
        (
            "당일 자살위험 평가, 위기상담/정신건강센터 연계",
            "same-day suicide-risk assessment with a crisis line / mental-health centre",
        ),
        "PHQ-9 item 9",
    ),
    _r(
        "FR-FRAIL",
        A,
        ROUT,
        (R, N),
        "screen",
        SUP,
        ("허약", "frail"),
        ("재활 운동 프로그램; 영양", "rehab exercise programme; nutrition"),
        "Jung-gu PHC data",
    ),
    _r(
        "FR-FALL",
        S,
        ROUT,
        (R, N),
        "event",
        STAFF,
        ("낙상", "fall"),
        ("7일 내 낙상위험 평가·가정 위험요소 점검", "fall-risk assessment and home-hazard check"),
        "OPERATIONAL",
    ),
    # §8 adherence
    _r(
        "ADH-NO-DATA",
        A,
        ROUT,
        (L,),
        "bp glucose weight",
        AUTO,
        ("측정 중단", "no recent home measurements"),
        (
            "전화 또는 방문: 기기 문제? 몸이 불편? 안부 확인",
            "phone or visit: device problem? unwell? welfare check",
        ),
        "Nightscout stale data",
    ),
    _r(
        "ADH-QUALITY",
        A,
        INFO,
        (L,),
        "bp glucose weight waist a1c",
        SUP,
        ("측정 불량 반복", "repeated rejected measurements"),
        ("다음 월 방문 때 기기 사용법 안내", "device/technique coaching at the next monthly visit"),
        "OPERATIONAL",
    ),
)

#: Rules that are "risk only" for the visiting group (§9 REGULAR excludes them).
RISK_ONLY = frozenset({"GLU-FPG-IFG", "A1C-PREDM", "BP-WHITECOAT", "ADH-NO-DATA", "ADH-QUALITY"})
#: §9 intensive criteria (b), (c) and the (d) companions of frailty.
INTENSIVE_BP = frozenset({"BP-HOME-HTN", "BP-OFFICE-HTN"})
INTENSIVE_DM = frozenset(
    {
        "GLU-FASTING-ABOVE-TARGET",
        "GLU-PP-ABOVE-TARGET",
        "A1C-ABOVE-TARGET",
        "GLU-FPG-DM-RANGE",
        "GLU-RANDOM-DM-RANGE",
        "A1C-DM-RANGE",
    }
)
INTENSIVE_FRAILTY = frozenset({"FR-FALL", "WT-LOSS", "SAR-CONFIRMED", "SAR-SEVERE", "BP-ORTHO"})
SELF_MANAGEMENT_FLAGS = frozenset(
    {
        "GLU-FPG-IFG",
        "A1C-PREDM",
        "BP-WHITECOAT",
        "OB-BMI-PREOBESE",
        "OB-WAIST",
        "MS-RISK",
        "MS-INCOMPLETE",
    }
)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A signed-off set of rules and thresholds. ``version`` goes on every flag."""

    version: str
    rules: Mapping[str, RuleSpec]
    thresholds: Thresholds
    signed_off_by: str | None = None

    def __post_init__(self) -> None:
        if not self.version:
            raise RuleSetError("a rule set needs a version")
        for key, spec in self.rules.items():
            if key != spec.id:
                raise RuleSetError(f"rule {spec.id} filed under {key}")
        known = set(self.rules)
        for group in (
            RISK_ONLY,
            INTENSIVE_BP,
            INTENSIVE_DM,
            INTENSIVE_FRAILTY,
            SELF_MANAGEMENT_FLAGS,
        ):
            missing = group - known
            if missing:
                raise RuleSetError(f"rule set {self.version} lacks {sorted(missing)}")

    def rule(self, rule_id: str) -> RuleSpec:
        try:
            return self.rules[rule_id]
        except KeyError:
            raise RuleSetError(f"unknown rule {rule_id} in rule set {self.version}") from None


def _build(version: str, rules: tuple[RuleSpec, ...], thresholds: Thresholds) -> RuleSet:
    table = {r.id: r for r in rules}
    if len(table) != len(rules):
        raise RuleSetError("duplicate rule ids")
    return RuleSet(version=version, rules=MappingProxyType(table), thresholds=thresholds)


#: The rule set of clinical-rules.md as written (November 2026 revision 1). Not yet signed off:
#: the OPERATIONAL items of §12 await the clinical lead.
RULESET_2026_11_1 = _build("2026.11-1", _RULES, Thresholds())
DEFAULT_RULESET = RULESET_2026_11_1
