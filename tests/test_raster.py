"""The renderer: a pure function of (system, settings, keys), robust to degenerate systems."""

import hashlib

import numpy as np
import pytest

from raysweep.fractal import IFS, Renderer, RenderSettings, fill_rate, render, sample_ifs

SYSTEM = sample_ifs(2, 3.5, np.random.default_rng(0))


def digest(img: np.ndarray) -> str:
    return hashlib.sha256(img.tobytes()).hexdigest()


def test_same_inputs_give_the_same_bytes():
    a = render(SYSTEM, RenderSettings(), mask_key=11, map_key=22)
    b = Renderer(RenderSettings()).render(SYSTEM, 11, 22)
    out = np.full((512, 512), 255, np.uint8)  # poisoned: every pixel must be written
    c = Renderer(RenderSettings()).render(SYSTEM, 11, 22, out=out)
    assert c is out
    assert digest(a) == digest(b) == digest(c)


def test_keys_change_the_image():
    base = render(SYSTEM, mask_key=1, map_key=1)
    assert digest(render(SYSTEM, mask_key=2, map_key=1)) != digest(base)
    assert digest(render(SYSTEM, mask_key=1, map_key=2)) != digest(base)


def test_image_is_gray_on_black_with_a_plausible_fill():
    img = render(SYSTEM, RenderSettings(gray=127), 3, 4)
    assert img.dtype == np.uint8 and img.shape == (512, 512)
    assert set(np.unique(img)) == {0, 127}
    assert 0.005 < fill_rate(img) < 0.9
    assert fill_rate(img) == np.count_nonzero(img) / img.size


@pytest.mark.parametrize("size,pad", [(8, 1), (32, 2), (64, 6), (224, 6), (512, 6), (97, 3)])
@pytest.mark.parametrize("draw", ["patch", "point"])
def test_any_size_stays_inside_the_pad(size, pad, draw):
    img = render(SYSTEM, RenderSettings(size=size, pad=pad, iterations=20_000, draw=draw), 5, 6)
    assert img.shape == (size, size)
    margin = pad - 1 if draw == "patch" else pad  # a patch reaches one pixel past its point
    inner = np.zeros_like(img, dtype=bool)
    inner[margin : size - margin, margin : size - margin] = True
    assert img[~inner].max(initial=0) == 0
    assert img.max() > 0


@pytest.mark.parametrize("iterations", [1, 3, 5, 1001])
def test_any_iteration_count(iterations):
    img = render(SYSTEM, RenderSettings(size=64, pad=2, iterations=iterations, draw="point"), 0, 0)
    assert 1 <= np.count_nonzero(img) <= iterations


def test_point_mode_draws_single_pixels_and_patches_draw_more():
    point = render(SYSTEM, RenderSettings(draw="point", iterations=2000), 1, 1)
    patch = render(SYSTEM, RenderSettings(draw="patch", iterations=2000), 1, 1)
    assert np.count_nonzero(point) <= 2000
    assert np.count_nonzero(patch) > np.count_nonzero(point)


def test_map_choices_depend_on_the_map_key_only():
    # Two constant maps: the orbit is exactly the sequence of map choices, drawn as two pixels
    # in point mode. Different constants and different mask keys: the same picture.
    a = IFS([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]], [0.5, 0.5])
    b = IFS([[0, 0, 0, 0, -3, 2], [0, 0, 0, 0, 5, 7]], [0.5, 0.5])
    s = RenderSettings(size=16, pad=1, iterations=64, draw="point")
    ra, rb = Renderer(s), Renderer(s)
    assert digest(ra.render(a, 1, 9)) == digest(rb.render(b, 2, 9))


def test_map_probabilities_are_honoured():
    # map 0 sends everything to (0, 0), map 1 to (1, 1): with p = (0.9, 0.1) the chaos game
    # visits the right pixel about 10% of the time. Count visits with 1-point images.
    far = IFS([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]], [0.9, 0.1])
    s = RenderSettings(size=8, pad=1, iterations=4, draw="point")
    hits = sum(np.count_nonzero(Renderer(s).render(far, 0, key)) for key in range(2000))
    # 4 points: the image has 1 pixel if all 4 choices agree, else 2 (with equal constants, 1)
    p_both = 1 - 0.9**4 - 0.1**4
    assert abs((hits - 2000) / 2000 - p_both) < 0.05


@pytest.mark.parametrize(
    "coeffs",
    [
        [[3, 0, 0, 3, 1, 1], [2, 1, 1, 2, 0, 0]],  # expanding: the orbit overflows to inf / nan
        [[0, 0, 0, 0, 0.5, 0.5], [0, 0, 0, 0, 0.5, 0.5]],  # every point identical
        [[1, 0, 0, 0, 0.1, 0], [1, 0, 0, 0, -0.1, 0]],  # a line: y constant
        [[np.nan, 0, 0, 1, 0, 0], [1, 0, 0, 1, 0, 0]],  # non-finite parameters
    ],
)
def test_degenerate_or_non_finite_orbits_do_not_crash(coeffs):
    img = render(IFS(coeffs, [0.5, 0.5]), RenderSettings(size=64, pad=2, iterations=5000), 1, 2)
    assert img.shape == (64, 64)
    assert img.dtype == np.uint8
    assert set(np.unique(img)) <= {0, 127}


def test_n_maps_other_than_two():
    for n in (1, 3, 6):
        ifs = sample_ifs(n, 0.75 * n + 0.5, np.random.default_rng(n))
        assert render(ifs, RenderSettings(size=64, pad=2, iterations=5000), 1, 1).max() == 127


@pytest.mark.parametrize(
    "settings,expected",
    [
        (RenderSettings(size=64, pad=2, iterations=20000), "b6998e8e8e033b429c6bdb72b1f9382c6002bf0cf1df5371b54956c9983c5bef"),
        (RenderSettings(size=512), "dcdb301a6ae83978cf9738c48839f4b22a1ab3403f112fe865e47b9ee0f2069b"),
        (RenderSettings(size=97, pad=3, iterations=1001, draw="point"), "79dcb966d11ce0998d50f6808ea970ed135a76784a79e4247263b203285d55d7"),
        # the release's framing (data.framing=release): the origin fitted and drawn, patches one pixel off
        (
            RenderSettings(size=64, pad=4, iterations=20000, framing="release"),
            "67840bd02e3f035099cec9d26245f5f2b6fb9d2d3cd57cd2178483560201edbe",
        ),
        (RenderSettings(size=512, framing="release"), "0b9ff4def429f10c933984ee1c0ec2b37fbfa33e422c9bec815bc361d2d51aec"),
        (
            RenderSettings(size=97, pad=3, iterations=1001, draw="point", framing="release"),
            "92d46b6bfaee27869b1b83072fcaa7aaeca53633c9434e90fb09d478c7c4657b",
        ),
    ],
)
def test_golden_bytes(settings, expected):
    """The renderer's output is pinned: the same bytes on every machine and numba/LLVM build.
    A failure here means images (and so every dataset checksum) changed: bump
    raysweep.render.spec.ENGINE_VERSION if that was intended."""
    assert digest(render(SYSTEM, settings, 11, 22)) == expected
