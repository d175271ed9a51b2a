"""The printed table and the JSON file of a benchmark run."""

from __future__ import annotations

import json
from typing import Any, Sequence

from .common import Row

HEADERS = Row("#", "figure", "median", "reference (median)", "ratio", "floor", "pass/miss")
NOTES = (
    "ratio = figure / reference, medians of interleaved repeats on the same generated events.",
    "floor = this project's target; * = this benchmark's own flatness criterion (no target given).",
    "Full figures, every sample and the RSS series: --json FILE.",
)


def format_table(title: str, rows: Sequence[Row]) -> str:
    """``rows`` as one aligned text table under ``title``, with the notes below it."""
    cells = [list(vars(row).values()) for row in [HEADERS, *rows]]
    widths = [max(len(line[column]) for line in cells) for column in range(len(cells[0]))]
    numeric = {2, 4}  # right-aligned columns: the figure's median and the ratio

    def line(values: list[str]) -> str:
        parts = [value.rjust(width) if index in numeric else value.ljust(width)
                 for index, (value, width) in enumerate(zip(values, widths))]
        return " | ".join(parts).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    body = [line(cells[0]), rule]
    previous_item = None
    for values in cells[1:]:
        if previous_item is not None and values[0] != previous_item:
            body.append(rule)
        previous_item = values[0]
        body.append(line(values))
    return "\n".join([title, "=" * len(rule), *body, "=" * len(rule), *NOTES])


def write_json(path: str, figures: dict[str, Any]) -> None:
    """Write ``figures`` to ``path`` as indented JSON."""
    with open(path, "w") as out:
        json.dump(figures, out, indent=2, sort_keys=False)
        out.write("\n")
