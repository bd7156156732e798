"""The clinical package's errors: pure code raises, the service boundary decides.

::

    ClinicalError                    base of everything raised by clinical/
    ├── InvalidCaseError             an input case or reading is not well formed (names the field)
    ├── RuleSetError                 a rule set is inconsistent (unknown rule id, bad threshold)
    └── LifecycleError               a staff action that the flag's state does not allow
                                     (acknowledging a closed flag, snoozing without a reason)

Quality problems in readings are *not* errors: a reading that fails a Q-* rule is kept, marked
rejected with the rule id, and reported (clinical-rules.md §2). Errors are for input that cannot
be interpreted at all.
"""

from __future__ import annotations


class ClinicalError(Exception):
    """Base class of every error raised by :mod:`clinical`."""


class InvalidCaseError(ClinicalError):
    """An assessment case (or one reading of it) is not well formed.

    ``field`` is the JSON path of the offending value, e.g. ``readings[3].sys``, so that the
    message tells the person who wrote the case exactly what to fix.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RuleSetError(ClinicalError):
    """A rule set is inconsistent; raised when it is built, never while evaluating."""


class LifecycleError(ClinicalError):
    """A staff action that the flag's current state does not allow."""

    def __init__(self, rule: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} flag {rule} in status {status}")
        self.rule = rule
        self.status = status
        self.action = action
