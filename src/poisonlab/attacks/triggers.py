"""Backdoor triggers: named patterns or an image file, sized to the image, stamped or blended into images.

A :class:`Trigger` is a uint8 pattern ``(C, h, w)`` at a fixed place in a ``(C, H, W)`` image and a blend
weight ``alpha``; applying it sets each covered pixel to ``round((1 - alpha) * x + alpha * pattern)`` and
leaves every other pixel alone (``alpha = 1`` stamps the patch, as BadNets does). It is built from a
*source* (a name in :data:`TRIGGER_PATTERNS` or the path of a PNG/JPEG file) by :func:`make_trigger` and
written whole into the attack record (:meth:`Trigger.to_record`), so triggered test images can be made
from a poisoned ``.npz`` alone, even after the image file is gone.

Sizes scale with the image side: a patch is ``max(3, round(side * 3 / 28))`` pixels square (3 on MNIST's
28 and CIFAR-10's 32, the 3x3 of the BadNets literature; 7 at 64, 24 at 224) unless given, placed at a
corner or the centre, ``margin`` pixels in from the edges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from poisonlab.errors import PoisonlabError

TRIGGER_PATTERNS = ("checkerboard", "square", "noise")
POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "center")


def patch_side(side: int) -> int:
    """The default patch side for images ``side`` pixels square: 3x3 at MNIST's 28, scaled with the side."""
    return max(3, int(round(side * 3 / 28)))


@dataclass(frozen=True, eq=False)
class Trigger:
    """A pattern placed in images of one shape.

    Attributes
    ----------
    pattern : np.ndarray (C, h, w) uint8
    top, left : int
        Row and column of the pattern's top-left pixel in the image.
    alpha : float
        Blend weight in (0, 1]; 1 replaces the covered pixels.
    image_shape : tuple of int (C, H, W)
        The images this trigger is for.
    """

    pattern: np.ndarray
    top: int
    left: int
    alpha: float
    image_shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        c, h, w = self.pattern.shape
        if self.pattern.dtype != np.uint8 or c != self.image_shape[0] or self.top < 0 or self.left < 0 \
                or self.top + h > self.image_shape[1] or self.left + w > self.image_shape[2]:
            raise PoisonlabError(f"a {self.pattern.dtype} trigger {self.pattern.shape} at ({self.top}, {self.left}) "
                                 f"does not fit images {self.image_shape}")
        if not 0 < self.alpha <= 1:
            raise PoisonlabError(f"trigger alpha must be in (0, 1], got {self.alpha!r}")
        self.pattern.setflags(write=False)

    @property
    def region(self) -> tuple[slice, slice, slice]:
        """The index of the covered pixels in one image (channel, rows, columns)."""
        h, w = self.pattern.shape[1:]
        return slice(None), slice(self.top, self.top + h), slice(self.left, self.left + w)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Triggered copies of uint8 images ``x`` (N, C, H, W); ``x`` itself is not modified."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape or x.dtype != np.uint8:
            raise PoisonlabError(f"the trigger is for uint8 images {self.image_shape}, got {x.dtype} "
                                 f"{tuple(x.shape[1:])}")
        out = x.copy()
        region = (slice(None), *self.region)
        if self.alpha == 1:
            out[region] = self.pattern
        else:  # float64, in chunks: the rounding is exactly the documented formula's, the memory bounded
            pattern = self.alpha * self.pattern.astype(np.float64)
            for start in range(0, len(x), 1024):
                part = (slice(start, start + 1024), *self.region)
                out[part] = np.clip(np.rint((1 - self.alpha) * x[part].astype(np.float64) + pattern), 0, 255)
        return out

    def to_record(self) -> dict[str, Any]:
        """JSON-able: everything :meth:`from_record` needs, and the pattern's SHA-256 to compare triggers by."""
        return {"pattern": self.pattern.tolist(), "top": self.top, "left": self.left, "alpha": self.alpha,
                "image_shape": list(self.image_shape),
                "sha256": hashlib.sha256(self.pattern.tobytes()).hexdigest()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Trigger":
        try:
            pattern = np.asarray(record["pattern"])
            if pattern.ndim != 3 or not np.issubdtype(pattern.dtype, np.integer) or pattern.min() < 0 \
                    or pattern.max() > 255:
                raise ValueError("'pattern' must be a (C, h, w) array of integers in 0..255")
            shape = tuple(int(v) for v in record["image_shape"])
            if len(shape) != 3:
                raise ValueError("'image_shape' must be (C, H, W)")
            return cls(pattern.astype(np.uint8), int(record["top"]), int(record["left"]), float(record["alpha"]),
                       shape)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, PoisonlabError):
                raise
            raise PoisonlabError(f"attack record: bad trigger ({exc})") from None


