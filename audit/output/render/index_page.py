"""``reports/index.html``: every run with its result, and the error and unavailable-rate trends.

Apart from the run page (:mod:`audit.output.render.html`), whose environment and helpers it shares.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit import __version__
from audit.output.render.html import CC3M_BASELINE, ENV, RESULT_CLASS, duration
from audit.store.runs import RunRecord


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: str  # SVG polyline points
    dots: list[tuple[float, float, str]]  # x, y, tooltip


_PALETTE = ("#c0392b", "#2471a3", "#1e8449", "#b9770e", "#7d3c98", "#17a589", "#566573")
CHART_W, CHART_H, PAD = 560.0, 160.0, 28.0


def _series(
    runs: list[RunRecord], values: list[list[float | None]], labels: list[str], fmt: str
) -> tuple[list[Series], float]:
    """Polylines over the runs (x = run position) for each labelled value column."""
    top = max([v for col in values for v in col if v is not None] + [0.0]) or 1.0
    step = (CHART_W - 2 * PAD) / max(len(runs) - 1, 1)
    out = []
    for i, (label, col) in enumerate(zip(labels, values, strict=True)):
        pts = [
            (PAD + j * step, CHART_H - PAD - (CHART_H - 2 * PAD) * v / top, v)
            for j, v in enumerate(col)
            if v is not None
        ]
        out.append(
            Series(
                label=label,
                color=_PALETTE[i % len(_PALETTE)],
                points=" ".join(f"{x:.1f},{y:.1f}" for x, y, _ in pts),
                dots=[(x, y, format(v, fmt)) for x, y, v in pts],
            )
        )
    return out, top


def _rate(run: RunRecord, dataset: str, field: str) -> float | None:
    for d in run.datasets:
        if d.dataset == dataset:
            value: float | None = getattr(d, field)
            return value
    return None


def render_index(runs: list[RunRecord]) -> str:
    """``reports/index.html``: every run, newest first, with error and missing-rate trends."""
    finished = [r for r in runs if r.status == "succeeded"]
    errors, err_top = _series(
        finished,
        [[r.errors for r in finished], [r.warnings for r in finished]],
        ["errors", "warnings"],
        ",.0f",
    )
    names = sorted({d.dataset for r in finished for d in r.datasets})
    rates, labels = [], []
    for name in names:
        for label, pick in ((name, "unavailable_rate"), (f"{name} URLs", "url_unavailable_rate")):
            column = [_rate(r, name, pick) for r in finished]
            if any(v is not None for v in column):
                rates.append(column)
                labels.append(label)
    missing, miss_top = _series(finished, rates, labels, ".1%")
    return ENV.get_template("index.html.j2").render(
        runs=list(reversed(runs)),
        finished=finished,
        errors=errors,
        err_top=err_top,
        missing=missing,
        miss_top=miss_top,
        baseline=CC3M_BASELINE,
        w=CHART_W,
        h=CHART_H,
        pad=PAD,
        version=__version__,
        duration=duration,
        result_class=RESULT_CLASS,
    )
