"""data.source=real: loading one image (path, file://, s3://, http(s)://, skimage:NAME), its
representations, the per-class warps, and one-line errors for every bad input."""

import hashlib
import io
import json
import os

import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage.color import rgb2gray

from raysweep.config import ConfigError, DataConfig
from raysweep.fractal import RenderFailure
from raysweep.render import create_source
from raysweep.render.real import (
    SKIMAGE_IMAGES,
    RealClassImage,
    RealImageClasses,
    apply_warp,
    image_digest,
    load_image,
    pixel_coords,
    represent,
    warp_coordinates,
)

WARPS = ("affine", "polynomial", "elastic")


def real(**kw) -> DataConfig:
    base = dict(source="real", image="skimage:camera", representation="gray", warp="affine", delta=0.1, L=6, size=64)
    return DataConfig(**{**base, **kw})


def digest(img: np.ndarray) -> str:
    return hashlib.sha256(img.tobytes()).hexdigest()


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def assert_one_line_error(exc: pytest.ExceptionInfo, uri: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg
    assert uri in msg
    assert "Traceback" not in msg
    return msg


# ---------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", SKIMAGE_IMAGES)
def test_each_bundled_skimage_image_loads_offline_as_rgb_uint8(name):
    img = load_image(f"skimage:{name}")
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    assert min(img.shape[:2]) >= 64
    assert img.max() > img.min()  # not blank


def test_gray_sources_become_three_equal_channels_and_alpha_is_dropped(tmp_path):
    cam = load_image("skimage:camera")
    np.testing.assert_array_equal(cam[..., 0], skimage.data.camera())
    assert np.array_equal(cam[..., 0], cam[..., 1]) and np.array_equal(cam[..., 1], cam[..., 2])
    rgba = skimage.data.logo()
    assert rgba.shape[2] == 4
    path = tmp_path / "logo.png"
    path.write_bytes(png_bytes(rgba))
    for uri in (str(path), path.as_uri()):  # plain path and file://
        np.testing.assert_array_equal(load_image(uri), rgba[..., :3])


def test_image_digest_is_the_pixels_identity(tmp_path):
    path = tmp_path / "camera.png"
    path.write_bytes(png_bytes(skimage.data.camera()))
    d = image_digest(str(path))
    assert len(d) == 64 and d == image_digest("skimage:camera")  # same pixels, different uri
    assert d != image_digest("skimage:moon")
    assert RealImageClasses(real()).digest == d


@pytest.mark.parametrize(
    "make, what",
    [
        (lambda p: str(p / "missing.png"), "no such file"),
        (lambda p: str(p), "directory"),
        (lambda p: _write(p / "corrupt.png", np.random.default_rng(0).bytes(4096)), "not an image"),
        (lambda p: _write(p / "empty.png", b""), "empty"),
        (lambda p: _write(p / "truncated.png", png_bytes(skimage.data.camera())[:3000]), "cannot be decoded"),
        (lambda p: "skimage:lily", "choose one of: astronaut"),
        (lambda p: "skimage:no_such_image", "choose one of: astronaut"),
        (lambda p: "ftp://example.com/x.png", "unsupported scheme"),
        (lambda p: "s3://bucket-only/", "s3://bucket/key"),
    ],
)
def test_bad_images_are_one_line_config_errors_naming_the_uri(tmp_path, make, what):
    uri = make(tmp_path)
    with pytest.raises(ConfigError) as exc:
        load_image(uri)
    assert what in assert_one_line_error(exc, uri)


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without permission bits")
def test_unreadable_file_is_a_config_error(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(png_bytes(skimage.data.camera()))
    path.chmod(0)
    with pytest.raises(ConfigError) as exc:
        load_image(str(path))
    assert "permission denied" in assert_one_line_error(exc, str(path))


def test_a_bad_image_fails_when_the_source_is_created(tmp_path):
    uri = str(tmp_path / "missing.png")
    with pytest.raises(ConfigError) as exc:
        create_source(real(image=uri))
    assert_one_line_error(exc, uri)


# ---------------------------------------------------------------------------------------------- http


def test_http_image_loads(http_root):
    base, root = http_root
    (root / "camera.png").write_bytes(png_bytes(skimage.data.camera()))
    img = load_image(f"{base}/camera.png")
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 1], skimage.data.camera())


