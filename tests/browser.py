"""Open a local HTML file (the morning report) in Debian's chromium, driven by playwright, and say what a
reader's browser would see: console errors, uncaught exceptions, every network request the page makes
(each aborted, so nothing leaves the machine), how many plotly charts there are and how many drew, the
page's width at a laptop viewport, a full-page screenshot and a printed PDF.

playwright's own browser download is never used: the browser is Debian's `chromium` package
(`apt-get install chromium`; deploy/ensure-chromium.sh, run by `make test`), given to playwright as
`executable_path`. playwright 1.65 drives it over CDP like its own build.

    python -m tests.browser REPORT.html OUT.png   # OUT.png: top of the page at 1366x768, OUT-full.png: all
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

VIEWPORT = {"width": 1366, "height": 768}
CHROMIUM_FALLBACK = Path("/usr/bin/chromium")
# a chart counts as drawn when plotly made it a .js-plotly-plot and put its SVG in it
_CHARTS_JS = """() => {
  const divs = [...document.querySelectorAll('.plotly-graph-div, .js-plotly-plot')];
  return {total: divs.length,
          rendered: divs.filter(d => d.classList.contains('js-plotly-plot') && d.querySelector('.main-svg')).length};
}"""


def find_chromium() -> str | None:
    """Debian's chromium: `chromium` on PATH, else /usr/bin/chromium; None when neither exists."""
    found = shutil.which("chromium")
    if found:
        return found
    if CHROMIUM_FALLBACK.is_file() and os.access(CHROMIUM_FALLBACK, os.X_OK):
        return str(CHROMIUM_FALLBACK)
    return None


@dataclass
class PageCheck:
    """What the page did in the browser."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every request but the page's own, all aborted
    charts: int = 0
    charts_rendered: int = 0
    scroll_width: int = 0
    viewport_width: int = VIEWPORT["width"]
    screenshot: Path | None = None
    pdf: Path | None = None
    sandboxed: bool = True

    @property
    def overflows(self) -> bool:
        """The page is wider than the viewport (a horizontal scroll bar)."""
        return self.scroll_width > self.viewport_width


def _launch(playwright, executable: str):
    """Chromium headless, with its sandbox where it can have one.

    Chromium refuses to run as root with its sandbox ("Running as root without --no-sandbox is not
    supported"), and containers often lack the user namespaces the sandbox needs ("Chromium sandboxing
    failed!"): as root, or when the sandboxed launch fails, it runs without (`chromium_sandbox=False`,
    playwright then passes --no-sandbox). The page is a local file the tests wrote and every network
    request is aborted, so the sandbox protects nothing here. NPS_CHROMIUM_NO_SANDBOX=1 forces it off.
    Returns (browser, sandboxed)."""
    kwargs = {"executable_path": executable, "headless": True, "timeout": 60_000}
    no_sandbox = os.environ.get("NPS_CHROMIUM_NO_SANDBOX") == "1" or (hasattr(os, "geteuid") and os.geteuid() == 0)
    if not no_sandbox:
        try:
            return playwright.chromium.launch(chromium_sandbox=True, **kwargs), True
        except Exception as exc:  # noqa: BLE001 (playwright raises its own Error; any launch failure retries)
            if "sandbox" not in str(exc).lower():
                raise
    return playwright.chromium.launch(chromium_sandbox=False, **kwargs), False


def check_page(html: Path | str, screenshot: Path | str | None = None, pdf: Path | str | None = None, *,
               top_screenshot: Path | str | None = None, executable: str | None = None,
               timeout_ms: int = 60_000) -> PageCheck:
    """Load `html` (a local file) at 1366x768 in Debian chromium and report what happened.

    `screenshot`: a full-page PNG; `top_screenshot`: the first 1366x768 screen only; `pdf`: the page
    printed with print media (A4, backgrounds on). Every request other than the file itself is aborted
    and recorded in `requests`."""
    from playwright.sync_api import sync_playwright

    executable = executable or find_chromium()
    if not executable:
        raise FileNotFoundError("Debian's chromium is not installed (apt-get install chromium)")
    path = Path(html).resolve()
    url = path.as_uri()
    result = PageCheck(url=url)

    with sync_playwright() as p:
        browser, result.sandboxed = _launch(p, executable)
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)

            def on_console(msg) -> None:
                if msg.type == "error":
                    loc = msg.location or {}
                    where = f" ({loc.get('url', '')}:{loc.get('lineNumber', '')})" if loc.get("url") else ""
                    result.console_errors.append(msg.text + where)

            page.on("console", on_console)
            page.on("pageerror", lambda err: result.page_errors.append(f"{err.name}: {err.message}"))

            def route(r) -> None:
                if r.request.url == url:
                    r.continue_()
                else:
                    result.requests.append(f"{r.request.method} {r.request.url}")
                    r.abort()

            page.route("**/*", route)
            page.goto(url, wait_until="load")
            try:  # plotly draws after load; wait until every chart div has its SVG (or give up)
                page.wait_for_function(f"(() => {{ const c = ({_CHARTS_JS})(); return c.rendered >= c.total; }})",
                                       timeout=min(timeout_ms, 30_000))
            except Exception:  # noqa: BLE001 (a timeout: the counts below say which charts did not draw)
                pass
            page.wait_for_timeout(300)  # responsive relayouts after the first draw
            counts = page.evaluate(_CHARTS_JS)
            result.charts, result.charts_rendered = counts["total"], counts["rendered"]
            result.scroll_width = page.evaluate(
                "Math.max(document.documentElement.scrollWidth, document.body ? document.body.scrollWidth : 0)")

            if top_screenshot:
                result_top = Path(top_screenshot)
                result_top.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(result_top), full_page=False)
            if screenshot:
                result.screenshot = Path(screenshot)
                result.screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(result.screenshot), full_page=True)
            if pdf:
                result.pdf = Path(pdf)
                result.pdf.parent.mkdir(parents=True, exist_ok=True)
                page.emulate_media(media="print")
                page.pdf(path=str(result.pdf), format="A4", print_background=True)
            context.close()
        finally:
            browser.close()
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.browser REPORT.html OUT.png`: OUT.png is the top of the page at 1366x768 (for the
    README), OUT-full.png the whole page; prints what the browser saw."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tests.browser REPORT.html OUT.png", file=sys.stderr)
        return 2
    html, out = Path(args[0]), Path(args[1])
    if not html.is_file():
        print(f"no such file: {html}", file=sys.stderr)
        return 2
    full = out.with_name(f"{out.stem}-full{out.suffix or '.png'}")
    r = check_page(html, screenshot=full, top_screenshot=out)
    print(f"{out}: top of the page at {VIEWPORT['width']}x{VIEWPORT['height']}\n{full}: the full page")
    print(f"charts rendered: {r.charts_rendered}/{r.charts}; page width {r.scroll_width}px"
          f"{' (overflows)' if r.overflows else ''}; sandboxed: {r.sandboxed}")
    for label, items in (("console errors", r.console_errors), ("page errors", r.page_errors),
                         ("network requests (aborted)", r.requests)):
        print(f"{label}: {len(items)}")
        for item in items:
            print(f"  {item}")
    ok = not (r.console_errors or r.page_errors or r.requests or r.overflows) and r.charts_rendered == r.charts
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
