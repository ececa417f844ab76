"""Contact sheets: a grid of class images with the class index on each tile, so a user sees what
sigma and delta do before spending GPU hours."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from raysweep.fractal import ClassImage
from raysweep.render.sources import ClassSource


def contact_sheet(tiles: list[tuple[str, np.ndarray]], tile: int = 128, cols: int | None = None, gap: int = 2) -> Image.Image:
    """Lay out ``(caption, image)`` tiles (gray (H, W) or RGB (H, W, 3)) in a grid, each captioned in
    its top-left corner; the sheet is RGB if any tile is."""
    if not tiles:
        raise ValueError("no tiles to lay out")
    cols = cols or int(np.ceil(np.sqrt(len(tiles))))
    rows = int(np.ceil(len(tiles) / cols))
    mode = "RGB" if any(img.ndim == 3 for _, img in tiles) else "L"
    sheet = Image.new(mode, (cols * tile + (cols + 1) * gap, rows * tile + (rows + 1) * gap), (60, 60, 60) if mode == "RGB" else 60)
    font = ImageFont.load_default(size=max(10, tile // 8))
    for i, (caption, img) in enumerate(tiles):
        cell = Image.fromarray(img).convert(mode).resize((tile, tile), Image.Resampling.BOX if img.shape[0] > tile else Image.Resampling.NEAREST)
        draw = ImageDraw.Draw(cell)
        box = draw.textbbox((3, 1), caption, font=font)
        draw.rectangle((0, 0, box[2] + 3, box[3] + 2), fill=(0, 0, 0) if mode == "RGB" else 0)
        draw.text((3, 1), caption, fill=(255, 255, 255) if mode == "RGB" else 255, font=font)
        r, c = divmod(i, cols)
        sheet.paste(cell, (gap + c * (tile + gap), gap + r * (tile + gap)))
    return sheet


def preview_tiles(source: ClassSource, max_tiles: int = 64) -> list[tuple[str, np.ndarray]]:
    """Tiles of the first classes (all their instances), after the source's anchors (the 1p-frac
    base system)."""
    tiles: list[tuple[str, np.ndarray]] = list(source.anchors())[:max_tiles]
    for label in range(source.num_classes):
        for item in source.render_class(label):
            if len(tiles) >= max_tiles:
                return tiles
            tiles.append((_caption(item, source.cfg.instances), item.image.copy()))
    return tiles


def _caption(item: ClassImage, instances: int) -> str:
    return f"{item.label}" if instances == 1 else f"{item.label}.{item.instance}"


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