def test_http_404_and_unreachable_are_config_errors(http_root):
    base, root = http_root
    (root / "notes.txt").write_text("not an image")
    for uri, what in [
        (f"{base}/missing.png", "404"),
        (f"{base}/notes.txt", "not an image"),
        ("http://127.0.0.1:9/closed.png", "unreachable"),  # discard port: nothing listens
        ("http://[bad-url/x.png", "not a valid URL"),
    ]:
        with pytest.raises(ConfigError) as exc:
            load_image(uri)
        assert what in assert_one_line_error(exc, uri)


# ---------------------------------------------------------------------------------------------- s3


@pytest.fixture
def s3(s3_endpoint, aws_env, no_proxy):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"real-{os.getpid()}-{np.random.default_rng().integers(1 << 30)}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="images/camera.png", Body=png_bytes(skimage.data.camera()))
    return bucket


def test_s3_image_loads_through_the_aws_environment(s3):
    img = load_image(f"s3://{s3}/images/camera.png")
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 2], skimage.data.camera())
    src = create_source(real(image=f"s3://{s3}/images/camera.png"))
    assert src.digest == image_digest("skimage:camera")


def test_s3_missing_key_bucket_and_credentials_are_config_errors(s3, monkeypatch):
    cases = [
        (f"s3://{s3}/images/missing.png", "no such key"),
        (f"s3://{s3}/images", "prefix"),
        (f"s3://{s3}-absent/images/camera.png", "no such bucket"),
    ]
    for uri, what in cases:
        with pytest.raises(ConfigError) as exc:
            load_image(uri)
        assert what in assert_one_line_error(exc, uri)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    uri = f"s3://{s3}/images/camera.png"
    with pytest.raises(ConfigError) as exc:
        load_image(uri)
    assert "credentials" in assert_one_line_error(exc, uri)


# ---------------------------------------------------------------------------------------------- representations


def test_representations_shapes_luminance_and_binary_edges():
    rgb = load_image("skimage:astronaut")
    color = represent(rgb, "rgb", 96)
    gray = represent(rgb, "gray", 96)
    edges = represent(rgb, "canny", 96)
    assert color.shape == (96, 96, 3) and gray.shape == (96, 96) and edges.shape == (96, 96)
    assert color.dtype == gray.dtype == edges.dtype == np.uint8
    assert np.abs(gray.astype(int) - np.rint(rgb2gray(color) * 255).astype(int)).max() <= 1
    assert set(np.unique(edges)) == {0, 255}
    assert 0.02 < np.mean(edges > 0) < 0.4


def test_centre_crop_keeps_the_middle_of_a_wide_image():
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, 100:200] = 200  # exactly the centre square
    out = represent(wide, "gray", 50)
    assert out.shape == (50, 50) and out.min() >= 195


def test_the_source_represents_once_and_renders_its_representation():
    for rep, shape in [("rgb", (64, 64, 3)), ("gray", (64, 64)), ("canny", (64, 64))]:
        src = RealImageClasses(real(representation=rep))
        assert src.image.shape == shape and src.num_classes == 6
        (item,) = src.render_class(0)
        assert isinstance(item, RealClassImage)
        assert item.image.shape == shape and item.image.dtype == np.uint8
        assert (item.label, item.instance) == (0, 0)
        if rep == "canny":
            assert set(np.unique(item.image)) <= {0, 255}


# ---------------------------------------------------------------------------------------------- warps


