"""Single real image instead of a fractal (``data.source=real``): one image, one representation
(RGB, grayscale or Canny edges), and L classes, each one fixed random warp of strength ``data.delta``.

The image comes from a local path (or ``file://``), ``s3://bucket/key`` (fsspec/s3fs, honouring the
standard AWS environment incl. ``AWS_ENDPOINT_URL``), ``http(s)://`` or ``skimage:NAME`` (an image
bundled with scikit-image). Every failure to get it is a one-line :class:`ConfigError`.

Warps act on normalised coordinates ``p = (x, y)`` in ``[-1, 1]^2`` (x to the right, y down, the
image centre at 0) by inverse mapping: output pixel ``p`` shows the represented image at ``T(p)``
(bilinear; outside the image it blends to black). Class ``l``'s warp is drawn from ``stream(seed, REAL_WARP, l, attempt)``,
so a class renders identically alone, in any order, in any process.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raysweep.config.errors import ConfigError, brief
from raysweep.config.schema import DataConfig
from raysweep.fractal.classes import RenderFailure, stream

# stream name of the real-image warps (distinct from the fractal streams 1..6 in fractal.classes)
REAL_WARP = 7

HTTP_TIMEOUT_S = 20.0
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024

# images bundled with scikit-image (each checked to load offline): skimage.data.<name>()
SKIMAGE_IMAGES = (
    "astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee",
    "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry",
    "logo", "microaneurysms", "moon", "page", "retina", "rocket", "shepp_logan_phantom", "text",
)  # fmt: skip

# Rec. 709 luma, as skimage.color.rgb2gray
LUMA = np.array([0.2125, 0.7154, 0.0721])

# monomials of the polynomial warp, in the order of its coefficient rows
POLY_TERMS = ("1", "x", "y", "x^2", "xy", "y^2", "x^3", "x^2y", "xy^2", "y^3")
ELASTIC_GRID = 5  # coarse displacement grid of the elastic warp (nodes at the corners and evenly between)


# ----------------------------------------------------------------------------------------------
# loading


def _fail(uri: str, what: str) -> ConfigError:
    return ConfigError(f"data.image={uri!r}: {what}")


def load_image(uri: str) -> np.ndarray:
    """The image at ``uri`` as RGB uint8 ``(H, W, 3)`` (gray -> 3 equal channels, alpha dropped).

    ``uri``: a local path or ``file://`` URL, ``s3://bucket/key``, ``http(s)://...`` or
    ``skimage:NAME`` (one of :data:`SKIMAGE_IMAGES`). Raises :class:`ConfigError` (one line naming
    ``uri``) when the image cannot be read or decoded.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"data.image={uri!r} is empty; give a path, an s3:// or http(s):// URL, or skimage:NAME")
    uri = uri.strip()
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme == "skimage":
        return _to_rgb(_skimage_array(uri), uri)
    if scheme == "s3":
        data = _read_s3(uri)
    elif scheme in ("http", "https"):
        data = _read_http(uri)
    elif scheme == "file":
        data = _read_local(uri, urllib.request.url2pathname(urllib.parse.urlparse(uri).path))
    elif len(scheme) > 1 and "://" in uri:
        raise _fail(uri, f"unsupported scheme {scheme}://; use a local path, file://, s3://, http(s):// or skimage:NAME")
    else:
        data = _read_local(uri, uri)
    return _decode(data, uri)


def image_digest(uri: str) -> str:
    """sha256 (hex) of the decoded RGB pixels and their shape: the image's identity in a dataset spec."""
    return pixels_digest(load_image(uri))


