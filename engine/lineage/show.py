"""`engine lineage show`: the last run's lineage in the terminal.

    inputs → job → outputs, then for each output its columns and the input columns
    each one derives from (direct sources; filters, grouping and windows listed once).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.lineage.delivery import RECORD_NAME, lineage_dir


def last_run_events(output_dir: Path) -> list[dict]:
    """The events of the most recent run recorded in `output_dir` (empty if none)."""
    record = lineage_dir(output_dir) / RECORD_NAME
    if not record.exists():
        return []
    events = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not events:
        return []
    last_run = events[-1]["run"]["runId"]
    return [event for event in events if event["run"]["runId"] == last_run]


def render(events: list[dict]) -> str:
    """The lineage of one run's events as text."""
    final = events[-1]
    job = final["job"]
    lines = [f"run {final['run']['runId']}: {final['eventType']} at {final['eventTime']}",
             f"job {job['namespace']}/{job['name']}"]
    error = final["run"].get("facets", {}).get("errorMessage")
    if error:
        lines.append(f"error: {error['message']}")
    lines.append("inputs:")
    for dataset in final.get("inputs", []):
        rows = dataset.get("inputFacets", {}).get("inputStatistics", {}).get("rowCount")
        lines.append(f"  {_identity(dataset)}" + (f"  ({rows:,} rows)" if rows is not None else ""))
    lines.append(f"  → {job['namespace']}/{job['name']} →")
    lines.append("outputs:")
    for dataset in final.get("outputs", []):
        facets = dataset.get("facets", {})
        rows = dataset.get("outputFacets", {}).get("outputStatistics", {}).get("rowCount")
        state = facets.get("lifecycleStateChange", {}).get("lifecycleStateChange", "")
        details = [f"{rows:,} rows"] if rows is not None else []
        details += [state] if state else []
        lines.append(f"  {_identity(dataset)}" + (f"  ({', '.join(details)})" if details else ""))
        lineage = facets.get("columnLineage", {})
        for column, sources in lineage.get("fields", {}).items():
            lines.append(f"    {column} ← {_sources(sources['inputFields'])}")
        if lineage.get("dataset"):
            lines.append(f"    (all rows) ← {_sources(lineage['dataset'])}")
    return "\n".join(lines)


def _identity(dataset: dict) -> str:
    return f"{dataset['namespace']}:{dataset['name']}"


def _sources(fields: list[dict]) -> str:
    seen = []
    for field in fields:
        for transformation in field.get("transformations", []):
            text = f"{field['field']} [{transformation.get('subtype') or transformation['type']}]"
            if text not in seen:
                seen.append(text)
    return ", ".join(seen)