def check_trigger_source(source: Any) -> None:
    """Refuse a trigger that is neither a named pattern nor a readable image file (opens the file)."""
    if not isinstance(source, str) or not source:
        raise PoisonlabError(f"trigger must be a pattern name ({', '.join(TRIGGER_PATTERNS)}) or an image file, "
                             f"got {source!r}")
    if source not in TRIGGER_PATTERNS:
        _read_image(source, channels=1)


def trigger_pattern(source: str, channels: int, height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """The pattern (C, h, w) uint8 of ``source``: a named pattern drawn at that size, or the image file
    resized to it (bilinear) in grey (``channels=1``) or RGB.

    ``checkerboard``: white and black pixels alternating, white at the top-left; ``square``: all white;
    ``noise``: uniform 0..255 per pixel and channel, drawn from ``seed``.
    """
    if source == "checkerboard":
        board = ((np.arange(height)[:, None] + np.arange(width)[None, :]) % 2 == 0).astype(np.uint8) * 255
        return np.repeat(board[None], channels, axis=0)
    if source == "square":
        return np.full((channels, height, width), 255, dtype=np.uint8)
    if source == "noise":
        return np.random.default_rng(seed).integers(0, 256, size=(channels, height, width), dtype=np.uint8)
    image = _read_image(source, channels=channels).resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[None].copy() if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def make_trigger(source: str, image_shape: tuple[int, ...], *, size: int | None = None, position: str = "top-left",
                 margin: int = 1, alpha: float = 1.0, full_image: bool = False, seed: int = 0) -> Trigger:
    """The trigger of ``source`` for images ``image_shape`` (C, H, W).

    ``full_image``: the pattern covers the whole image (blending); else a square patch of ``size`` pixels
    (default :func:`patch_side` of the image side) at ``position``, ``margin`` pixels in from the edges.
    """
    channels, height, width = (int(v) for v in image_shape)
    if full_image:
        return Trigger(trigger_pattern(source, channels, height, width, seed=seed), 0, 0, alpha,
                       (channels, height, width))
    side = patch_side(min(height, width)) if size is None else int(size)
    if position not in POSITIONS:
        raise PoisonlabError(f"position must be one of {', '.join(POSITIONS)}, got {position!r}")
    if side + 2 * margin > min(height, width):
        raise PoisonlabError(f"a {side}-pixel trigger {margin} pixel(s) in from the edges does not fit "
                             f"{height}x{width} images")
    top = {"top": margin, "bottom": height - margin - side, "center": (height - side) // 2}[position.split("-")[0]]
    left = {"left": margin, "right": width - margin - side, "center": (width - side) // 2}[position.split("-")[-1]]
    return Trigger(trigger_pattern(source, channels, side, side, seed=seed), top, left, alpha,
                   (channels, height, width))


def _read_image(path: str, *, channels: int) -> Image.Image:
    file = Path(path)
    if not file.is_file():
        raise PoisonlabError(f"trigger {path!r} is neither a named pattern ({', '.join(TRIGGER_PATTERNS)}) nor an "
                             "image file (no such file)")
    try:
        with Image.open(file) as img:
            img.load()
            return img.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise PoisonlabError(f"trigger image {path}: not a readable image ({type(exc).__name__})") from None


__all__ = ["POSITIONS", "TRIGGER_PATTERNS", "Trigger", "check_trigger_source", "make_trigger", "patch_side",
           "trigger_pattern"]
