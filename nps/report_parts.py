"""The pieces of the morning report page (nps/report.py reads the marts and assembles it): its CSS,
text and table helpers, and one plotly figure per section, built from the marts' rows as they are
(the chart data is never rounded; only visible text is)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

PLOT_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["sendDataToCloud"]}
COLOURS = ["#1f5f8b", "#c0504d", "#4f8a3a", "#8064a2", "#d08a1e", "#2a9d8f", "#7f7f7f", "#b5651d"]
BUCKET_LABELS = {"within_24h": "≤ 24 h", "within_48h": "≤ 48 h", "later": "later", "never": "never",
                 "no_follow_up_data": "no data"}
STATUS_MARKS = {"new": "★ new", "resolved": "✓ resolved", "re-emerged": "↺ re-emerged"}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #f4f5f7; font-size: 14px; }
header, main { max-width: 1240px; margin: 0 auto; padding: 0 16px; }
header { padding-top: 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 6px; }
h3 { font-size: 14px; margin: 14px 0 4px; color: #444; }
nav a { margin-right: 12px; color: #1f5f8b; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 14px 16px; margin: 14px 0; }
.note, .asof { color: #555; font-size: 13px; margin: 2px 0 8px; }
.headline { font-size: 16px; margin: 4px 0; }
.empty { color: #777; font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { background: #f0f2f5; white-space: nowrap; }
.nw { white-space: nowrap; }
tr.significant td { background: #fbe3e0; }
tr.exceeds td { background: #fdf1d8; }
span.significant { color: #c0392b; font-weight: 600; }
span.exceeds { color: #b07800; font-weight: 600; }
.comment { color: #555; }
@media print {
  body { background: #fff; font-size: 11px; }
  nav, .modebar-container { display: none !important; }
  header, main { max-width: none; padding: 0; }
  section { border: none; padding: 0; margin: 0 0 12px; break-inside: avoid; page-break-inside: avoid; }
  .plotly-graph-div { break-inside: avoid; }
}
"""


def quarter_label(day: date) -> str:
    return f"{day.year} Q{(day.month - 1) // 3 + 1}"



def fmt(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    if isinstance(value, float | Decimal):
        return f"{float(value):,.{digits}f}{suffix}"
    return str(value)


def pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.0f} %"


def signed(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:+,d}" if isinstance(value, int) else f"{float(value):+.1f}"


def nowrap(text: str) -> str:
    """Already-escaped text that must not wrap (a date, an amount, a name)."""
    return f'<span class="nw">{text}</span>'



def esc(value: Any) -> str:
    return html.escape(fmt(value))


def html_table(headers: Sequence[str], rows: Iterable[Sequence[str]], classes: Sequence[str] | None = None,
           empty: str = "No rows.") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, cells in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        return f'<p class="empty">{html.escape(empty)}</p>'
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'