@pytest.mark.parametrize("warp", WARPS)
def test_warps_are_deterministic_per_class_and_differ_between_classes(warp):
    cfg = real(warp=warp)
    src = RealImageClasses(cfg)
    forward = [digest(src.render_class(label)[0].image) for label in range(cfg.L)]
    again = [digest(src.render_class(label)[0].image) for label in range(cfg.L)]
    fresh = RealImageClasses(cfg)
    backward = [digest(fresh.render_class(label)[0].image) for label in reversed(range(cfg.L))][::-1]
    assert forward == again == backward
    assert len(set(forward)) == cfg.L
    other_seed = RealImageClasses(real(warp=warp, seed=1))
    assert not {digest(other_seed.render_class(label)[0].image) for label in range(cfg.L)} & set(forward)


@pytest.mark.parametrize("warp", WARPS)
def test_larger_delta_moves_pixels_more(warp):
    def mean_change(delta):
        src = RealImageClasses(real(warp=warp, delta=delta, L=8))
        ref = src.image.astype(float)
        return np.mean([np.abs(src.render_class(label)[0].image - ref).mean() for label in range(8)])

    small, large = mean_change(0.05), mean_change(0.5)
    assert 0 < small < large / 2


@pytest.mark.parametrize("warp", WARPS)
def test_params_are_json_and_reproduce_the_image(warp):
    src = RealImageClasses(real(warp=warp, representation="rgb"))
    (item,) = src.render_class(3)
    params = item.params
    assert isinstance(params, list) and all(isinstance(row, list) for row in params)
    assert json.loads(json.dumps(params)) == params
    expected_shape = {"affine": (2, 3), "polynomial": (2, 10), "elastic": (10, 5)}[warp]
    assert np.asarray(params).shape == expected_shape
    np.testing.assert_array_equal(apply_warp(src.image, warp, json.loads(json.dumps(params))), item.image)


def test_polynomial_and_elastic_displacements_are_about_delta():
    delta, size = 0.2, 65
    g = pixel_coords(size)
    x, y = np.meshgrid(g, g)
    for warp, low, high in [("polynomial", 0.8, 1.05), ("elastic", 0.3, 1.6)]:
        src = RealImageClasses(real(warp=warp, delta=delta))
        for label in range(src.num_classes):
            xs, ys = warp_coordinates(warp, src.warp_params(label), size)
            assert low * delta < np.hypot(xs - x, ys - y).max() <= high * delta
        if warp == "elastic":
            assert np.abs(np.asarray(src.warp_params(0))).max() <= delta


def test_identity_like_warp_at_tiny_delta_keeps_the_image():
    src = RealImageClasses(real(delta=1e-6))
    (item,) = src.render_class(0)
    assert np.abs(item.image.astype(int) - src.image.astype(int)).max() <= 1


def test_labels_out_of_range_and_instances_are_checked():
    src = RealImageClasses(real())
    with pytest.raises(IndexError):
        src.render_class(6)
    with pytest.raises(IndexError):
        src.render_class(-1)
    with pytest.raises(ConfigError):
        real(instances=2)


def test_fill_rate_rejection_raises_render_failure():
    src = create_source(real(representation="gray", delta=0.9, fill_threshold=0.99, max_redraws=2))
    with pytest.raises(RenderFailure) as exc:
        src.render_class(0)
    msg = str(exc.value)
    assert "\n" not in msg and "class 0" in msg and "data.fill_threshold=0.99" in msg and "max_redraws=2" in msg


def test_rejected_warps_are_redrawn_deterministically():
    cfg = real(delta=0.9, fill_threshold=0.75, L=12)
    source = RealImageClasses(cfg)
    items = [source.render_class(label)[0] for label in range(cfg.L)]
    # the threshold is relative to the unwarped image's fill
    assert all(item.fill >= 0.75 * source.unwarped_fill for item in items)
    assert any(item.redraws > 0 for item in items)
    again = RealImageClasses(cfg)
    for item in items:
        (same,) = again.render_class(item.label)
        assert same.redraws == item.redraws and digest(same.image) == digest(item.image)
