"""Declared types and ranges of settings, checked where a value enters (construction).

Each settings class names its limits once, in a table beside it; `check_params` coerces numbers
written another way (`2.0` for a whole number, `4` for a float), and raises one ValueError
naming the setting, the value and what is accepted. Only the standard library is imported,
so options can be checked before torch, sklearn or cv2 load.

    LIMITS = {"k": Whole(2, 1000), "rule": OneOf(("simple", "scored")), "threshold": Number(optional=True)}
    values = check_params(LIMITS, {"k": 3, "rule": "scored", "threshold": None}, "pipeline")
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Whole:
    low: int | None = None
    high: int | None = None
    optional: bool = False

    def check(self, name: str, value):
        if value is None and self.optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or float(value) != int(value):
            raise ValueError(f"{name} must be a whole number{_range(self.low, self.high)}, got {value!r}")
        value = int(value)
        _bounds(name, value, self.low, self.high)
        return value


@dataclass(frozen=True)
class Number:
    low: float | None = None
    high: float | None = None
    optional: bool = False
    above_low: bool = False          # the low end itself is excluded (e.g. a scale > 0)
    word: str | None = None          # a word accepted instead of a number (e.g. a cut "otsu")

    def check(self, name: str, value):
        if value is None and self.optional:
            return None
        if self.word is not None and isinstance(value, str) and value.strip().lower() == self.word:
            return self.word
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            alternative = f" or {self.word}" if self.word else ""
            raise ValueError(f"{name} must be a finite number{_range(self.low, self.high, self.above_low)}"
                             f"{alternative}, got {value!r}")
        value = float(value)
        if self.above_low and self.low is not None and value <= self.low:
            raise ValueError(f"{name} must be above {self.low:g}, got {value:g}")
        _bounds(name, value, self.low, self.high)
        return value


@dataclass(frozen=True)
class OneOf:
    choices: tuple

    def check(self, name: str, value):
        if value not in self.choices:
            raise ValueError(f"{name} {value!r}: choose one of {', '.join(map(str, self.choices))}")
        return value


@dataclass(frozen=True)
class OfType:
    """A value of one Python type, with no conversion (a flag must be true/false, a name text)."""

    kind: type
    wording: str

    def check(self, name: str, value):
        if not isinstance(value, self.kind):
            raise ValueError(f"{name} must be {self.wording}, got {value!r}")
        return value


def Flag() -> OfType:  # noqa: N802 (reads like the other declarations in a LIMITS table)
    return OfType(bool, "true or false")


def Text() -> OfType:  # noqa: N802
    return OfType(str, "text")


@dataclass(frozen=True)
class WholeList:
    """A list (or tuple) of whole numbers, each within the range; a single number is a list of one."""

    low: int | None = None
    high: int | None = None

    def check(self, name: str, value):
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(Whole(self.low, self.high).check(f"{name} entry", item) for item in items)


def _range(low, high, above_low: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if above_low else '['}{low:g}, {high:g}]"
    if low is not None:
        return f" {'>' if above_low else '>='} {low:g}"
    if high is not None:
        return f" <= {high:g}"
    return ""


def _bounds(name: str, value, low, high) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be{_range(low, high)}, got {value:g}")


def key_list(keys) -> str:
    """Keys for a one-line message: plain names as they are, anything else (newlines, spaces) quoted."""
    return ", ".join(str(k) if str(k).isidentifier() else repr(k) for k in sorted(keys, key=str))


def check_params(limits: dict, values: dict, owner: str) -> dict:
    """`values` checked against `limits`; unknown names are refused, coerced values returned."""
    unknown = set(values) - set(limits)
    if unknown:
        raise ValueError(f"{owner}: unknown setting(s) {key_list(unknown)}; known: {', '.join(limits)}")
    return {name: limits[name].check(name, value) for name, value in values.items()}


def check_dataclass(instance, limits: dict) -> None:
    """Check and coerce every field of a settings dataclass in place (call from __post_init__)."""
    from dataclasses import fields

    owner = type(instance).__name__
    values = {f.name: getattr(instance, f.name) for f in fields(instance) if f.name in limits}
    for name, value in check_params(limits, values, owner).items():
        object.__setattr__(instance, name, value)
