"""Procedural "pet" scenes: textured backgrounds, smooth irregular foreground blobs, occluders.

Each scene comes with an Oxford-style trimap: 1 = pet, 2 = background, 3 = a border band that
straddles every visible pet outline. Everything is drawn with numpy from one `Generator`, so a
seed fixes every pixel.
"""

from __future__ import annotations

import colorsys

import numpy as np

PET, BACKGROUND, BORDER = 1, 2, 3
TEXTURES = ("plain", "striped", "spotted")


def draw_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (uint8 image H×W×3, uint8 trimap H×W×1, texture id of the largest pet)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = _background(rng, yy, xx)
    # Signed distance to the pet region's outline, in pixels: positive inside a pet.
    distance = np.full((height, width), -np.inf, dtype=np.float32)
    largest_texture, largest_radius = 0, 0.0
    for _ in range(rng.integers(1, 4)):
        radius = rng.uniform(0.18, 0.38) * min(height, width)
        blob = _blob_distance(rng, yy, xx, radius)
        texture = int(rng.integers(len(TEXTURES)))
        _paint(image, blob, _pet_texture(rng, yy, xx, texture))
        distance = np.maximum(distance, blob)
        if radius > largest_radius:
            largest_texture, largest_radius = texture, radius
    if rng.random() < 0.35:
        occluder = _bar_distance(rng, yy, xx)
        _paint(image, occluder, _flat_texture(rng, yy, xx, saturation=0.15))
        distance = np.minimum(distance, -occluder)
    half_band = max(1.0, 0.025 * min(height, width))
    trimap = np.where(distance >= half_band, PET, np.where(distance > -half_band, BORDER, BACKGROUND))
    noise = rng.normal(0.0, 0.02, size=image.shape)
    pixels = np.clip((image + noise) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return pixels, trimap.astype(np.uint8)[..., None], largest_texture


def _background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A two-colour linear gradient with low-frequency mottling."""
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    start, end = _colour(rng, saturation=0.35), _colour(rng, saturation=0.35)
    image = start + ramp[..., None] * (end - start)
    return image + 0.12 * _smooth_noise(rng, yy.shape, cells=5)[..., None]


def _blob_distance(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, radius: float) -> np.ndarray:
    """Approximate signed distance to a smooth star-shaped outline; centres may leave the frame."""
    height, width = yy.shape
    cy, cx = rng.uniform(-0.1, 1.1) * height, rng.uniform(-0.1, 1.1) * width
    stretch, turn = rng.uniform(0.7, 1.4), rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(turn) + (yy - cy) * np.sin(turn)
    v = ((yy - cy) * np.cos(turn) - (xx - cx) * np.sin(turn)) * stretch
    theta, rho = np.arctan2(v, u), np.hypot(u, v)
    outline = np.ones_like(theta)
    for k in range(2, 6):
        outline += rng.uniform(0, 0.3 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return (radius * outline - rho) / max(stretch, 1.0)


def _bar_distance(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Signed distance inside a long rotated bar (a fence post, a table leg) crossing the frame."""
    height, width = yy.shape
    angle = rng.uniform(0, np.pi)
    offset = rng.uniform(0.2, 0.8) * (np.cos(angle) * width + np.sin(angle) * height)
    half_width = rng.uniform(0.04, 0.1) * min(height, width)
    along = np.cos(angle) * xx + np.sin(angle) * yy - offset
    return half_width - np.abs(along)


def _pet_texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, texture: int) -> np.ndarray:
    base, other = _colour(rng, saturation=0.8), _colour(rng, saturation=0.8)
    if TEXTURES[texture] == "striped":
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 10)
        weight = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period)
    elif TEXTURES[texture] == "spotted":
        weight = (_smooth_noise(rng, yy.shape, cells=9) > 0.25).astype(np.float32)
    else:
        weight = 0.3 * (_smooth_noise(rng, yy.shape, cells=4) + 1.0) / 2
    return base + weight[..., None] * (other - base)


def _flat_texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, saturation: float) -> np.ndarray:
    return _colour(rng, saturation) + 0.05 * _smooth_noise(rng, yy.shape, cells=3)[..., None]


def _paint(image: np.ndarray, distance: np.ndarray, texture: np.ndarray) -> None:
    """Composite `texture` over `image` inside the outline, anti-aliased over one pixel."""
    alpha = np.clip(distance + 0.5, 0.0, 1.0)[..., None]
    image *= 1.0 - alpha
    image += alpha * texture


def _colour(rng: np.random.Generator, saturation: float) -> np.ndarray:
    hue, value = rng.uniform(), rng.uniform(0.35, 0.95)
    sat = np.clip(rng.normal(saturation, 0.15), 0.0, 1.0)
    return np.array(colorsys.hsv_to_rgb(hue, sat, value), dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Bilinearly upsampled uniform noise in [-1, 1] on a cells×cells grid."""
    grid = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1)).astype(np.float32)
    height, width = shape
    rows = np.linspace(0, cells, height, dtype=np.float32)
    cols = np.linspace(0, cells, width, dtype=np.float32)
    across = np.stack([np.interp(cols, np.arange(cells + 1), row) for row in grid])
    return np.stack([np.interp(rows, np.arange(cells + 1), col) for col in across.T], axis=1)
