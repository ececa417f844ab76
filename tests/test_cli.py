"""The commands as users run them: real subprocesses, real files."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_preview_writes_a_contact_sheet(tmp_path):
    out = tmp_path / "grid.png"
    proc = run("raysweep.render", "preview", "data.sigma=3.5", "data.delta=0.1", "data.L=16",
               "data.size=128", "data.iterations=20000", f"out={out}", "tile=64", "cols=6")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    with Image.open(out) as im:
        im.verify()
    with Image.open(out) as im:
        arr = np.asarray(im)
    assert im.format == "PNG"
    # 17 tiles (base + 16 classes) in 6 columns: 3 rows of 64 px tiles with 2 px gaps
    assert arr.shape == (3 * 64 + 4 * 2, 6 * 64 + 7 * 2)
    lit = (arr > 0) & (arr != 60)  # 60 is the gap colour, 0 the black background
    assert lit.mean() > 0.03  # fractal pixels are there


@pytest.mark.slow
def test_preview_of_fractaldb(tmp_path):
    out = tmp_path / "fdb.png"
    proc = run("raysweep.render", "preview", "data.source=fractaldb", "data.L=4", "data.instances=2",
               "data.size=64", "data.pad=2", "data.iterations=10000", f"out={out}")
    assert proc.returncode == 0, proc.stderr
    arr = np.asarray(Image.open(out))
    # 8 tiles (4 categories x 2 instances, no base system: FractalDB has none) in a 3 x 3 grid of
    # 128 px tiles with 2 px gaps; the ninth cell stays the background
    assert arr.shape == (3 * 128 + 4 * 2, 3 * 128 + 4 * 2)
    cells = [arr[2 + r * 130 : 2 + r * 130 + 128, 2 + c * 130 : 2 + c * 130 + 128] for r in range(3) for c in range(3)]
    assert all(((cell > 0) & (cell != 60)).mean() > 0.02 for cell in cells[:8]), "every tile shows a fractal"
    assert (cells[8] == 60).all(), "only 8 tiles: no base tile for FractalDB"
    # the two instances of a category differ (re-weighted coefficient, new patch masks)
    assert not np.array_equal(cells[0], cells[1])


@pytest.mark.slow
def test_bad_input_is_one_line_and_no_traceback(tmp_path):
    cases = {
        "data.sigma=6.5": "data.sigma=6.5 is out of range; allowed: the open interval (0, 6)",
        "data.delta=1.2": "data.delta=1.2 is out of range; allowed: the open interval (0, 1)",
        "data.L=1": "data.L=1 is out of range; allowed: >= 2",
        "data.n_maps=0": "data.n_maps=0 is out of range; allowed: >= 1",
        "data.size=4": "data.size=4 is out of range; allowed: >= 8",
        "data.iterations=0": "data.iterations=0 is out of range; allowed: >= 1",
        "data.source=mnist": "data.source='mnist' is not allowed",
        "data.sigmx=2": "unknown config key 'data.sigmx'; did you mean 'data.sigma'?",
    }
    for arg, message in cases.items():
        proc = run("raysweep.render", "preview", arg, f"out={tmp_path / 'x.png'}")
        assert proc.returncode == 2, arg
        lines = proc.stderr.strip().splitlines()
        assert lines == [f"error: {message}"] or (len(lines) == 1 and message in lines[0]), proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_unknown_command():
    proc = run("raysweep.render", "paint")
    assert proc.returncode == 2 and "unknown command 'paint'; choose one of: preview" in proc.stderr


@pytest.mark.slow
def test_bench_render_json_smoke():
    proc = run("raysweep.bench", "render", "--json", "--seconds", "0.05", "--repeats", "1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["images_per_second_per_core"] > 0
    assert set(result["sizes"]) == {"512", "224", "64"}


@pytest.mark.slow
def test_bench_data_json_smoke():
    """The data benchmark end to end at a tiny size: its own local Ray, the spawned process pool,
    streams with one and two render actors into a consumer actor."""
    proc = run("raysweep.bench", "data", "--json", "--images", "768", "--px", "32", "--repeats", "1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["images"] == 768 and set(result["sizes"]) == {"32"}
    figures = result["sizes"]["32"]
    assert set(figures["images_per_second"]) == {"plain", "warm_2proc", "stream_1actor", "stream_2actor"}
    assert all(v > 0 for v in figures["images_per_second"].values())
    ips = figures["images_per_second"]
    assert result["stream_efficiency"] == figures["stream_efficiency"] == round(ips["stream_2actor"] / (2 * ips["plain"]), 3) or \
        abs(figures["stream_efficiency"] - ips["stream_2actor"] / (2 * ips["plain"])) < 0.01
    assert result["fixed_cost_s"] == figures["fixed_cost_s"]["stream_1actor"]


def test_bench_bad_sizes_are_one_line():
    proc = run("raysweep.bench", "data", "--px", "64,ten")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: argument --px: '64,ten': expected comma-separated sizes >= 2, e.g. 64,224"]


def test_render_actor_imports_leave_out_pil():
    """Render actors import the pipeline; PIL (only needed to decode) would add ~0.1 s to each one's start."""
    code = "import sys, raysweep.dataset.pipeline, raysweep.render.sources; print('PIL' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
