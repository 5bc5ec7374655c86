"""Exact arithmetic for money and ratios, and the one place values are rounded.

Every derived figure is computed from integer cents as an exact rational number and is
rounded once, half away from zero, when it is published: money to 2 decimals, ratios and
percentages to 4. This is what makes every execution mode and every partitioning give
the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext
from fractions import Fraction

MONEY_PLACES = 2
RATIO_PLACES = 4
_SQRT_DIGITS = 50


def round_half_away(value: Fraction, places: int) -> Decimal:
    """`value` rounded to `places` decimals, ties away from zero, exactly."""
    scaled = value * 10**places
    quotient, remainder = divmod(abs(scaled.numerator), scaled.denominator)
    if 2 * remainder >= scaled.denominator:
        quotient += 1
    signed = -quotient if scaled.numerator < 0 else quotient
    return Decimal(signed).scaleb(-places)


def money(cents: Fraction | int | None) -> Decimal | None:
    """An amount of cents as currency units with 2 decimals (None stays None)."""
    if cents is None:
        return None
    return round_half_away(Fraction(cents) / 100, MONEY_PLACES)


def ratio(value: Fraction | None) -> Decimal | None:
    """A ratio, percentage or mean count with 4 decimals (None stays None)."""
    if value is None:
        return None
    return round_half_away(Fraction(value), RATIO_PLACES)


def mean(values: Sequence[Fraction | int]) -> Fraction | None:
    """Arithmetic mean, None for no values."""
    if not values:
        return None
    return Fraction(sum(Fraction(v) for v in values), len(values))


def percent_change(current: Fraction | int | None, previous: Fraction | int | None) -> Fraction | None:
    """100 × (current − previous) / previous; None when either is missing or previous is 0."""
    if current is None or previous is None or previous == 0:
        return None
    return (Fraction(current) - Fraction(previous)) * 100 / Fraction(previous)


def sqrt(value: Fraction) -> Fraction:
    """Square root to 50 significant digits, returned as a Fraction."""
    with localcontext() as context:
        context.prec = _SQRT_DIGITS
        root = (Decimal(value.numerator) / Decimal(value.denominator)).sqrt()
    return Fraction(root)


def sample_std(values: Sequence[Fraction | int]) -> Fraction | None:
    """Sample standard deviation (divisor n − 1); None for fewer than 2 values."""
    if len(values) < 2:
        return None
    centre = mean(values)
    variance = sum((Fraction(v) - centre) ** 2 for v in values) / (len(values) - 1)
    return sqrt(variance)


def quotient(numerator: Fraction | None, denominator: Fraction | None) -> Fraction | None:
    """numerator / denominator; None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return Fraction(numerator) / Fraction(denominator)
