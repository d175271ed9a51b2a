"""``GET /metrics``: the run's figures in the Prometheus text exposition format.

Each metric has ``# HELP`` and ``# TYPE`` lines, then ``name{label="value"} number``; counters end
in ``_total``, units are in the name (``_seconds``). The figures come from the live run
(LiveRun.figures: the poster, the backups, Redis) and from the HTTP app itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from live.http.feed import Feed

__all__ = ["exposition", "HTTPTally", "PREFIX"]

PREFIX = "live_reactions_"


@dataclass
class HTTPTally:
    """What the API did, for the summary and /metrics: reactions acknowledged (``posted``) and
    refused by Redis (``refused``), and requests answered per status."""

    posted: int = 0
    refused: int = 0
    statuses: Counter = field(default_factory=Counter)


def exposition(figures: dict[str, Any], tally: HTTPTally, feed: Feed, connections: int) -> str:
    """The text of /metrics. ``figures``: ``poster_posted``, ``poster_refused``,
    ``pending_events``, ``table_rows`` (None where this process has no table), ``backups``,
    ``backup_seconds_sum``, ``backup_events_sum``; missing ones are left out."""
    lines: list[str] = []
    lines += _metric("posted_total", "counter", "Reactions acknowledged, by where they came from.",
                     [({"source": "poster"}, figures.get("poster_posted")),
                      ({"source": "http"}, tally.posted)])
    lines += _metric("refused_total", "counter", "Reactions Redis refused (over maxmemory or "
                     "unreachable), by where they came from.",
                     [({"source": "poster"}, figures.get("poster_refused")),
                      ({"source": "http"}, tally.refused)])
    lines += _metric("pending_events", "gauge", "Events in Redis not yet in the table.",
                     [({}, figures.get("pending_events"))])
    lines += _metric("table_rows", "gauge", "Rows in ReactionsTable.",
                     [({}, figures.get("table_rows"))])
    lines += _metric("backups_total", "counter", "Write-behind backups run.",
                     [({}, figures.get("backups"))])
    lines += _metric("backup_duration_seconds", "summary", "Time the backups took.",
                     [({}, figures.get("backup_seconds_sum"), "_sum"),
                      ({}, figures.get("backups"), "_count")])
    lines += _metric("backup_events", "summary", "Events each backup moved to the table.",
                     [({}, figures.get("backup_events_sum"), "_sum"),
                      ({}, figures.get("backups"), "_count")])
    lines += _metric("http_requests_total", "counter", "HTTP requests answered, by status.",
                     [({"status": str(status)}, count)
                      for status, count in sorted(tally.statuses.items())])
    lines += _metric("http_open_streams", "gauge", "Server-Sent Event streams open now.",
                     [({}, feed.open_streams)])
    lines += _metric("http_streams_dropped_total", "counter",
                     "Viewers dropped because their connection did not keep up.",
                     [({}, feed.dropped)])
    lines += _metric("http_open_connections", "gauge", "HTTP connections open now.",
                     [({}, connections)])
    return "\n".join(lines) + "\n"


def _metric(name: str, kind: str, help_text: str, samples: Iterable[tuple]) -> list[str]:
    """The lines of one metric; samples are ``(labels, value[, suffix])``, None values left out
    (and the metric too when none is left)."""
    rows = []
    for labels, value, *suffix in samples:
        if value is None:
            continue
        label_text = "{" + ",".join(f'{key}="{text}"' for key, text in labels.items()) + "}"
        number = f"{value:g}" if isinstance(value, float) else str(value)
        rows.append(f"{PREFIX}{name}{''.join(suffix)}{label_text if labels else ''} {number}")
    if not rows:
        return []
    return [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} {kind}", *rows]
