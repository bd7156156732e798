"""The Observation codes the risk engine reads, and what each one is (one home for the clinical
runner, which turns stored Observations into engine readings, and :mod:`clinical.prescreen`,
which ingest uses to put possibly critical readings first).

Devices: BP panel 85354-9 with pulse 8867-4, glucose 41653-7/14743-9/41604-0/14770-2/2339-0/
15074-8, weight 29463-7, body fat 41982-0. Entries staff make through the api: LOINC where one
exists (HbA1c 4548-4 or IFCC 59261-8, TG 2571-8, HDL 2085-9, waist 8280-0/56115-9, PHQ-9
44261-6 and item 9 44260-8, BMD T-score 38263-0/38267-1) and local codes ``daon-*`` otherwise
(:data:`LOCAL_CODES`). Pure constants.
"""

from __future__ import annotations

BP_PANEL, SYSTOLIC, DIASTOLIC, PULSE = "85354-9", "8480-6", "8462-4", "8867-4"
GLUCOSE = {
    "41653-7": False,
    "14743-9": False,
    "2339-0": False,
    "15074-8": False,
    "41604-0": True,
    "14770-2": True,
}  # code → fasting by code
WEIGHT, BODY_FAT = "29463-7", "41982-0"
WAIST = ("8280-0", "56115-9")
A1C_NGSP, A1C_IFCC = "4548-4", "59261-8"
TG, HDL = "2571-8", "2085-9"
PHQ9_TOTAL, PHQ9_ITEM9 = "44261-6", "44260-8"
BMD_T = ("38263-0", "38267-1")
LOCAL_CODES = {
    "asm": "daon-asm",  # appendicular skeletal muscle mass, kg (context.method BIA/DXA)
    "grip": "daon-grip",  # handgrip, kg (best of trials)
    "gait": "daon-gait-speed",  # 6 m gait speed, m/s
    "chair": "daon-chair-stand",  # 5× chair stand, s
    "sppb": "daon-sppb",
    "cist": "daon-cist",  # value = score; context.result = normal | decline
    "frailty": "daon-frailty-kr",
    "symptom": "daon-symptom",  # context.symptoms = [names]
    "fall": "daon-fall",  # context.injury / context.head_strike
}
CODES: tuple[str, ...] = (
    BP_PANEL,
    PULSE,
    *GLUCOSE,
    WEIGHT,
    BODY_FAT,
    *WAIST,
    A1C_NGSP,
    A1C_IFCC,
    TG,
    HDL,
    PHQ9_TOTAL,
    PHQ9_ITEM9,
    *BMD_T,
    *LOCAL_CODES.values(),
)
