"""Open a report page in headless Chromium and say what it rendered.

A copy of the page gets a small probe script (the page itself has none): when the page
has loaded, it counts the images, lists those that did not decode (`naturalWidth` 0) and
the errors the page raised, and writes them into the DOM, which Chromium's `--dump-dom`
prints. Used by tests/test_report_browser.py, and by hand on a real run:

    .venv/bin/python -m tests.browser_check MODEL_DETAILS/report.html [--screenshot out.png]
"""

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(
  e.message || ("failed to load " + (e.target && e.target.alt))), true);
window.addEventListener("load", () => {
  const images = [...document.images];
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    images: images.length,
    broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
    errors: window.__errors,
    sections: [...document.querySelectorAll("section")].map(s => s.id)});
  document.body.appendChild(probe);
});
</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000"]


def chromium():
    """The Chromium binary, or None where none is installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def check(page_path, screenshot=None, timeout=180):
    """{"images", "broken", "errors", "sections"} of the page at `page_path` as Chromium
    renders it; with `screenshot`, also a PNG of the page (unprobed) there."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("no chromium on PATH (Debian: apt-get install -y chromium)")
    with open(page_path, encoding="utf-8") as f:
        text = f.read()
    with tempfile.TemporaryDirectory() as scratch:
        probed = os.path.join(scratch, "probed.html")
        with open(probed, "w", encoding="utf-8") as f:
            f.write(text.replace("<head>", "<head>" + PROBE, 1))
        profile = ["--user-data-dir=" + os.path.join(scratch, "profile")]
        dom = subprocess.run([binary, *FLAGS, *profile, "--dump-dom", "file://" + probed],
                             capture_output=True, text=True, timeout=timeout).stdout
        if screenshot:
            subprocess.run([binary, *FLAGS, *profile, "--window-size=1200,2400",
                            "--screenshot=" + os.path.abspath(screenshot),
                            "file://" + os.path.abspath(page_path)],
                           capture_output=True, timeout=timeout, check=True)
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    if not match:
        raise RuntimeError("the page did not finish loading in Chromium")
    return json.loads(html.unescape(match.group(1)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("page")
    p.add_argument("--screenshot", help="also write a PNG of the page here")
    args = p.parse_args(argv)
    result = check(args.page, args.screenshot)
    print(json.dumps(result, indent=2))
    return 1 if result["broken"] or result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
