"""Clinical risk engine: guideline-based flags, alarm hygiene and the visiting-programme group.

The rules, thresholds and alarm hygiene are those of ``reference/clinical-rules.md``; every
number lives in the versioned rule set (:mod:`clinical.ruleset`) and every flag records the
rule-set version that raised it.

::

    model        profiles and readings as columnar numpy tables (one cohort, n residents)
    units        conversions and half-up rounding (§1)
    quality      Q-01…Q-09 per reading
    bp, glucose, body, metabolic, screening, adherence
                 the rules, vectorized over residents (§3-§8)
    engine       evaluate(cohort, readings, now) → Evaluation; a resident is a cohort of one
    evaluation   per-rule results and per-resident Findings
    lifecycle    step(flags, result, now) → new flags + actions (§10), staff actions
    visiting     the 방문건강관리 group and next visit (§9)
    resources    FHIR Flag, RiskAssessment and Task as JSON dicts
    population   whole-population evaluation helpers (nightly, benchmarks)
    assess       ``daon assess`` (specs/cli-assess.md)
    runner       ``daon clinical``: the only I/O module (LISTEN, catch-up, store)

Everything but :mod:`clinical.runner` is pure (numpy and the standard library, no clock);
``api/`` may import :mod:`clinical.flags` only, so this file imports nothing.
"""
