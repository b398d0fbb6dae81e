"""Regenerate docs/report.png: the examples' HTML report as Chromium draws it at 1280 px.

    python docs/report_screenshot.py        # needs Debian's chromium (apt-get install chromium fonts-noto-cjk)

Runs ``pytest examples/`` with an HTML report and the committed baseline (embedded local server,
offline), opens the list of passing cases in a copy of the page (the examples all pass, so the
picture shows more than a closed list), and takes a headless screenshot.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "report.png"
WINDOW = "1280,1360"


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium on PATH: apt-get install chromium fonts-noto-cjk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "judge.html"
        subprocess.run([sys.executable, "-m", "pytest", "examples/", "-q", "-p", "no:cacheprovider",
                        "--judge-cache=off", f"--judge-report={page}", "--judge-baseline=examples/baseline.csv",
                        "--judge-max-drop=1"], cwd=ROOT, check=True)
        shown = Path(tmp) / "shown.html"
        shown.write_text(page.read_text("utf-8").replace("<details id='others'>", "<details id='others' open>"),
                         "utf-8")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={Path(tmp) / 'profile'}", "--hide-scrollbars", f"--window-size={WINDOW}",
                        f"--screenshot={OUT}", shown.as_uri()], check=True, capture_output=True)
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
