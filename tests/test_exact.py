"""Exact arithmetic and the one rounding rule (half away from zero)."""

from decimal import Decimal
from fractions import Fraction

import pytest

from engine.rules import exact


@pytest.mark.parametrize(
    "value, places, expected",
    [
        (Fraction(1, 200), 2, "0.01"),      # exactly half a cent rounds up
        (Fraction(-1, 200), 2, "-0.01"),    # and away from zero below it
        (Fraction(1, 201), 2, "0.00"),
        (Fraction(2, 3), 4, "0.6667"),
        (Fraction(12345, 100000), 4, "0.1235"),
        (Fraction(-12344, 100000), 4, "-0.1234"),
        (Fraction(0), 2, "0.00"),
    ],
)
def test_round_half_away(value, places, expected):
    assert exact.round_half_away(value, places) == Decimal(expected)
    assert str(exact.round_half_away(value, places)) == expected


def test_money_is_cents_over_100():
    assert exact.money(1235) == Decimal("12.35")
    assert exact.money(Fraction(2469, 2)) == Decimal("12.35")  # 1234.5 cents
    assert exact.money(None) is None


def test_percent_change():
    assert exact.percent_change(150, 100) == 50
    assert exact.percent_change(1, 0) is None
    assert exact.percent_change(1, None) is None


def test_sample_std_and_mean():
    assert exact.sample_std([5]) is None
    assert exact.mean([]) is None
    assert exact.round_half_away(exact.sample_std([1, 2, 3, 4]), 10) == Decimal("1.2909944487")
    assert exact.sample_std([7, 7, 7]) == 0