def pixels_digest(rgb: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(repr(tuple(int(s) for s in rgb.shape)).encode())
    h.update(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
    return h.hexdigest()


def _skimage_array(uri: str) -> np.ndarray:
    name = uri.split(":", 1)[1].strip()
    if name not in SKIMAGE_IMAGES:
        raise _fail(uri, f"unknown skimage image {name!r}; choose one of: {', '.join(SKIMAGE_IMAGES)}")
    import skimage.data

    try:
        return np.asarray(getattr(skimage.data, name)())
    except Exception as exc:  # a broken scikit-image installation
        raise _fail(uri, f"scikit-image could not load {name!r} ({type(exc).__name__}: {brief(exc)})") from None


def _read_local(uri: str, path: str) -> bytes:
    p = Path(os.path.expanduser(path))
    try:
        if p.is_dir():
            raise _fail(uri, "is a directory, not an image file")
        return p.read_bytes()
    except FileNotFoundError:
        raise _fail(uri, "no such file") from None
    except IsADirectoryError:
        raise _fail(uri, "is a directory, not an image file") from None
    except PermissionError:
        raise _fail(uri, "not readable (permission denied)") from None
    except OSError as exc:
        raise _fail(uri, f"cannot be read ({type(exc).__name__}: {brief(exc)})") from None


def _read_http(uri: str) -> bytes:
    from raysweep.storage import DownloadError, download

    chunks: list[bytes] = []
    try:
        download(uri, chunks.append, max_bytes=MAX_DOWNLOAD_BYTES, timeout=HTTP_TIMEOUT_S)
    except DownloadError as exc:
        reason = str(exc)
        if reason.startswith("larger than"):
            reason += "; not an image this platform reads"
        raise _fail(uri, reason) from None
    return b"".join(chunks)


def _read_s3(uri: str) -> bytes:
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    if not bucket or not key or key.endswith("/"):
        raise _fail(uri, "names no object; use s3://bucket/key")
    from raysweep.storage import filesystem

    fs, path = filesystem(uri)
    try:
        size = fs.size(path)
        if size is not None and size > MAX_DOWNLOAD_BYTES:
            raise _fail(uri, f"larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB; not an image this platform reads")
        return fs.cat_file(path)
    except ConfigError:
        raise
    except FileNotFoundError:
        raise _fail(uri, _s3_missing(fs, bucket, key)) from None
    except IsADirectoryError:
        raise _fail(uri, "is a prefix (folder), not an object") from None
    except PermissionError as exc:
        raise _fail(uri, f"access denied; check the AWS credentials and the bucket policy ({brief(exc, 100)})") from None
    except Exception as exc:
        raise _fail(uri, _s3_other(exc)) from None


def _s3_missing(fs, bucket: str, key: str) -> str:
    """Which of bucket or key is missing (one more request; falls back to naming both)."""
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
    except FileNotFoundError:
        return f"no such bucket {bucket!r}"
    except Exception as exc:  # noqa: BLE001 - only used to word the message
        if "NoSuchBucket" in str(exc) or "Not Found" in str(exc) or "404" in str(exc):
            return f"no such bucket {bucket!r}"
        return f"no such object (bucket {bucket!r}, key {key!r})"
    try:
        if fs.isdir(f"{bucket}/{key}"):
            return f"{key!r} in bucket {bucket!r} is a prefix (folder), not an object"
    except Exception:  # noqa: BLE001 - only used to word the message
        pass
    return f"no such key {key!r} in bucket {bucket!r}"


def _s3_other(exc: BaseException) -> str:
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return "no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return f"S3 endpoint unreachable ({brief(exc, 120)}); check AWS_ENDPOINT_URL and the network"
    if name in ("InvalidAccessKeyId", "SignatureDoesNotMatch") or "InvalidAccessKeyId" in str(exc) or "SignatureDoesNotMatch" in str(exc):
        return "bad AWS credentials (access key or secret rejected)"
    return f"S3 read failed ({name}: {brief(exc, 120)})"


def _decode(data: bytes, uri: str) -> np.ndarray:
    from PIL import Image, ImageOps

    if not data:
        raise _fail(uri, "is empty (0 bytes), not an image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(_pil_array(im), uri)
    except ConfigError:
        raise
    except Image.DecompressionBombError as exc:
        raise _fail(uri, f"too large to decode safely ({brief(exc, 100)})") from None
    except Image.UnidentifiedImageError:
        raise _fail(uri, "not an image: PIL cannot identify the format (corrupt, or another kind of file)") from None
    except Exception as exc:  # truncated data, broken headers, ...
        raise _fail(uri, f"not a readable image: the data cannot be decoded ({type(exc).__name__}: {brief(exc, 100)})") from None


def _pil_array(im) -> np.ndarray:
    mode = im.mode
    if mode in ("1", "L", "LA", "RGB", "RGBA"):
        return np.asarray(im)
    if mode.startswith("I") or mode == "F":  # 16/32-bit gray and float images
        return np.asarray(im).astype(np.float64)
    if mode in ("P", "PA"):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))  # CMYK, YCbCr, LAB, HSV, ...


def _to_rgb(arr: np.ndarray, uri: str) -> np.ndarray:
    """Any 2-D or (H, W, C) array as RGB uint8: bool -> 0/255, wider ints and floats rescaled."""
    if arr.ndim == 3 and arr.shape[2] in (2, 4):  # drop alpha
        arr = arr[..., :-1]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or 0 in arr.shape:
        raise _fail(uri, f"has an unsupported shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        if not np.all(np.isfinite(a)):
            a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min()), float(a.max())
        if np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        elif lo < 0.0 or hi > 255.0:
            a = (a - lo) * (255.0 / max(hi - lo, 1e-12))
        arr = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


# ----------------------------------------------------------------------------------------------
# representation


def square_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size x size`` (Lanczos, anti-aliased)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(rgb[top : top + side, left : left + side])
    if side == size:
        return crop
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.LANCZOS))


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance (as skimage.color.rgb2gray), uint8."""
    return np.clip(np.rint(rgb.astype(np.float64) @ LUMA), 0, 255).astype(np.uint8)


def canny_sigma(size: int) -> float:
    """Gaussian sigma of the edge detector: 2 px at 512 px, scaled with the image (at least 1)."""
    return max(1.0, 2.0 * size / 512)


def to_canny(gray: np.ndarray) -> np.ndarray:
    """Binary Canny edges (0/255) of a gray image."""
    from skimage.feature import canny

    edges = canny(gray.astype(np.float64) / 255.0, sigma=canny_sigma(gray.shape[0]))
    return edges.astype(np.uint8) * 255


def represent(rgb: np.ndarray, representation: str, size: int) -> np.ndarray:
    """The image a real source warps: square ``size x size``, as ``rgb`` (H, W, 3), ``gray`` or
    ``canny`` (H, W), uint8."""
    square = square_resize(rgb, size)
    if representation == "rgb":
        return square
    if representation == "gray":
        return to_gray(square)
    if representation == "canny":
        return to_canny(to_gray(square))
    raise ConfigError(f"data.representation={representation!r} is not allowed; choose one of: rgb, gray, canny")


# ----------------------------------------------------------------------------------------------
# warps


def draw_warp(kind: str, delta: float, rng: np.random.Generator) -> list[list[float]]:
    """The parameters of one random warp of strength ``delta`` (JSON-serialisable rows).

    affine: ``[[a, b, tx], [c, d, ty]]`` with ``p' = [[a, b], [c, d]] p + t`` = ``(I + delta M) p + delta t``.
    polynomial: two rows (x', y') of 10 coefficients on :data:`POLY_TERMS`, ``p' = p + C m(p)``, scaled
    so that the largest displacement over a grid of the square is ``delta``.
    elastic: ``2 * ELASTIC_GRID`` rows: the x- then the y-displacement at the coarse nodes (times delta).
    """
    if kind == "affine":
        m = rng.uniform(-1.0, 1.0, size=(2, 2))
        t = rng.uniform(-1.0, 1.0, size=2)
        a = np.eye(2) + delta * m
        return np.column_stack([a, delta * t]).tolist()
    if kind == "polynomial":
        c = rng.uniform(-1.0, 1.0, size=(2, len(POLY_TERMS)))
        g = np.linspace(-1.0, 1.0, 33)
        gx, gy = np.meshgrid(g, g)
        disp = c @ _monomials(gx.ravel(), gy.ravel())
        peak = float(np.sqrt((disp**2).sum(axis=0)).max())
        return (c * (delta / max(peak, 1e-12))).tolist()
    if kind == "elastic":
        grid = rng.uniform(-1.0, 1.0, size=(2, ELASTIC_GRID, ELASTIC_GRID))
        return (delta * grid).reshape(2 * ELASTIC_GRID, ELASTIC_GRID).tolist()
    raise ConfigError(f"data.warp={kind!r} is not allowed; choose one of: affine, elastic, polynomial")


def _monomials(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    one = np.ones_like(x)
    return np.stack([one, x, y, x * x, x * y, y * y, x**3, x * x * y, x * y * y, y**3])


def pixel_coords(size: int) -> np.ndarray:
    """Normalised coordinates of the pixel centres: ``(2 i + 1) / size - 1`` in (-1, 1)."""
    return (2.0 * np.arange(size) + 1.0) / size - 1.0


def _spline_matrix(size: int, nodes: int) -> np.ndarray:
    """(size, nodes): a natural cubic spline through ``nodes`` evenly spaced values on [-1, 1],
    evaluated at the pixel centres (so a coarse grid G upsamples to ``B @ G @ B.T``)."""
    from scipy.interpolate import CubicSpline

    return CubicSpline(np.linspace(-1.0, 1.0, nodes), np.eye(nodes), bc_type="natural")(pixel_coords(size))


def warp_coordinates(kind: str, params, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel samples the input: normalised ``(x', y')``, each ``(size, size)``
    indexed ``[row, col]``."""
    g = pixel_coords(size)
    x, y = np.meshgrid(g, g)  # x varies along columns, y along rows
    p = np.asarray(params, dtype=np.float64)
    if kind == "affine":
        return p[0, 0] * x + p[0, 1] * y + p[0, 2], p[1, 0] * x + p[1, 1] * y + p[1, 2]
    if kind == "polynomial":
        d = p @ _monomials(x.ravel(), y.ravel())
        return x + d[0].reshape(size, size), y + d[1].reshape(size, size)
    if kind == "elastic":
        n = p.shape[1]
        b = _spline_matrix(size, n)
        dx, dy = p[:n], p[n:]
        return x + b @ dx @ b.T, y + b @ dy @ b.T
    raise ConfigError(f"data.warp={kind!r} is not allowed; choose one of: affine, elastic, polynomial")


