"""Open an HTML report the way a reader does, offline, in headless Chromium: print what
went wrong (console errors, script errors, dialogs, any attempt to reach the network),
count the chart marks, and save a screenshot (and a PDF, as printing gives it).

    python scripts/report_screenshot.py results/<run-id>/report.html docs/report.png
    python scripts/report_screenshot.py report.html shot.png --height 2400 --pdf out.pdf

Exit 1 when the page logged an error, opened a dialog or asked for anything but itself.
Needs Playwright (the dev extra) and a Chromium: the system's (Debian's ``chromium``,
found on PATH or given by $CHROMIUM) or Playwright's own (``playwright install chromium``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKS = """() => {
  const counts = {};
  for (const mark of document.querySelectorAll('[id^="mark-"]')) {
    const box = mark.getBoundingClientRect();
    const chart = mark.id.replace(/-[0-9]+$/, "");
    counts[chart] = counts[chart] || {marks: 0, drawn: 0};
    counts[chart].marks += 1;
    if (box.width > 0 || box.height > 0) counts[chart].drawn += 1;
  }
  return counts;
}"""
"""Each chart's marks (``mark-<chart>-<n>``) and how many of them have a size on screen."""


@dataclass
class Visit:
    """What happened while the page was open."""

    page: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Console errors and warnings, script errors, dialogs and network requests."""
        return [
            *(f"console: {line}" for line in self.console),
            *(f"script error: {line}" for line in self.errors),
            *(f"dialog: {line}" for line in self.dialogs),
            *(f"request: {url}" for url in self.requests),
        ]

    def marks(self) -> dict[str, dict[str, int]]:
        return self.page.evaluate(MARKS)


def chromium() -> str | None:
    """The Chromium to drive: $CHROMIUM, else one on PATH, else None (Playwright's own)."""
    named = os.environ.get("CHROMIUM")
    if named:
        return named
    found = (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome"))
    return next((path for path in found if path), None)


@contextmanager
def offline_page(report: Path, width: int = 1280, height: int = 900) -> Iterator[Visit]:
    """``report`` open in headless Chromium with the network off: every request other
    than the file itself is refused and recorded, every dialog dismissed and recorded."""
    from playwright.sync_api import sync_playwright

    url = report.resolve().as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium())
        try:
            context = browser.new_context(offline=True, viewport={"width": width, "height": height})
            page = context.new_page()
            visit = Visit(page)

            def route(request_route: Any) -> None:
                if request_route.request.url == url:
                    request_route.continue_()
                    return
                visit.requests.append(request_route.request.url)
                request_route.abort()

            def dialog(box: Any) -> None:
                visit.dialogs.append(f"{box.type}: {box.message}")
                box.dismiss()

            page.route("**/*", route)
            page.on(
                "console",
                lambda m: m.type in ("error", "warning") and visit.console.append(m.text),
            )
            page.on("pageerror", lambda error: visit.errors.append(str(error)))
            page.on("dialog", dialog)
            page.goto(url, wait_until="load")
            page.wait_for_timeout(100)  # anything scheduled at load has run
            yield visit
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="an HTML report (report.html, --html FILE)")
    parser.add_argument("screenshot", type=Path, help="PNG to write")
    parser.add_argument("--width", type=int, default=1280, help="viewport width (px)")
    parser.add_argument("--height", type=int, help="clip the page to this height (px)")
    parser.add_argument("--pdf", type=Path, help="also print the page to this PDF")
    args = parser.parse_args()
    if not args.report.is_file():
        print(f"error: {args.report} does not exist: give a report.html", file=sys.stderr)
        return 2
    with offline_page(args.report, args.width) as visit:
        if args.height:
            clip = {"x": 0, "y": 0, "width": args.width, "height": args.height}
            visit.page.screenshot(path=str(args.screenshot), full_page=True, clip=clip)
        else:
            visit.page.screenshot(path=str(args.screenshot), full_page=True)
        if args.pdf:
            visit.page.pdf(path=str(args.pdf), print_background=True)
        marks = visit.marks()
        problems = visit.problems()
    for chart, count in sorted(marks.items()):
        print(f"{chart}: {count['marks']} marks, {count['drawn']} drawn")
    size = args.report.stat().st_size
    print(f"{args.report}: {size / 1024:.0f} KiB; screenshot {args.screenshot}")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
