"""The report page: written by a real sweep (and by ``python -m raysweep.report`` while it runs),
read from local and ``s3://`` run directories, and opened in a real headless Chromium (Debian's,
driven by Playwright: no browser download)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared_material import skip_unless_shared
from test_tune import Cli, _finished_trials, experiment

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def report_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "raysweep.report", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright. Where it is missing the test is skipped, except under
    RAYSWEEP_REQUIRE_BROWSER=1 (set by .ci/run, which installs it), where that is a failure."""
    path = os.environ.get("RAYSWEEP_CHROMIUM") or next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if not path or sync_playwright is None:
        why = "no Chromium on PATH (apt-get install chromium)" if not path else "playwright is not installed"
        if os.environ.get("RAYSWEEP_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path):
    """Load the page; return it and every console message / page error it produced."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, problems


@pytest.fixture(scope="module")
def finished_sweep(ray_cluster, tmp_path_factory):
    """A real 3-trial delta sweep (a paper study); the report is also written WHILE it runs."""
    tmp_path = tmp_path_factory.mktemp("report")
    exp = experiment(tmp_path, "delta_small", {"study": "delta", "data.delta": {"grid": [0.01, 0.1, 0.2]},
                                               "score.extra_probes": [1, 2]})
    run_dir = tmp_path / "runs" / "sweeps" / "delta_small"
    cli = Cli(tmp_path, exp)
    deadline = time.time() + 600
    while time.time() < deadline and cli.poll() is None and not _finished_trials(run_dir):
        time.sleep(0.5)
    assert _finished_trials(run_dir), f"no trial finished: {cli.stderr()[-3000:]}"
    during = report_cli(run_dir)
    in_progress = (run_dir / "report.html").read_text() if during.returncode == 0 else during.stderr
    finished_then = cli.poll() is not None
    rc, out, err = cli.wait()
    assert rc == 0, err[-4000:]
    return {"tmp": tmp_path, "run_dir": run_dir, "during": during, "in_progress": in_progress, "finished_then": finished_then,
            "stdout": out, "stderr": err}


def test_report_written_while_the_sweep_runs(finished_sweep):
    during = finished_sweep["during"]
    assert during.returncode == 0, during.stderr[-3000:]
    assert during.stdout.strip().splitlines()[-1].endswith("report.html")
    page = finished_sweep["in_progress"]
    assert "status-done" in page, "the finished trial is shown"
    if not finished_sweep["finished_then"]:
        assert "status-running" in page, "unfinished trials are shown as running"


def test_the_sweep_writes_the_report_and_it_loads_cleanly_in_chromium(finished_sweep, browser):
    run_dir = finished_sweep["run_dir"]
    assert f"report: {run_dir / 'report.html'}" in finished_sweep["stderr"]
    page, problems = open_page(browser, run_dir / "report.html")
    try:
        page.screenshot(path=str(finished_sweep["tmp"] / "report.png"), full_page=True)
        assert (finished_sweep["tmp"] / "report.png").read_bytes()[:4] == b"\x89PNG"
        assert problems == []
        assert page.locator("#trials-table tbody tr").count() == 3, "one row per trial"
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(images) >= 1 + 1 + 3, "a plot, the pre-training curves and a contact sheet per dataset"
        assert all(ok and w > 0 and h > 0 for _, ok, w, h in images), images
        assert all(src.startswith("data:") for src in page.evaluate("Array.from(document.images).map(i => i.src)")), "self-contained"
        # the paper's Table 5 beside ours, marked as the published reference
        published = page.locator("#paper tr.published").inner_text()
        assert "published reference (Table 5)" in published and "19.9" in published and "84.2" in published and "83.4" in published
        assert page.locator("#paper thead th").all_inner_texts()[1:] == ["0.01", "0.1", "0.2"]
        # extra probes and the resolved config are on the page
        heads = page.locator("#trials-table thead th").all_inner_texts()
        assert "probe1_top1" in heads and "probe2_top1" in heads
        assert "vit_tiny_patch16_224" in page.locator("#config").inner_text()
        # sorting: click top1 twice -> descending
        col = heads.index("data.delta")
        page.locator("#trials-table thead th").nth(col).click()
        asc = [float(t) for t in page.locator(f"#trials-table tbody tr td:nth-child({col + 1})").all_inner_texts()]
        page.locator("#trials-table thead th").nth(col).click()
        desc = [float(t) for t in page.locator(f"#trials-table tbody tr td:nth-child({col + 1})").all_inner_texts()]
        assert asc == sorted(asc) and desc == sorted(desc, reverse=True) and len(asc) == 3
    finally:
        page.close()


def test_report_of_an_s3_run_directory(finished_sweep, s3_bucket, aws_env, browser):
    """The finished run (and its datasets) on a real S3 API: the report reads it there and writes
    report.html there."""
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": aws_env})
    local_runs = finished_sweep["tmp"] / "runs"
    (finished_sweep["run_dir"] / "report.html").unlink()
    fs.put(str(local_runs), f"{s3_bucket[5:]}/runs", recursive=True)
    remote = f"{s3_bucket}/runs/sweeps/delta_small"
    proc = report_cli(remote)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == f"{remote}/report.html"
    local = finished_sweep["tmp"] / "from-s3.html"
    fs.get(f"{remote[5:]}/report.html", str(local))
    text = local.read_text()
    assert remote in text and text.count("class='status-done'") == 3
    assert "not rendered (yet)" not in text, "the datasets were found next to the run, on S3"
    page, problems = open_page(browser, local)
    try:
        assert problems == []
        assert page.locator("#trials-table tbody tr").count() == 3
    finally:
        page.close()


@pytest.mark.slow
def test_bad_run_directories_are_one_line_errors(tmp_path, aws_env):
    proc = report_cli(tmp_path / "nowhere")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nowhere'} is not a sweep's run directory: it has no experiment.json " \
                                  "(a sweep's run directory is printed as the last line of python -m raysweep.tune)"
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    proc = report_cli("s3://some-bucket/runs/sweeps/x", env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read the run directory s3://some-bucket/runs/sweeps/x: "), proc.stderr
    assert report_cli().returncode == 2


def test_published_reference_is_the_method_pages_table():
    """The report's Table 5 numbers are the ones in ../shared/docs/1p-frac.md §8 (read from it)."""
    from raysweep.report.paper import REFERENCES, published_value

    doc = Path(__file__).resolve().parents[2] / "shared" / "docs" / "1p-frac.md"
    skip_unless_shared(doc, "the method page")
    lines = doc.read_text().splitlines()
    head = next(line for line in lines if line.startswith("| Δ"))
    row = next(line for line in lines if line.startswith("| top-1"))
    deltas = [float(c) for c in head.strip("|").split("|")[1:]]
    top1 = [float(c) for c in row.strip("|").split("|")[1:]]
    ref = REFERENCES["delta"]
    assert {d: published_value(ref, d) for d in deltas} == dict(zip(deltas, top1))
    assert published_value(ref, "0.10") == 84.2 and published_value(ref, 0.3) is None
    assert set(REFERENCES) == {"baselines", "delta", "sigma", "L", "real_image", "linear_probe", "table8"}


def test_table8_reference_is_the_method_pages_finding_in_words():
    """The method page states Table 8's finding (L = 21,000, ViT-B, ImageNet-1k, beats ImageNet-21k)
    without numbers: the report's reference for it is words, never a number of our making."""
    from raysweep.report.paper import REFERENCES, published_value

    doc = Path(__file__).resolve().parents[2] / "shared" / "docs" / "1p-frac.md"
    skip_unless_shared(doc, "the method page")
    line = next(line for line in doc.read_text().splitlines() if "Table 8" in line)
    assert "ViT-B" in line and "21,000" in line and "ImageNet-1k" in line and "ImageNet-21k" in line
    ref = REFERENCES["table8"]
    assert "ViT-B" in ref.finding and "21,000" in ref.finding and "ImageNet-21k" in ref.finding
    assert all(isinstance(v, str) for v in ref.published.values()), "the method page gives no number for Table 8"
    assert "ImageNet-21k" in published_value(ref, "1p-frac") and published_value(ref, "scratch") is None
