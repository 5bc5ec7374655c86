"""Data-quality alerts: thresholds over the quality metrics (SPEC §4).

An alert is a plain dict (`name`, `severity`, `value`, `threshold`, `message`) so it can
be published in `data_quality_metrics.json` as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class AlertThresholds:
    """The configured limits; a value above a limit raises its alert."""

    max_data_loss_rate: float = 10.0
    max_null_count: int = 100


def evaluate_alerts(metrics: dict, thresholds: AlertThresholds) -> list[dict]:
    """The alerts `metrics` raise, in a fixed order."""
    checks = (
        ("high_data_loss_rate", metrics["data_loss_rate"], thresholds.max_data_loss_rate, "% of raw rows rejected"),
        ("high_null_count", metrics["null_count"], thresholds.max_null_count, " missing cells"),
    )
    return [
        {
            "name": name,
            "severity": "warning",
            "value": value,
            "threshold": threshold,
            "message": f"{name}: {value}{unit} (threshold {threshold})",
        }
        for name, value, threshold, unit in checks
        if Decimal(str(value)) > Decimal(str(threshold))
    ]
