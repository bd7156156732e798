"""Benchmark: the clinical rule engine on the synthetic population, and the runner's latency.

Issue 6's figures:

1. **Re-evaluation speed**: every resident of the synthetic population (60,149 residents, 90
   days of readings from ``simulators.population``) evaluated at once by the vectorized engine;
   residents per second (aim: all of them in under 10 s on this machine).
2. **Sensitivity** on the generator's ground truth: of the residents with a truly uncontrolled
   condition (hypertension, diabetes) *who measured anything* in the period, the share that got
   a matching flag (aggregate flag at the end, or a single-reading flag during the period). The
   share over everyone (including residents who never measure, whom no rule can see) is printed
   too.
3. **Alarm load** (clinical-rules.md §10.2): what reaches the nurses per nurse per day, from
   daily evaluations over the last ``--load-days`` days, on a sample of ``--load-residents``
   residents scaled to the district and given a year of history first (the longest rule
   windows, BMI and metabolic syndrome, reach back 365 days; with less history every resident's
   first weighing or second centre visit would count as a new flag). The figure alarm fatigue
   is about, ``flags_per_nurse_day``, counts the *alerts that notify a nurse*: new or
   re-raised critical flags, which push (§10.2.1). Urgent flags (same-day worklist tasks with
   one end-of-day reminder) and routine flags (worklist and weekly digest) are reported beside
   it as worklist items, and ``new_flags_per_nurse_day`` counts all three. A nurse-facing flag
   (nurse among the recipients, severity routine or above) counts when it *opens*: an aggregate
   rule met today that was neither met nor in its hysteresis band yesterday, or a
   single-reading rule firing for a (resident, rule) without one in the previous day
   (critical/urgent) or week (routine), the response times after which staff have closed it
   (§0); an aggregate flag that closed by itself re-opens as the same flag and task within 7
   days (``reopen_quiet_days``) and is not counted again. Divided by the 12 nurses.
4. **Latency**: commit of a new reading → its flag committed, through the real runner on a fresh
   database of the local PostgreSQL (``DAON_TEST_DATABASE_URL`` or 127.0.0.1:5432): residents
   seeded with 90 days of synthetic history through ingest's own store, the runner started
   in-process, then one crisis reading per trial committed with ingest's NOTIFY and timed until
   the runner's ``NOTIFY daon_flags`` names the resident (aim: p99 under 1 s). ``null`` when no
   database is reachable.

Run: ``.venv/bin/python bench/clinical.py [--residents N] [--days 90] [--load-days 14]
[--load-residents 10000] [--trials 200]``. The last line is JSON.
"""

# ruff: noqa: E402  (the imports below must follow the sys.path fix)
from __future__ import annotations

import sys
from pathlib import Path

# This file is bench/clinical.py: run as a script, its own directory comes first on sys.path
# and would shadow the ``clinical`` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import datetime as dt
import json
import os
import time
import uuid
from decimal import Decimal
from typing import Any

import numpy as np

from clinical import population as pop
from clinical._seg import DAY
from clinical.evaluation import State
from clinical.flags import Recipient, Severity
from clinical.model import Readings
from clinical.ruleset import DEFAULT_RULESET, INTENSIVE_DM, Timing
from simulators.population import Population, generate

AIM_SECONDS = 10.0
AIM_P99_MS = 1000.0
N_NURSES = 12
LOAD_HISTORY_DAYS = 365  # the longest rule window (BMI, waist, metabolic syndrome)
END = dt.date(2026, 3, 10)
KST = dt.timezone(dt.timedelta(hours=9))
HTN_FLAGS = frozenset({"BP-HOME-HTN", "BP-OFFICE-HTN", "BP-MASKED", "BP-CRISIS", "BP-GRADE3"})
DM_FLAGS = INTENSIVE_DM | {"GLU-HYPER-SEVERE", "GLU-HYPER-CRITICAL", "GLU-HYPER-SYMPTOMATIC"}