def apply_warp(image: np.ndarray, kind: str, params, binary: bool = False) -> np.ndarray:
    """Warp ``image`` ((H, W) or (H, W, 3) uint8, square) by inverse mapping with bilinear
    interpolation, black outside. ``binary``: keep a 0/255 image binary (threshold at 127)."""
    from scipy.ndimage import map_coordinates

    size = image.shape[0]
    xs, ys = warp_coordinates(kind, params, size)
    coords = np.stack([((ys + 1.0) * size - 1.0) / 2.0, ((xs + 1.0) * size - 1.0) / 2.0])  # (row, col)
    planes = [image] if image.ndim == 2 else [image[..., k] for k in range(image.shape[2])]
    out = [map_coordinates(pl.astype(np.float32), coords, order=1, mode="grid-constant", cval=0.0, output=np.float32) for pl in planes]
    if binary:
        warped = [np.where(o > 127.0, 255, 0).astype(np.uint8) for o in out]
    else:
        warped = [np.clip(np.rint(o), 0, 255).astype(np.uint8) for o in out]
    return warped[0] if image.ndim == 2 else np.stack(warped, axis=-1)


def fill_of(image: np.ndarray) -> float:
    """Fraction of pixels that are not black (any channel nonzero)."""
    nz = image.any(axis=-1) if image.ndim == 3 else image != 0
    return float(np.count_nonzero(nz)) / nz.size


