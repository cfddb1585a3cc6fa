"""The HTML report opened in headless Chromium: every figure must decode to a real image.

A copy of the report gets a small script that, once the page has loaded, writes each <img>'s
``complete`` and ``naturalWidth``/``naturalHeight`` into the DOM; Chromium's ``--dump-dom`` prints
it.  A deliberately corrupt control image proves the check can fail.  Needs Debian's chromium at
/usr/bin/chromium: without it the test fails (it is not skipped), saying how to install it.
"""

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from browser import chromium

from cellrig.analysis.parallel import analyse_campaign
from cellrig.analysis.report import render_report
from cellrig.analysis.synthetic import FadeCurve, SyntheticAbuse, SyntheticCell, write_abuse_run, write_run
from cellrig.storage import open_campaign

CONTROL = "broken-control"
CHECK = """
<pre id="img-check"></pre>
<script>
window.addEventListener("load", () => {
  const found = [...document.images].map((img) => ({
    alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
  }));
  document.getElementById("img-check").textContent = JSON.stringify(found);
});
</script>
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A small campaign's report: two chemistries at two temperatures, pulses, and one abuse test."""
    folder = tmp_path_factory.mktemp("browser")
    base = SyntheticCell(cycles=120, samples=60)
    for i in range(4):
        cell = replace(
            base,
            cell_id=f"B{i}",
            chemistry="NMC811/graphite" if i < 2 else "LFP/graphite",
            ambient=25.0 if i % 2 else 45.0,
            fade=FadeCurve(knee=50 + 10 * i, eol=90 + 15 * i),
            seed=i + 1,
        )
        write_run(folder / f"{cell.cell_id}.h5", cell)
    write_abuse_run(folder / "N1.h5", SyntheticAbuse(cell_id="N1", duration=1800.0, seed=3))
    page = render_report(analyse_campaign(open_campaign(folder), scheduler="synchronous"), "browser check", 3.0)
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def rendered_images(chromium: Path, page: Path, tmp_path: Path) -> list[dict]:
    """Load ``page`` in headless Chromium and get what it says about each image."""
    result = subprocess.run(
        [
            str(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r'<pre id="img-check">(.*?)</pre>', result.stdout, re.S)
    assert result.returncode == 0 and found and found.group(1), (
        f"chromium failed (exit {result.returncode}) or wrote no image check:\n{result.stderr[-2000:]}"
    )
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_every_plot_of_the_report_renders_in_a_browser(report, tmp_path):
    browser = chromium()
    html = report.read_text(encoding="utf-8")
    expected = re.findall(r'<img alt="([^"]*)"', html)
    assert len(expected) >= 7  # fade, voltage, dQ/dV, DCIR, temperature, consistency, the abuse test
    checked = tmp_path / "checked.html"
    broken = f'<img alt="{CONTROL}" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB">'
    checked.write_text(html.replace("</body>", broken + CHECK + "</body>"), encoding="utf-8")
    images = rendered_images(browser, checked, tmp_path)
    by_alt = {i["alt"]: i for i in images}
    assert by_alt[CONTROL]["width"] == 0, "the check cannot tell a broken image from a good one"
    plots = [i for i in images if i["alt"] != CONTROL]
    assert [i["alt"] for i in plots] == expected
    failed = [i["alt"] for i in plots if not (i["complete"] and i["width"] > 100 and i["height"] > 100)]
    assert not failed, f"plots that did not render in Chromium: {failed}"