def build(p: Population) -> tuple[Any, Readings]:
    """The population as the engine's cohort and readings. Conditions are taken as known
    diagnoses (treated: an antihypertensive or metformin), homes with any device as enrolled."""
    r = p.residents
    cohort = pop.cohort_from_columns(
        age=r.age,
        female=r.sex == "F",
        height_cm=r.height_cm,
        diabetes=r.diabetes,
        hypertension=r.hypertension,
        dyslipidemia=r.dyslipidemia,
        antihypertensive=r.hypertension,
        glucose_lowering=r.diabetes,
        home_monitoring=r.home_bp | r.home_glucose | r.home_scale,
        risk_factor=r.obesity & ~r.hypertension & ~r.diabetes,
    )
    readings = Readings(
        bp=pop.bp_table(
            p.bp.resident, p.bp.t, p.bp.sys, p.bp.dia, pulse=p.bp.pulse, setting=p.bp.setting
        ),
        glucose=pop.glucose_table(
            p.glucose.resident, p.glucose.t, p.glucose.mg_dl, meal=p.glucose.meal
        ),
        weight=pop.weight_table(p.weight.resident, p.weight.t, p.weight.kg),
        body_comp=pop.body_comp_table(
            p.body_comp.resident,
            p.body_comp.t,
            fat_pct=p.body_comp.fat_pct,
            asm_kg=p.body_comp.asm_kg,
        ),
    )
    return cohort, readings


def end_of_day(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, 21, 0, tzinfo=KST).timestamp())


def speed(cohort: Any, readings: Readings, now: int, repeats: int = 3) -> tuple[float, Any]:
    best = float("inf")
    ev = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        ev = pop.evaluate_population(cohort, readings, now)
        best = min(best, time.perf_counter() - t0)
    return best, ev


def sensitivity(p: Population, raised: pop.Raised) -> dict[str, float]:
    r = p.residents
    n = r.age.size
    measured_bp = np.bincount(p.bp.resident, minlength=n) > 0
    measured_glu = np.bincount(p.glucose.resident, minlength=n) > 0
    htn = raised.any_of(HTN_FLAGS)
    dm = raised.any_of(DM_FLAGS)
    out: dict[str, float] = {}
    for name, truth, measured, flagged in (
        ("hypertension", r.uncontrolled_hypertension, measured_bp, htn),
        ("diabetes", r.uncontrolled_diabetes, measured_glu, dm),
    ):
        seen = truth & measured
        out[f"{name}_uncontrolled"] = float(truth.sum())
        out[f"{name}_measured"] = float(seen.sum())
        out[f"{name}_sensitivity"] = float((flagged & seen).sum() / max(seen.sum(), 1))
        out[f"{name}_sensitivity_all"] = float((flagged & truth).sum() / max(truth.sum(), 1))
        controlled = ~truth & measured
        out[f"{name}_false_positive_share"] = float(
            (flagged & controlled).sum() / max(controlled.sum(), 1)
        )
    both_truth = (r.uncontrolled_hypertension & measured_bp) | (
        r.uncontrolled_diabetes & measured_glu
    )
    both_hit = (r.uncontrolled_hypertension & measured_bp & htn) | (
        r.uncontrolled_diabetes & measured_glu & dm
    )
    out["sensitivity"] = float(both_hit.sum() / max(both_truth.sum(), 1))
    return out


def _count(
    today: np.ndarray, by_rule: dict[str, int], rule: str, new: np.ndarray, severity: np.ndarray
) -> None:
    np.add.at(today, severity[new], 1)
    by_rule[rule] = by_rule.get(rule, 0) + int(new.sum())