# ----------------------------------------------------------------------------------------------
# the source


@dataclass
class RealClassImage:
    """One image of one class of a real-image source: the warped represented image."""

    label: int
    instance: int
    image: np.ndarray  # (size, size) or (size, size, 3) uint8
    fill: float  # fraction of nonzero pixels
    redraws: int  # rejected warps before this one was accepted
    params: list[list[float]] = field(default_factory=list)  # the warp (see draw_warp)
    warp: str = "affine"


class RealImageClasses:
    """``data.source=real``: class ``l`` is one fixed random warp (``data.warp``, strength
    ``data.delta``) of one image (``data.image``) in one representation (``data.representation``).

    The image is loaded and represented in the constructor, so a bad image fails before rendering.
    """

    def __init__(self, cfg: DataConfig):
        if not cfg.image:
            raise ConfigError(
                "data.source=real needs data.image: a path, an s3:// or http(s):// URL, or skimage:NAME (e.g. skimage:astronaut)"
            )
        if cfg.instances != 1:
            raise ConfigError(f"data.instances={cfg.instances} with data.source=real; allowed: 1 (each class is one fixed warp)")
        self.cfg = cfg
        rgb = load_image(cfg.image)
        self.source_shape: tuple[int, ...] = tuple(int(s) for s in rgb.shape)
        self.digest: str = pixels_digest(rgb)  # as image_digest(cfg.image)
        self.image: np.ndarray = represent(rgb, cfg.representation, cfg.size)  # the unwarped class image
        self.image.setflags(write=False)
        self.unwarped_fill: float = fill_of(self.image)

    @property
    def num_classes(self) -> int:
        return self.cfg.L

    def anchors(self) -> list[tuple[str, np.ndarray]]:
        """Images a preview shows before the classes (none: the image itself is not a class)."""
        return []

    def warp_params(self, label: int, attempt: int = 0) -> list[list[float]]:
        """Draw ``attempt`` of class ``label``'s warp."""
        return draw_warp(self.cfg.warp, self.cfg.delta, stream(self.cfg.seed, REAL_WARP, label, attempt))

    def render_instance(self, label: int, instance: int) -> RealClassImage:
        """The image of class ``label``: every instance is the class's one warp (a real image has no
        per-instance randomness), so fresh instances of a stream repeat it."""
        (image,) = self.render_class(label)
        return image

    def render_class(self, label: int) -> list[RealClassImage]:
        """The one image of class ``label`` (real sources have one instance per class)."""
        if not 0 <= label < self.cfg.L:
            raise IndexError(f"class {label} is out of range 0..{self.cfg.L - 1}")
        c = self.cfg
        binary = c.representation == "canny"
        # For a real image the threshold is relative to the unwarped image's own fill: it rejects
        # warps that push the content out of the frame, whatever the representation (Canny edges
        # cover only a few percent of an image, a photograph nearly all of it).
        unwarped = max(self.unwarped_fill, 1e-12)
        best = 0.0
        for attempt in range(c.max_redraws):
            params = self.warp_params(label, attempt)
            img = apply_warp(self.image, c.warp, params, binary=binary)
            fill = fill_of(img)
            if fill / unwarped >= c.fill_threshold:
                return [RealClassImage(int(label), 0, img, fill, attempt, params, c.warp)]
            best = max(best, fill / unwarped)
        raise RenderFailure(
            f"class {label}: no warp keeping >= data.fill_threshold={c.fill_threshold:g} of the unwarped image's fill "
            f"({self.unwarped_fill:.4f}) in data.max_redraws={c.max_redraws} draws (best {best:.4f}) with data.source=real, "
            f"data.image={c.image!r}, data.representation={c.representation}, data.warp={c.warp}, data.delta={c.delta:g}; "
            f"lower data.fill_threshold or data.delta"
        )
