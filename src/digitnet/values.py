"""Small checks on values read from files, flags and requests, and excerpts to quote them."""

from __future__ import annotations

import math
import reprlib

EXCERPT = reprlib.Repr()
EXCERPT.maxstring = EXCERPT.maxother = EXCERPT.maxlong = 40


def excerpt(value: object) -> str:
    """A short repr of value to quote in an error, however long the value is.

    NOTE: reprlib shortens long strings and lists, but an integer of more than 4300 digits
    cannot be turned into text at all (Python's limit on integer conversion), so its size is
    named instead.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        return f"an integer of {value.bit_length()} bits"
    return EXCERPT.repr(value)


def is_finite(value: float) -> bool:
    """Whether value is a finite number; an integer too large for a float is not."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def is_finite_number(value: object) -> bool:
    """An int or float, not a bool, that is finite as a float too."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and is_finite(value)
