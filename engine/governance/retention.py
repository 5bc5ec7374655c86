"""Which backups to keep: the grandfather-father-son rule.

A backup is kept when it is the newest backup of its calendar day and that day is one
of the `daily` most recent days that have backups, or the newest of its ISO week among
the `weekly` most recent ISO weeks that have backups, or the newest of its month among
the `monthly` most recent months that have backups. The newest backup of all is always
kept. Days, weeks and months are those of the backup's UTC timestamp; only days, weeks
and months that have at least one backup count, so a pause in backups never makes the
old ones expire early.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days, ISO weeks and months keep their newest backup."""

    daily: int = 7
    weekly: int = 4
    monthly: int = 12


def _day(moment: dt.datetime) -> Hashable:
    return moment.date()


def _iso_week(moment: dt.datetime) -> Hashable:
    year, week, _ = moment.isocalendar()
    return year, week


def _month(moment: dt.datetime) -> Hashable:
    return moment.year, moment.month


def backups_to_keep(backups: Iterable[T], moment_of: Callable[[T], dt.datetime], policy: RetentionPolicy) -> set[T]:
    """The backups the policy keeps. Backups must sort by age (the newest is the
    largest); `moment_of` gives each one's UTC timestamp."""
    newest_first = sorted(backups, reverse=True)
    if not newest_first:
        return set()
    kept = {newest_first[0]}
    for period, count in ((_day, policy.daily), (_iso_week, policy.weekly), (_month, policy.monthly)):
        kept |= _newest_per_period(newest_first, moment_of, period, count)
    return kept


def _newest_per_period(newest_first: list[T], moment_of: Callable[[T], dt.datetime],
                       period: Callable[[dt.datetime], Hashable], count: int) -> set[T]:
    """The newest backup of each of the `count` most recent periods that have one."""
    newest: dict[Hashable, T] = {}
    for backup in newest_first:
        key = period(moment_of(backup))
        if len(newest) == count and key not in newest:
            break
        newest.setdefault(key, backup)
    return set(newest.values())