def alarm_load(
    cohort: Any, readings: Readings, end: dt.date, days: int, warm_up: int, scale: float = 1.0
) -> dict[str, Any]:
    """What reaches the nurses over ``days`` daily evaluations (see the module docstring), after
    ``warm_up`` daily evaluations that build the flags already open (without them every flag
    open at the start would count as new on its first day). ``scale`` turns counts on a sample
    of residents into district figures.

    The tiers are those of clinical-rules.md §10.2.1, as :mod:`clinical.lifecycle` applies them:
    a new or re-raised *critical* flag pushes to the nurse (an alert); an *urgent* flag is a
    same-day worklist task with one end-of-day reminder; a *routine* flag is a worklist task and
    a line in the weekly digest. Single-reading flags count again after their response time:
    a day for critical and urgent (a qualifying reading after the 6 h cool-down re-raises a
    critical alert, or makes an urgent task due again), a week for routine (§0).
    """
    rs = DEFAULT_RULESET
    nurse_rules = {r.id for r in rs.rules.values() if Recipient.NURSE in r.recipients}
    n = cohort.n
    prev_open: dict[str, np.ndarray] = {}
    last_open: dict[str, np.ndarray] = {}
    quiet = rs.thresholds.hygiene.reopen_quiet_days
    last_single: dict[str, np.ndarray] = {}
    per_day: list[np.ndarray] = []
    by_rule: dict[str, int] = {}
    ticks = [end - dt.timedelta(days=k) for k in range(days + warm_up, -1, -1)]
    for k, day in enumerate(ticks):
        counting = k > warm_up
        now = end_of_day(day)
        ev = pop.evaluate_population(cohort, readings, now)
        today = np.zeros(4, np.int64)  # new items today, by severity rank
        for rule, agg in ev.aggregate.items():
            met = agg.state == int(State.MET)
            open_now = met | (agg.state == int(State.HOLD)) & prev_open.get(rule, met)
            was = last_open.setdefault(rule, np.full(n, -10_000, np.int64))
            if counting and rule in nurse_rules:
                # opens: met, not open yesterday, and not closed within the quiet days (then
                # the same flag and task re-open silently)
                new = (
                    met
                    & ~prev_open.get(rule, np.zeros(n, bool))
                    & (k - was > quiet)
                    & (agg.severity >= Severity.ROUTINE.rank)
                )
                _count(today, by_rule, rule, new, agg.severity)
            prev_open[rule] = open_now
            was[open_now] = k
        for rule, hits in ev.single.items():
            if rule not in nurse_rules:
                continue
            window = (
                (hits.t > now - DAY) & (hits.t <= now) & (hits.severity >= Severity.ROUTINE.rank)
            )
            sev = np.full(n, -1, np.int64)
            np.maximum.at(sev, hits.resident[window], hits.severity[window])
            fired = sev >= 0
            last = last_single.setdefault(rule, np.full(n, -10_000, np.int64))
            hold = np.where(sev >= Severity.URGENT.rank, 1, 7)
            new = fired & (k - last >= hold)
            last[new] = k
            if counting:
                _count(today, by_rule, rule, new, np.maximum(sev, 0))
        if counting:
            per_day.append(today)
    counts = np.sum(per_day, axis=0) if per_day else np.zeros(4, np.int64)
    daily = np.array(per_day) if per_day else np.zeros((1, 4), np.int64)

    def per_nurse_day(total: float) -> float:
        return total * scale / max(days, 1) / N_NURSES

    critical = int(counts[Severity.CRITICAL.rank])
    urgent = int(counts[Severity.URGENT.rank])
    routine = int(counts[Severity.ROUTINE.rank])
    top = sorted(by_rule.items(), key=lambda kv: -kv[1])[:8]
    return {
        "days": days,
        "scale": scale,
        "alerts": critical,
        "urgent_items": urgent,
        "routine_items": routine,
        "alerts_per_nurse_day": per_nurse_day(critical),
        "urgent_items_per_nurse_day": per_nurse_day(urgent),
        "routine_items_per_nurse_day": per_nurse_day(routine),
        "worklist_items_per_nurse_day": per_nurse_day(urgent + routine),
        "new_flags_per_nurse_day": per_nurse_day(critical + urgent + routine),
        "max_day_alerts": round(int(daily[:, Severity.CRITICAL.rank].max()) * scale),
        "top_rules": {rule: round(c * scale) for rule, c in top},
    }


