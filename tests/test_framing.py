"""data.framing: the release's framing (the start point (0, 0) fitted and drawn, patches one pixel off
their points) beside today's bbox framing (the points' own bounding box), its config, its dataset
address and the paper budget that uses it."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from raysweep.config import ConfigError, DataConfig, load_config
from raysweep.fractal import IFS, FractalDBClasses, OFDBClasses, OnePFracClasses, Renderer, RenderSettings, render, sample_ifs
from raysweep.render import create_source
from raysweep.render.spec import data_config, resolve_spec
from raysweep.experiment import load_experiment

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(size=64, pad=6, iterations=20_000)

# Four constant maps, one per corner of [5, 6]^2: the attractor is those four points, far from the
# origin, and every point of the orbit lies exactly on it (no transient).
CORNERS = IFS([[0, 0, 0, 0, x, y] for x, y in [(5, 5), (6, 5), (5, 6), (6, 6)]], [0.25] * 4)


def pixels(img: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(img))}


def test_bbox_fills_the_frame_with_the_attractor_and_release_squeezes_it_beside_the_origin():
    size, pad = 32, 4
    bbox = render(CORNERS, RenderSettings(size=size, pad=pad, iterations=200, draw="point"), 1, 2)
    release = render(CORNERS, RenderSettings(size=size, pad=pad, iterations=200, draw="point", framing="release"), 1, 2)
    # bbox: the four points are the box's corners, on the pad's corners [4, 27]
    assert pixels(bbox) == {(4, 4), (4, 27), (27, 4), (27, 27)}
    # release: the fitted box is [0, 6]^2 (the origin is one of the points), mapped onto [pad, size - pad]
    # = [4, 28]: x -> 4 + x * 24 / 6, so 5 -> 24 and 6 -> 28; y likewise, then flipped (row = 31 - iy).
    # The attractor fills the top-right 4 x 4 pixels; the origin is drawn at the bottom-left corner.
    assert pixels(release) == {(27, 4), (7, 24), (7, 28), (3, 24), (3, 28)}


def test_release_patches_sit_one_pixel_off_their_points():
    size, pad = 32, 4
    img = render(CORNERS, RenderSettings(size=size, pad=pad, iterations=200, framing="release"), 1, 2)
    # the release pastes a patch's corner at (ix + 1, iy + 1) before flipping its image: the patch of
    # the point at pixel (r, c) covers rows r-3..r-1 and columns c+1..c+3, never the point's own pixel
    points = [(27, 4), (7, 24), (7, 28), (3, 24), (3, 28)]
    blocks = np.zeros_like(img, dtype=bool)
    for r, c in points:
        block = img[r - 3 : r, c + 1 : c + 4]
        assert block.shape == (3, 3) and block.max() == 127  # every mask has at least one pixel
        blocks[r - 3 : r, c + 1 : c + 4] = True
    assert img[~blocks].max() == 0
    assert img[27, 4] == 0  # the origin's own pixel: its patch is up and to the right of it
    # bbox centres each patch on its point's pixel
    centred = render(CORNERS, RenderSettings(size=size, pad=pad, iterations=200), 1, 2)
    expected = np.zeros_like(img, dtype=bool)
    for r, c in [(4, 4), (4, 27), (27, 4), (27, 27)]:
        assert centred[r - 1 : r + 2, c - 1 : c + 2].max() == 127
        expected[r - 1 : r + 2, c - 1 : c + 2] = True
    assert centred[~expected].max() == 0


def test_release_counts_the_origin_as_the_first_of_its_points():
    s = dict(size=16, pad=1, draw="point", framing="release")
    # one point: the origin alone, a flat box on both axes, centred (column size // 2, flipped row)
    assert pixels(render(CORNERS, RenderSettings(iterations=1, **s), 0, 0)) == {(15 - 8, 8)}
    # two points: the origin and one corner of the attractor, the box spanning both
    two = pixels(render(CORNERS, RenderSettings(iterations=2, **s), 0, 0))
    assert len(two) == 2 and (14, 1) in two  # the origin at (pad, pad), flipped: row 16 - 1 - 1


@pytest.mark.parametrize("size,pad", [(16, 4), (64, 6), (97, 5), (512, 6)])
@pytest.mark.parametrize("draw", ["patch", "point"])
@pytest.mark.parametrize(
    "coeffs",
    [
        None,  # a sigma-sampled system
        [[0, 0, 0, 0.5, 0, 0.3], [0, 0, 0, 0.5, 0, -0.3]],  # x == 0 everywhere: a flat axis, centred
        [[3, 0, 0, 3, 1, 1], [2, 1, 1, 2, 0, 0]],  # expanding: the orbit overflows, the origin stays
        [[np.nan, 0, 0, 1, 0, 0], [1, 0, 0, 1, 0, 0]],  # non-finite parameters
    ],
)
def test_release_framing_stays_inside_its_margins(size, pad, draw, coeffs):
    ifs = sample_ifs(2, 3.5, np.random.default_rng(0)) if coeffs is None else IFS(coeffs, [0.5, 0.5])
    settings = RenderSettings(size=size, pad=pad, iterations=20_000, draw=draw, framing="release")
    out = np.full((size, size), 255, np.uint8)  # poisoned: every pixel must be written
    img = Renderer(settings).render(ifs, 5, 6, out=out)
    # points land in [pad, size - pad] on both axes; a patch reaches 3 pixels right of and above its point
    rows = (pad - 4, size - 2 - pad) if draw == "patch" else (pad - 1, size - 1 - pad)
    cols = (pad + 1, size - pad + 3) if draw == "patch" else (pad, size - pad)
    inner = np.zeros_like(img, dtype=bool)
    inner[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = True
    assert set(np.unique(img)) <= {0, 127}
    assert img[~inner].max(initial=0) == 0
    assert img.max() == 127  # the origin at least is always drawn


def release_points(xs: np.ndarray, ys: np.ndarray, size: int, pad: int) -> set[tuple[int, int]]:
    """The release's fit and point drawing, restated: shift a negative minimum to 0, scale by
    (size - 2 pad) / (max - min), add pad, truncate to uint16, flip the image upside down."""
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)
    if xs.min() < 0:
        xs -= xs.min()
    if ys.min() < 0:
        ys -= ys.min()
    ix = np.uint16(xs / (xs.max() - xs.min()) * float(size - 2 * pad) + float(pad))
    iy = np.uint16(ys / (ys.max() - ys.min()) * float(size - 2 * pad) + float(pad))
    return {(size - 1 - int(r), int(c)) for r, c in zip(iy, ix)}


def test_release_framing_is_the_release_fit_of_the_orbit_and_the_origin():
    size, pad, n = 128, 6, 5000
    settings = RenderSettings(size=size, pad=pad, iterations=n, draw="point", framing="release")
    for seed in range(8):
        ifs = sample_ifs(2, 3.5, np.random.default_rng(seed))
        renderer = Renderer(settings)
        img = renderer.render(ifs, 1, 2)
        xs, ys = renderer._xs[:n].copy(), renderer._ys[:n].copy()  # the points just drawn
        assert xs[0] == ys[0] == 0.0  # point 0 is the start point, as in the release
        assert pixels(img) == release_points(xs, ys, size, pad)
        # the fit spans [pad, size - pad] on both axes, and the origin's pixel is drawn
        cols, rows = np.nonzero(img.any(axis=0))[0], np.nonzero(img.any(axis=1))[0]
        assert (cols[0], cols[-1], rows[0], rows[-1]) == (pad, size - pad, pad - 1, size - 1 - pad)
        bbox = render(ifs, RenderSettings(size=size, pad=pad, iterations=n, draw="point"), 1, 2)
        assert not np.array_equal(img, bbox)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.framing=diagonal"], r"^data.framing='diagonal' is not allowed; choose one of: bbox, release$"),
        (
            ["data.framing=release", "data.pad=3"],
            r"^data.pad=3 is out of range; allowed with data.draw=patch and data.framing=release: >= 4$",
        ),
        (
            ["data.framing=release", "data.draw=point", "data.pad=0"],
            r"allowed with data.draw=point and data.framing=release: >= 1$",
        ),
        (["data.pad=0"], r"^data.pad=0 is out of range; allowed with data.draw=patch: >= 1$"),
    ],
)
def test_bad_framing_or_pad_is_one_line_naming_what_is_allowed(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(overrides)
    assert "\n" not in str(err.value)


def test_framing_defaults_to_bbox_and_release_renders_at_the_release_pad():
    assert load_config().data.framing == "bbox"
    assert load_config(["data.framing=release", "data.pad=4"]).data.framing == "release"
    with pytest.raises(ValueError, match="framing='diagonal' is not allowed"):
        RenderSettings(framing="diagonal")


@pytest.mark.parametrize(
    "source,address",
    [  # the addresses these configs had before data.framing existed
        ("1p-frac", "be18c616d3f290033efdeedaa7915e86f7753ba2a6ea48a03ac12a2fd130734b"),
        ("fractaldb", "2dd84e06ec451eca1f2e94dc6d0bb5c8c9653b1644893d159f32239f92d5447e"),
        ("ofdb", "f79c9a24c3994cb64600550102f31ffacf8c5b9691bc401fbe7d57e58fac8926"),
    ],
)
def test_bbox_datasets_keep_their_address_and_release_gets_its_own(source, address):
    bbox = resolve_spec(DataConfig(source=source))
    assert bbox.hash == address and "framing" not in bbox.data
    assert data_config(bbox).framing == "bbox"
    cfg = DataConfig(source=source, framing="release")
    release = resolve_spec(cfg)
    assert release.data["framing"] == "release" and release.hash != address
    assert data_config(release) == cfg


def test_framing_does_not_enter_a_real_image_dataset():
    real = dict(source="real", image="skimage:camera", L=4, size=32)
    assert resolve_spec(DataConfig(**real)).hash == resolve_spec(DataConfig(framing="release", **real)).hash


def test_release_framing_changes_the_pixels_not_the_class_systems():
    bbox = OnePFracClasses(DataConfig(L=4, **SMALL))
    release = OnePFracClasses(DataConfig(L=4, framing="release", **SMALL))
    assert release.renderer.settings.framing == "release"
    for label in range(4):
        a, b = bbox.render_class(label)[0], release.render_class(label)[0]
        # the same systems unless a fill-rate redraw differs (the framing changes fill rates)
        if a.redraws == b.redraws == 0:
            assert a.ifs == b.ifs
        assert not np.array_equal(a.image, b.image)


@pytest.mark.parametrize("source,cls", [("fractaldb", FractalDBClasses), ("ofdb", OFDBClasses)])
def test_fractaldb_and_ofdb_render_with_the_release_framing(source, cls):
    classes = create_source(DataConfig(source=source, L=3, framing="release", **SMALL))
    assert type(classes) is cls and classes.renderer.settings.framing == "release"
    bbox = create_source(DataConfig(source=source, L=3, **SMALL))
    assert not np.array_equal(classes.render_class(0)[0].image, bbox.render_class(0)[0].image)


def _paper_experiments() -> list[Path]:
    found = [
        p for p in sorted((ROOT / "experiments").glob("*.yaml")) if "paper" in (yaml.safe_load(p.read_text()).get("budgets") or {})
    ]
    assert len(found) >= 6
    return found


@pytest.mark.parametrize("path", _paper_experiments(), ids=lambda p: p.name)
def test_the_paper_budget_uses_the_release_framing_and_sigma_jitter(path):
    paper = load_experiment(str(path), ["budget=paper"])  # validates every grid value and variant
    for cfg in paper.configs_to_check():
        assert (cfg.data.framing, cfg.data.sigma_jitter) == ("release", 0.1)
        assert cfg.data.sigma + cfg.data.sigma_jitter < 3 * cfg.data.n_maps
    small = load_experiment(str(path), [])
    assert {(c.data.framing, c.data.sigma_jitter) for c in small.configs_to_check()} == {("bbox", 0.0)}
