"""The report end to end: Markdown, JSON and a self-contained HTML page that headless Chromium loads without errors,
showing the tables and every embedded image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dualseg.cli import main
from dualseg.report.build import build_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000"]
# Injected into a copy of the page: record script errors, failed loads and console errors, then after the load
# event write what the page shows into the DOM, which --dump-dom prints.
PROBE = """<script>
window.__problems = [];
window.addEventListener('error', e => window.__problems.push('error: ' + (e.message || (e.target && e.target.tagName))),
                        true);
const consoleError = console.error;
console.error = (...args) => { window.__problems.push('console: ' + args.join(' ')); consoleError(...args); };
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const result = {
    problems: window.__problems,
    images: images.length,
    loaded: images.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length,
    tables: document.querySelectorAll('table').length,
    rows: Array.from(document.querySelectorAll('table')).map(t => t.tBodies[0].rows.length),
    bold: document.querySelectorAll('td strong').length,
    headings: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
  };
  const out = document.createElement('pre');
  out.id = 'probe-result';
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def report_dir(two_runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report(two_runs, out, split="test", metrics=["dice", "iou", "precision"], cases=1)
    return out


def test_report_files_and_markdown(report_dir, two_runs):
    md = (report_dir / "report.md").read_text()
    assert md.startswith("# Segmentation report: small_a, small_b (test split)")
    assert "| method | dice | iou | precision |" in md and "small_b (B) vs small_a (A)" in md
    assert re.search(r"\| small_[ab] \| \*\*0\.\d{4} ± 0\.\d{4}\*\* \|", md)  # a best mean ± std in bold
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (report_dir / link).is_file(), link
    record = json.loads((report_dir / "report.json").read_text())
    assert record["metrics"] == ["dice", "iou", "precision"] and record["reference"] == "small_a"
    assert {r["class"] for r in record["tests"][0]["rows"]} == {"mean", "membrane", "cell_interior"}
    assert [o["kind"] for o in record["overlays"]["small_a"]] == ["best", "worst"]
    assert (report_dir / "curves/all_runs.png").is_file() and (report_dir / "curves/small_b.png").is_file()


def test_html_is_self_contained(report_dir):
    page = (report_dir / "index.html").read_text()
    assert "<script" not in page and not re.search(r"(src|href)=\"(?!data:)", page)
    assert page.count("<img ") == 2 + 2 + 2 + 1  # 2 runs x (best, worst), one curve each, the combined curves


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (CI installs Debian's)")
def test_html_in_headless_chromium(report_dir, tmp_path):
    page = (report_dir / "index.html").read_text().replace("<head>", "<head>\n" + PROBE, 1)
    probe_page = tmp_path / "page.html"
    probe_page.write_text(page)
    profile = tmp_path / "profile"
    proc = subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                           probe_page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout)
    assert match, f"the page did not finish loading: rc {proc.returncode}, stderr {proc.stderr[-2000:]}"
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["problems"] == []
    assert result["images"] == 7 and result["loaded"] == 7
    # runs, main, pooled, 2 classes, 1 paired-test table; rows: 2 methods each, tests: 3 classes x 3 metrics
    assert result["tables"] == 6 and result["rows"] == [2, 2, 2, 2, 2, 9] and result["bold"] >= 5
    assert result["headings"] == ["Runs", "Results", "Paired significance tests", "Training curves",
                                  "Best and worst cases"]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]  # the page logs nothing
    assert not console, console


def test_report_and_compare_commands(two_runs, tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["report", *map(str, two_runs), "-o", str(out), "--split", "test", "--metrics", "dice",
               "--names", "U-Net,U-Net fast", "--cases", "0", "--reference", "U-Net fast"])
    assert rc == 0 and "U-Net (B) vs U-Net fast (A)" in (out / "report.md").read_text()
    assert not (out / "overlays").exists()
    capsys.readouterr()
    assert main(["compare", *map(str, two_runs), "--split", "test", "--metrics", "dice", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["class"], r["metric"]) for r in rows] == [("mean", "dice"), ("membrane", "dice"),
                                                          ("cell_interior", "dice")]
    assert main(["compare", str(two_runs[0]), str(two_runs[1]), "--split", "val"]) == 2
    assert "has no val evaluation" in capsys.readouterr().err
    shutil.rmtree(out)


def test_runs_without_checkpoints_still_get_tables(two_runs, tmp_path, capsys):
    copies = []
    for run in two_runs:
        copies.append(tmp_path / run.name)
        shutil.copytree(run, copies[-1], ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    files = build_report(copies, tmp_path / "rep", split="test", metrics=["dice"], cases=1)
    md = files["markdown"].read_text()
    assert "small_a: no case overlays (" in md and "| small_b |" in md
    assert "warning: no case overlays for small_a" in capsys.readouterr().err