# --------------------------------------------------------------------------- latency


def _server_url() -> str | None:
    import psycopg

    configured = os.environ.get("DAON_TEST_DATABASE_URL")
    candidates = [configured] if configured else ["postgresql://postgres@127.0.0.1:5432/postgres"]
    for url in candidates:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.OperationalError:
            continue
    return None


def _with_db(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def latency(p: Population, residents: int, trials: int) -> dict[str, Any]:
    """Commit → flag committed, through the real runner (see the module docstring)."""
    import psycopg
    from psycopg.types.json import Jsonb

    from clinical import runner
    from devices.model import Component, Kind, Measurement
    from ingest import store
    from ingest.fhir import ReadingContext, to_observations
    from ingest.store.observations import insert_observations, notify_residents

    server = _server_url()
    if server is None:
        return {"error": "no PostgreSQL reachable"}
    name = f"daon_bench_clinical_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    url = _with_db(server, name)
    try:
        await store.migrate(url)
        r = p.residents
        rng = np.random.default_rng(11)
        chosen = np.sort(
            rng.choice(
                np.flatnonzero(np.bincount(p.bp.resident, minlength=r.age.size) > 0),
                size=residents,
                replace=False,
            )
        )
        ids = {int(i): f"B{int(i):06d}" for i in chosen}

        def bp_obs(rid: str, when: dt.datetime, s: int, d: int, setting: str) -> list[Any]:
            m = Measurement(
                kind=Kind.BLOOD_PRESSURE,
                components=(
                    Component("systolic", Decimal(s), "mm[Hg]"),
                    Component("diastolic", Decimal(d), "mm[Hg]"),
                ),
                device_time=when.astimezone(KST).replace(tzinfo=None),
            )
            ctx = ReadingContext(
                device_id=f"dev-{rid}",
                gateway_id="bench-gw",
                received_at=when,
                patient=rid,
                setting=setting,
            )
            return to_observations(m, ctx)

        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for i, rid in ids.items():
                birth = dt.date(END.year - int(r.age[i]), 6, 1)
                await conn.execute(
                    "INSERT INTO resident (id, display_name, neighbourhood, birth_date, sex, "
                    "height_cm, profile, nurse_id, liaison_id) VALUES (%s, %s, %s, %s, %s, %s, "
                    "%s, %s, NULLIF(%s, ''))",
                    (
                        rid,
                        f"bench {rid}",
                        str(r.neighbourhood[i]),
                        birth,
                        str(r.sex[i]),
                        float(r.height_cm[i]),
                        Jsonb(
                            {
                                "diagnoses": ["hypertension"] if r.hypertension[i] else [],
                                "home_monitoring": bool(r.home_bp[i]),
                            }
                        ),
                        str(r.nurse[i]),
                        str(r.liaison[i]),
                    ),
                )
            # 90 days of history per resident, shifted to end now, stored through ingest
            shift = dt.datetime.now(dt.UTC) - dt.datetime.combine(END, dt.time(21), KST)
            sel = np.isin(p.bp.resident, chosen)
            observations = []
            for res, t, s, d, setting in zip(
                p.bp.resident[sel].tolist(),
                p.bp.t[sel].tolist(),
                p.bp.sys[sel].tolist(),
                p.bp.dia[sel].tolist(),
                p.bp.setting[sel].tolist(),
                strict=True,
            ):
                when = t.replace(tzinfo=dt.UTC) + shift
                observations.extend(bp_obs(ids[res], when, int(s), int(d), str(setting)))
            async with conn.transaction():
                await insert_observations(conn, observations)
        history = len(observations)

        stop, ready = asyncio.Event(), asyncio.Event()
        cfg = runner.RunnerConfig(url, duty_interval_s=3600, catch_up_interval_s=3600)
        t0 = time.perf_counter()
        service = asyncio.create_task(runner.run(cfg, stop=stop, ready=ready))
        async with asyncio.timeout(600):
            await ready.wait()
        catch_up_s = time.perf_counter() - t0
        samples: list[float] = []
        order = list(ids.values())
        async with (
            await psycopg.AsyncConnection.connect(url, autocommit=True) as listen,
            await psycopg.AsyncConnection.connect(url, autocommit=True) as writer,
        ):
            await listen.execute("LISTEN daon_flags")
            for k in range(trials):
                rid = order[k % len(order)]
                obs = bp_obs(
                    rid,
                    dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
                    185 + k % 30,
                    100,
                    "home",
                )
                # a fresh identifier per trial: a new reading, not a resend
                obs = [
                    o._replace(
                        identifier=f"{o.identifier}-{uuid.uuid4().hex}", id=str(uuid.uuid4())
                    )
                    for o in obs
                ]
                async with writer.transaction():
                    await insert_observations(writer, obs)
                    await notify_residents(writer, [rid])
                committed = time.perf_counter()
                async with asyncio.timeout(30):
                    async for note in listen.notifies():
                        if rid in json.loads(note.payload):
                            break
                samples.append((time.perf_counter() - committed) * 1000.0)
        stop.set()
        async with asyncio.timeout(30):
            await service
        arr = np.array(samples)
        return {
            "residents": residents,
            "history_observations": history,
            "catch_up_s": catch_up_s,
            "trials": trials,
            "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()),
        }
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--residents", type=int, default=None, help="default: all 60,149")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--load-days", type=int, default=14)
    ap.add_argument("--warm-up-days", type=int, default=30)
    ap.add_argument(
        "--load-residents",
        type=int,
        default=10_000,
        help="residents sampled for the alarm load (a year of history each), scaled up",
    )
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--latency-residents", type=int, default=300)
    args = ap.parse_args()

    t0 = time.perf_counter()
    p = generate(args.seed, n_residents=args.residents, days=args.days, end=END)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cohort, readings = build(p)
    build_s = time.perf_counter() - t0
    n = cohort.n
    rows = sum(t.size for t in readings.tables().values())
    print(
        f"population: {n:,} residents, {rows:,} readings over {args.days} days "
        f"(generated in {gen_s:.1f} s, arrays built in {build_s:.2f} s)"
    )

    now = end_of_day(END)
    seconds, ev = speed(cohort, readings, now)
    rate = n / seconds
    print(
        f"re-evaluation: {seconds:.2f} s for every resident ({rate:,.0f} residents/s; "
        f"{seconds / AIM_SECONDS:.2f} of the {AIM_SECONDS:.0f} s limit)"
    )

    raised = pop.raised(ev)
    sens = sensitivity(p, raised)
    print(
        f"sensitivity (uncontrolled and measured → flagged): hypertension "
        f"{sens['hypertension_sensitivity']:.1%} of {sens['hypertension_measured']:.0f}, "
        f"diabetes {sens['diabetes_sensitivity']:.1%} of {sens['diabetes_measured']:.0f}; "
        f"overall {sens['sensitivity']:.1%}"
    )
    print(
        f"  over everyone with the condition uncontrolled (many never measure): hypertension "
        f"{sens['hypertension_sensitivity_all']:.1%}, diabetes "
        f"{sens['diabetes_sensitivity_all']:.1%}"
    )
    print(
        f"  flagged though controlled (measured): hypertension "
        f"{sens['hypertension_false_positive_share']:.1%}, diabetes "
        f"{sens['diabetes_false_positive_share']:.1%}"
    )
    groups = pop.visiting_groups(ev)
    names = ("intensive", "regular", "self_management", "none")
    print(
        "visiting groups: "
        + ", ".join(f"{names[g]} {int((groups == g).sum()):,}" for g in range(4))
    )

    t0 = time.perf_counter()
    load_n = min(args.load_residents, n)
    history = LOAD_HISTORY_DAYS + args.load_days + 1
    sample = generate(args.seed, n_residents=load_n, days=history, end=END)
    load_cohort, load_readings = build(sample)
    load = alarm_load(
        load_cohort, load_readings, END, args.load_days, args.warm_up_days, scale=n / load_n
    )
    print(
        f"alarm load over {args.load_days} daily evaluations after {args.warm_up_days} days of "
        f"warm-up ({load_n:,} residents with {history} days of history, scaled to {n:,}; "
        f"{time.perf_counter() - t0:.0f} s), per nurse per day: "
        f"{load['alerts_per_nurse_day']:.1f} alerts that notify (critical pushes; max day "
        f"{load['max_day_alerts']} in the district), "
        f"{load['worklist_items_per_nurse_day']:.1f} new worklist items "
        f"({load['urgent_items_per_nurse_day']:.1f} urgent, due the same day; "
        f"{load['routine_items_per_nurse_day']:.1f} routine, weekly digest); "
        f"{load['new_flags_per_nurse_day']:.1f} new nurse-facing flags in all"
    )
    print(f"  top rules (district, {args.load_days} days): {load['top_rules']}")

    lat: dict[str, Any]
    if args.trials > 0:
        lat = asyncio.run(latency(p, args.latency_residents, args.trials))
    else:
        lat = {"error": "skipped (--trials 0)"}
    if "error" in lat:
        print(f"latency: not measured ({lat['error']})")
        p99 = None
    else:
        p99 = lat["p99_ms"]
        print(
            f"latency commit → flag committed ({lat['trials']} trials, {lat['residents']} "
            f"residents with {lat['history_observations']:,} stored observations; catch-up "
            f"at start {lat['catch_up_s']:.1f} s): p50 {lat['p50_ms']:.0f} ms, p99 "
            f"{p99:.0f} ms, max {lat['max_ms']:.0f} ms ({p99 / AIM_P99_MS:.2f} of the "
            f"{AIM_P99_MS:.0f} ms limit)"
        )

    print(
        json.dumps(
            {
                "residents": n,
                "readings": rows,
                "seconds": round(seconds, 3),
                "residents_per_s": round(rate),
                "ratio_to_limit": round(seconds / AIM_SECONDS, 3),
                "flag_latency_p99_ms": None if p99 is None else round(p99, 1),
                "flag_latency_p50_ms": None if p99 is None else round(lat["p50_ms"], 1),
                "sensitivity": round(sens["sensitivity"], 4),
                "sensitivity_hypertension": round(sens["hypertension_sensitivity"], 4),
                "sensitivity_diabetes": round(sens["diabetes_sensitivity"], 4),
                "sensitivity_all_uncontrolled": round(
                    (
                        sens["hypertension_sensitivity_all"] * sens["hypertension_uncontrolled"]
                        + sens["diabetes_sensitivity_all"] * sens["diabetes_uncontrolled"]
                    )
                    / max(sens["hypertension_uncontrolled"] + sens["diabetes_uncontrolled"], 1),
                    4,
                ),
                "flags_per_nurse_day": round(load["alerts_per_nurse_day"], 2),
                "alerts_per_nurse_day": round(load["alerts_per_nurse_day"], 2),
                "worklist_items_per_nurse_day": round(load["worklist_items_per_nurse_day"], 2),
                "urgent_items_per_nurse_day": round(load["urgent_items_per_nurse_day"], 2),
                "routine_items_per_nurse_day": round(load["routine_items_per_nurse_day"], 2),
                "new_flags_per_nurse_day": round(load["new_flags_per_nurse_day"], 2),
                "load_days": load["days"],
                "load_residents": load_n,
                "rule_set": DEFAULT_RULESET.version,
                "single_rules": sum(
                    r.timing is Timing.SINGLE for r in DEFAULT_RULESET.rules.values()
                ),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