class Figures:
    """Turns plotly figures into divs (plotly.js itself is inlined once, in the page head)."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, fig: Any, height: int) -> str:
        import plotly.io as pio

        self.count += 1
        fig.update_layout(height=height, margin={"l": 60, "r": 20, "t": 10, "b": 50},
                          font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
                          plot_bgcolor="#ffffff", paper_bgcolor="#ffffff",
                          legend={"orientation": "h", "y": -0.18})
        fig.update_xaxes(gridcolor="#e6e6e6")
        fig.update_yaxes(gridcolor="#e6e6e6", zerolinecolor="#999999")
        return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"chart-{self.count}",
                           config=PLOT_CONFIG, default_width="100%", default_height=f"{height}px")


def trend_figure(rows: list[dict[str, Any]], grain: str) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["period_grain"] == grain:
            series.setdefault((row["segment_type"], row["segment_value"]), []).append(row)
    for i, ((stype, value), points) in enumerate(sorted(series.items(), key=lambda kv: kv[0][0] != "overall")):
        colour = "#111111" if stype == "overall" else COLOURS[i % len(COLOURS)]
        name = "overall" if stype == "overall" else f"plan {value}"
        x = [p["period_start"] for p in points]
        nps = [float(p["nps"]) for p in points]
        moe = [float(p["margin_of_error"]) for p in points]
        fig.add_trace(go.Scatter(
            x=x + x[::-1], y=[n + m for n, m in zip(nps, moe, strict=True)]
            + [n - m for n, m in zip(nps, moe, strict=True)][::-1],
            fill="toself", fillcolor=colour, opacity=0.12, line={"width": 0}, hoverinfo="skip",
            showlegend=False, legendgroup=name, meta={"role": "band", "segment_type": stype, "segment_value": value},
        ))
        fig.add_trace(go.Scatter(
            x=x, y=nps, name=name, legendgroup=name, mode="lines+markers",
            line={"color": colour, "width": 3 if stype == "overall" else 1.5},
            customdata=[[p["responses"], m] for p, m in zip(points, moe, strict=True)],
            hovertemplate=f"{html.escape(name)}<br>%{{x}}: NPS %{{y:.1f}} ± %{{customdata[1]:.1f}}"
                          "<br>%{customdata[0]} responses<extra></extra>",
            meta={"role": "nps", "segment_type": stype, "segment_value": value, "period_grain": grain},
        ))
    fig.update_yaxes(title_text="NPS (± 95 % margin of error)")
    if grain == "quarter":
        fig.update_xaxes(dtick="M3", tickformat="%Y Q%q")
    return fig


def segment_flag(row: dict[str, Any]) -> str:
    if row["change_is_significant"]:
        return "significant"
    if row["change_exceeds_margin_of_error"]:
        return "exceeds_moe"
    return ""


def segments_figure(rows: list[dict[str, Any]]) -> Any:
    import plotly.graph_objects as go

    colour = {"significant": "#c0392b", "exceeds_moe": "#e69f00", "": "#7f8c9a"}
    labels = [f"{r['segment_type']} · {r['segment_value']}" for r in rows]
    fig = go.Figure(go.Scatter(
        x=[float(r["nps"]) for r in rows], y=labels, mode="markers",
        marker={"color": [colour[segment_flag(r)] for r in rows], "size": 9},
        error_x={"type": "data", "array": [float(r["margin_of_error"]) for r in rows], "color": "#aaaaaa"},
        customdata=[[r["responses"], r["nps_change"], r["change_margin_of_error"]] for r in rows],
        hovertemplate="%{y}: NPS %{x:.1f}<br>%{customdata[0]} responses<br>change %{customdata[1]:+.1f} "
                      "(± %{customdata[2]:.1f})<extra></extra>",
        meta={"role": "segments"}, showlegend=False,
    ))
    fig.update_yaxes(range=[len(rows) - 0.5, -0.5], automargin=True)
    fig.update_xaxes(title_text="NPS this quarter (bar: ± margin of error)", side="top")
    return fig


def recovery_figure(rows: list[dict[str, Any]]) -> Any:
    import plotly.graph_objects as go

    x = [[quarter_label(r["period_start"]) for r in rows], [BUCKET_LABELS.get(r["follow_up_bucket"],
                                                                               r["follow_up_bucket"]) for r in rows]]
    fig = go.Figure()
    for i, (column, name) in enumerate((("detractors", "detractors"), ("with_next_response", "answered again"),
                                        ("recovered", "recovered (≥ 7)"), ("fully_recovered", "fully (≥ 9)"))):
        fig.add_trace(go.Bar(x=x, y=[r[column] for r in rows], name=name, marker_color=COLOURS[i],
                             meta={"role": "funnel", "column": column,
                                   "buckets": [r["follow_up_bucket"] for r in rows]}))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="detractors")
    return fig


def sla_figure(rows: list[dict[str, Any]]) -> Any:
    import plotly.graph_objects as go

    quarters = {r["period_start"]: r for r in rows}
    x = list(quarters)
    fig = go.Figure()
    for i, (column, name) in enumerate((("sla_24h_attainment", "24 h SLA"), ("sla_48h_attainment", "48 h SLA"))):
        fig.add_trace(go.Scatter(x=x, y=[quarters[q][column] for q in x], name=name, mode="lines+markers",
                                 line={"color": COLOURS[i]}, meta={"role": "sla", "column": column},
                                 hovertemplate=f"{name} %{{x}}: %{{y:.1%}}<extra></extra>"))
    fig.update_yaxes(title_text="attainment", tickformat=".0%", range=[0, 1.02])
    fig.update_xaxes(dtick="M3", tickformat="%Y Q%q")
    return fig


def heatmap_figure(rows: list[dict[str, Any]]) -> tuple[Any, int]:
    import plotly.graph_objects as go

    quarters = sorted({r["quarter_start"] for r in rows})
    themes: dict[int, dict[str, Any]] = {}
    for r in rows:
        themes.setdefault(r["theme_id"], {"label": r["theme_label"], "cells": {}, "total": 0})
        themes[r["theme_id"]]["cells"][r["quarter_start"]] = r
        themes[r["theme_id"]]["total"] += r["mentions"]
    order = sorted(themes, key=lambda t: (-themes[t]["total"], t))
    seen = [themes[t]["label"] for t in order]
    labels = [lbl if seen.count(lbl) == 1 else f"{lbl} (#{t})" for t, lbl in zip(order, seen, strict=True)]
    z: list[list[int | None]] = []
    text: list[list[str]] = []
    for t in order:
        cells = themes[t]["cells"]
        z.append([cells[q]["mentions"] if q in cells else None for q in quarters])
        text.append([STATUS_MARKS.get(cells[q]["status"], "") if q in cells else "" for q in quarters])
    fig = go.Figure(go.Heatmap(
        x=[quarter_label(q) for q in quarters], y=labels, z=z, text=text, texttemplate="%{z}<br>%{text}",
        colorscale="Blues", hoverongaps=False, colorbar={"title": {"text": "mentions"}},
        hovertemplate="%{y}<br>%{x}: %{z} mentions %{text}<extra></extra>",
        meta={"role": "recurrence", "theme_ids": order, "quarter_starts": [q.isoformat() for q in quarters]},
    ))
    fig.update_yaxes(autorange="reversed", automargin=True, showgrid=False)
    fig.update_xaxes(side="top", showgrid=False)
    return fig, 120 + 34 * len(order)


def impact_figure(rows: list[dict[str, Any]]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(
        x=[float(r["nps_points_at_stake"]) for r in rows], y=[r["theme_label"] for r in rows], orientation="h",
        marker_color="#c0504d",
        customdata=[[r["mention_share"], r["nps_difference"], r["priority_quadrant"] or "–"] for r in rows],
        hovertemplate="%{y}: %{x:.1f} NPS points at stake<br>mentioned by %{customdata[0]:.0%}; "
                      "NPS difference %{customdata[1]:+.1f}<br>%{customdata[2]}<extra></extra>",
        meta={"role": "impact", "theme_ids": [r["theme_id"] for r in rows]},
    ))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title_text="NPS points the quarter would gain if these detractors were passives")
    return fig


# ------------------------------------------------------------------------------------------ sections
