"""Fast constructors for frozen slotted dataclasses on hot decoding paths (private to the
decoders, and ingest's pipeline, which builds a context per reading with it).

The ``__init__`` that ``dataclass(frozen=True)`` generates assigns each field through
``object.__setattr__``, which is a third of the cost of decoding a blood-pressure payload or a
wire reading. :func:`frozen_maker` writes each slot through its member descriptor instead; the
result is the same frozen, comparable, hashable instance. Use it only after validation: it
runs no ``__post_init__``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

_T = TypeVar("_T")


def frozen_maker(cls: type[_T]) -> Callable[..., _T]:
    """A function ``make(*field_values)`` building ``cls`` instances without ``__setattr__``
    (its parameters are the field names, so it may also be called with every field by
    keyword; there are no defaults)."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    body = "".join(f"    _set_{n}(obj, {n})\n" for n in names)
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    namespace.update({f"_set_{n}": cls.__dict__[n].__set__ for n in names})
    exec(f"def make({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n", namespace)
    maker: Callable[..., _T] = namespace["make"]
    return maker
