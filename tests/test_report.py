"""The morning report (`nps report`, the DAG's report_html task) on the marts the session pipeline
published: every number in the page's charts and in its embedded data equals the marts read here
with SQL of their own, the page loads nothing from the network, the CLI writes it where it says,
`--as-of` renders an earlier report, and each published run left its report next to its
validation results."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from nps import config, report
from nps.cli import main as cli_main
from tests.conftest import query as _query

pytestmark = pytest.mark.integration

_NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"([^"]+)",\s*')


def figures(page: str) -> dict[str, list[dict]]:
    """Each chart's traces, as plotly wrote them into `Plotly.newPlot(id, data, layout, config)`."""
    out = {}
    for m in _NEW_PLOT.finditer(page):
        data, _ = json.JSONDecoder().raw_decode(page, m.end())
        out[m.group(1)] = data
    return out


def embedded(page: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{report.DATA_ELEMENT_ID}">(.*?)</script>', page, re.S)
    assert m, "the page embeds its data"
    return json.loads(m.group(1))


def traces(page: str, role: str) -> list[dict]:
    return [t for data in figures(page).values() for t in data if (t.get("meta") or {}).get("role") == role]


def marts_day(url: str) -> date:
    as_of = _query(url, "select as_of from ops.published_builds order by publish_id desc limit 1").iloc[0, 0]
    return (as_of.astimezone(UTC) - timedelta(microseconds=1)).date()


def quarter_of(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def iso(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def num(value):
    return None if value is None or pd.isna(value) else float(value)


@pytest.fixture(scope="module")
def page(pipeline, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report") / "now.html"
    assert cli_main(["report", "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_charts_and_embedded_data_equal_the_marts(pipeline, page):
    url = pipeline[0]
    day = marts_day(url)
    data = embedded(page)
    assert data["report_date"] == day.isoformat()

    nbs = _query(url, "select * from marts.nps_by_segment")
    trend = nbs[nbs["segment_type"].isin(["overall", "plan"])]
    # NPS per quarter and per month, overall and per plan: one line per segment, its points the marts' rows
    lines = traces(page, "nps")
    assert {(t["meta"]["period_grain"], t["meta"]["segment_type"], t["meta"]["segment_value"]) for t in lines} == set(
        zip(trend["period_grain"], trend["segment_type"], trend["segment_value"], strict=True))
    for t in lines:
        m = t["meta"]
        rows = trend[(trend["period_grain"] == m["period_grain"]) & (trend["segment_type"] == m["segment_type"])
                     & (trend["segment_value"] == m["segment_value"])].sort_values("period_start")
        assert t["x"] == [iso(d) for d in rows["period_start"]]
        assert t["y"] == [float(v) for v in rows["nps"]]  # exact: no rounding in the chart data
        assert [c[1] for c in t["customdata"]] == [float(v) for v in rows["margin_of_error"]]
    assert len(data["nps_trend"]) == len(trend)

    # segment comparison: the latest quarter's every segment, flags as in the marts
    quarter = quarter_of(day)
    latest = nbs[(nbs["period_grain"] == "quarter") & (nbs["period_start"] == quarter)]
    assert len(latest) > 10
    shown = {(r["segment_type"], r["segment_value"]): r for r in data["segment_comparison"]}
    assert set(shown) == set(zip(latest["segment_type"], latest["segment_value"], strict=True))
    for _, row in latest.iterrows():
        s = shown[(row["segment_type"], row["segment_value"])]
        assert s["nps"] == float(row["nps"]) and s["margin_of_error"] == float(row["margin_of_error"])
        assert s["nps_change"] == num(row["nps_change"])
        assert s["change_is_significant"] == (None if pd.isna(row["change_is_significant"])
                                              else bool(row["change_is_significant"]))
    (points,) = traces(page, "segments")
    assert sorted(points["x"]) == sorted(float(v) for v in latest["nps"])
    flagged = latest[(latest["change_exceeds_margin_of_error"] == True)  # noqa: E712 (null = not flagged)
                     | (latest["change_is_significant"] == True)]  # noqa: E712
    assert page.count('<tr class="significant">') + page.count('<tr class="exceeds">') >= len(flagged)

    # recovery funnel: the overall rows per quarter and follow-up bucket
    rec = _query(url, "select * from marts.detractor_recovery where period_grain = 'quarter' "
                      f"and segment_type = 'overall' and period_start <= '{day}'")
    funnel = {t["meta"]["column"]: t for t in traces(page, "funnel")}
    assert set(funnel) == {"detractors", "with_next_response", "recovered", "fully_recovered"}
    n_bars = len(funnel["detractors"]["y"])
    assert n_bars == len(rec)
    for column, t in funnel.items():
        # the axis shows short labels (≤ 24 h, ...); the trace's meta keeps the mart's bucket per bar
        assert len(t["x"][1]) == len(t["meta"]["buckets"])
        got = {(q, b): v for q, b, v in zip(t["x"][0], t["meta"]["buckets"], t["y"], strict=True)}
        want = {(f"{p.year} Q{(p.month - 1) // 3 + 1}", b): int(v)
                for p, b, v in zip(rec["period_start"], rec["follow_up_bucket"], rec[column], strict=True)}
        assert got == want
    sla = {t["meta"]["column"]: t for t in traces(page, "sla")}
    per_quarter = rec.drop_duplicates("period_start").sort_values("period_start")
    assert sla["sla_24h_attainment"]["y"] == [num(v) for v in per_quarter["sla_24h_attainment"]]

    # theme recurrence heatmap: parent themes x quarters, the marts' mentions and labels
    rt = _query(url, "select * from marts.theme_recurrence where theme_level = 'theme' and not is_no_feedback")
    (heat,) = traces(page, "recurrence")
    quarters = heat["meta"]["quarter_starts"]
    assert quarters == sorted({iso(q) for q in rt["quarter_start"]})
    for theme_id, zrow, label in zip(heat["meta"]["theme_ids"], heat["z"], heat["y"], strict=True):
        rows = rt[rt["theme_id"] == theme_id].set_index(rt[rt["theme_id"] == theme_id]["quarter_start"].map(iso))
        assert label.startswith(rows["theme_label"].iloc[0])
        assert zrow == [int(rows.loc[q, "mentions"]) if q in rows.index else None for q in quarters]
    assert len(heat["meta"]["theme_ids"]) == rt["theme_id"].nunique()

    # this month's alerts, the queues, the themes at stake
    alerts = _query(url, f"select * from marts.theme_alerts where month_start = '{day.replace(day=1)}'")
    assert sorted((a["theme_id"], a["detractor_mentions"]) for a in data["theme_alerts"]) == sorted(
        zip(alerts["theme_id"].astype(int), alerts["detractor_mentions"].astype(int), strict=True))
    for kind in ("detractor", "promoter"):
        queue = _query(url, f"select * from marts.{kind}_queue order by queue_position limit {report.QUEUE_TOP}")
        assert [r["response_id"] for r in data[f"{kind}_queue"]] == list(queue["response_id"])
        assert [r["account_arr"] for r in data[f"{kind}_queue"]] == [num(v) for v in queue["account_arr"]]
    impact = _query(url, "select * from marts.theme_impact where theme_level = 'theme' and segment_type = 'overall' "
                         f"and not is_no_feedback and quarter_start = '{quarter}'")
    top = impact.sort_values(["nps_points_at_stake", "theme_id"], ascending=[False, True]).head(report.IMPACT_TOP)
    (bars,) = traces(page, "impact")
    assert bars["meta"]["theme_ids"] == [int(t) for t in top["theme_id"]]
    assert bars["x"] == [float(v) for v in top["nps_points_at_stake"]]
    assert bars["y"] == list(top["theme_label"])


class _Loads(HTMLParser):
    """Every URL the page would fetch when opened: src/href/srcset/data of loading elements, CSS url()."""

    LOADING = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"), "iframe": ("src",),
               "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",), "embed": ("src",),
               "object": ("data",), "image": ("href", "xlink:href"), "use": ("href", "xlink:href")}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[int] = []
        self._tag = ""

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        for name, value in attrs:
            if value and (name in self.LOADING.get(tag, ()) or name == "style"):
                self.urls.append(value)
        if tag == "script":
            self.scripts.append(0)

    def handle_data(self, data):
        if self._tag == "style":
            self.urls.extend(re.findall(r"url\(([^)]*)\)|@import\s+\S+", data))
        if self._tag == "script" and self.scripts:
            self.scripts[-1] += len(data)

    def handle_endtag(self, tag):
        self._tag = ""


def test_the_page_loads_nothing_from_the_network_and_inlines_plotly_once(page):
    loads = _Loads()
    loads.feed(page)
    remote = [u for u in loads.urls if re.search(r"(https?:)?//|url\(", u.strip(), re.I)]
    assert remote == []
    # plotly.js once (its banner, and one multi-megabyte script), and every chart drawn by it
    assert page.count("* plotly.js v") == 1
    assert sum(1 for size in loads.scripts if size > 1_000_000) == 1
    assert len(figures(page)) == page.count('class="plotly-graph-div"') >= 7
    assert "@media print" in page


def test_cli_writes_the_stable_and_dated_copies_and_renders_an_earlier_report(pipeline, tmp_path, page):
    url = pipeline[0]
    day = marts_day(url)
    assert cli_main(["report"]) == 0
    latest = report.latest_path()
    assert latest == config.data_dir() / "reports" / "latest.html"
    assert latest.read_text(encoding="utf-8") == page  # the same marts render the same page
    assert report.dated_path(day).read_text(encoding="utf-8") == page

    earlier = quarter_of(day) - timedelta(days=1)  # the last day of the previous quarter
    out = tmp_path / "earlier.html"
    assert cli_main(["report", "--as-of", earlier.isoformat(), "--out", str(out)]) == 0
    old = out.read_text(encoding="utf-8")
    assert old != page and report.dated_path(earlier).read_text(encoding="utf-8") == old
    assert latest.read_text(encoding="utf-8") == page  # an earlier report never replaces the newest
    data = embedded(old)
    assert data["report_date"] == earlier.isoformat() and f"as of {earlier.isoformat()}" in old
    assert data["nps_trend"] and max(r["period_start"] for r in data["nps_trend"]) <= earlier.isoformat()
    assert {r["period_start"] for r in data["segment_comparison"]} == {quarter_of(earlier).isoformat()}
    assert data["detractor_queue"] is None and "cannot be rolled back" in old
    nbs = _query(url, "select * from marts.nps_by_segment where period_grain = 'quarter' "
                      f"and segment_type = 'overall' and period_start <= '{earlier}' order by period_start")
    (line,) = [t for t in traces(old, "nps") if t["meta"]["period_grain"] == "quarter"
               and t["meta"]["segment_type"] == "overall"]
    assert line["y"] == [float(v) for v in nbs["nps"]]

    assert cli_main(["report", "--as-of", (day + timedelta(days=1)).isoformat()]) == 2  # after the marts


def test_each_published_run_wrote_its_report_next_to_its_validation_results(pipeline):
    from nps_airflow.quality.report import result_dir

    url = pipeline[0]
    runs = _query(url, "select run_id, as_of from ops.published_builds order by publish_id")
    assert len(runs) >= 2
    for run_id in runs["run_id"]:
        folder = result_dir(run_id, config.gx_project_root())
        assert (folder / "report.json").exists(), "the validation results of the run"
        assert (folder / "report.html").exists(), f"no report for {run_id} in {folder}"
    newest = result_dir(runs["run_id"].iloc[-1], config.gx_project_root()) / "report.html"
    assert embedded(newest.read_text(encoding="utf-8"))["report_date"] == marts_day(url).isoformat()
    assert Path(report.latest_path()).exists()
