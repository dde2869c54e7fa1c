"""Procedural 32×32 cartoon faces with known hierarchical factors: hrf's offline benchmark world.

Every image is drawn with numpy from integer factor labels plus a little continuous jitter, all drawn
from one seed, so a data set is reproducible from ``(n, seed)`` and each image's labels are exact.

High-level factors (the paper's "overall face structure or hair type"; the diversity that RL fine-tuning
tends to collapse):

- ``head_shape`` (3): ``round`` (circle), ``oval`` (tall, narrow ellipse), ``square`` (a box with slightly
  rounded corners). The oval is 2 px narrower and 2 px taller than the circle, and the square's corners
  reach about 3 px further out, so the shape is overall structure at 32 px rather than a one-pixel detail.
- ``skin_tone`` (3): ``pale``, ``tan``, ``brown`` — the colour of the head.
- ``hair_style`` (4): ``none`` (bald: no hair pixels), ``short`` (a cap over the top of the head),
  ``long`` (cap plus hair falling behind the head down to the bottom edge), ``spiky`` (cap plus a row
  of spikes above the head).
- ``hair_color`` (4): ``black``, ``blonde``, ``ginger``, ``blue`` — the hair, and also the eyebrows, which
  are two pixels thick so that the colour stays a visible patch, not a detail, on bald faces.
- ``background`` (4): ``sky``, ``mint``, ``pink``, ``lilac`` — the colour of every pixel outside the
  face and hair.

That is 3·3·4·4·4 = 576 high-level combinations (:func:`combo_ids`).

Low-level factors (the paper's "small facial details"):

- ``eyes`` (3): ``dots`` (2×2 dark), ``wide`` (3×3 white with a dark pupil), ``closed`` (a 3×1 dark line).
- ``mouth`` (3): ``smile`` (corners up), ``neutral`` (flat), ``frown`` (corners down); the learned
  reward ``faces_smile`` scores P(smile).
- ``freckles`` (2): ``no``, ``yes`` (three darker dots on each cheek).

Continuous jitter, not a label: the head centre moves by up to ±1.2 px in x and ±1 px in y and its
size by ±6 %; the features follow the (rounded) head centre.

All factors are drawn independently and uniformly.
"""

from __future__ import annotations

import numpy as np
import torch

SIZE = 32
# Bumped whenever the drawing changes, so a model records which faces it learned (``hrf_info.json``).
# 1: first release; 2: head shapes apart by whole rows and columns, two-row eyebrows (2026-11-26).
VERSION = 2

FACTORS: dict[str, tuple[str, ...]] = {
    "head_shape": ("round", "oval", "square"),
    "skin_tone": ("pale", "tan", "brown"),
    "hair_style": ("none", "short", "long", "spiky"),
    "hair_color": ("black", "blonde", "ginger", "blue"),
    "background": ("sky", "mint", "pink", "lilac"),
    "eyes": ("dots", "wide", "closed"),
    "mouth": ("smile", "neutral", "frown"),
    "freckles": ("no", "yes"),
}
HIGH_LEVEL: tuple[str, ...] = ("head_shape", "skin_tone", "hair_style", "hair_color", "background")
LOW_LEVEL: tuple[str, ...] = ("eyes", "mouth", "freckles")

# Colours chosen so that no skin, hair and background colour are confusable with one another.
SKIN_RGB = np.array([(250, 222, 192), (214, 160, 112), (140, 94, 62)], dtype=np.uint8)
HAIR_RGB = np.array([(28, 22, 22), (244, 212, 70), (214, 88, 24), (46, 84, 214)], dtype=np.uint8)
BACKGROUND_RGB = np.array([(150, 196, 244), (146, 222, 160), (246, 176, 204), (184, 150, 232)], dtype=np.uint8)
DARK_RGB = np.array((35, 25, 30), dtype=np.uint8)  # pupils, closed eyes
WHITE_RGB = np.array((255, 255, 255), dtype=np.uint8)
MOUTH_RGB = np.array((160, 30, 45), dtype=np.uint8)

# Mouth rows relative to the mouth centre row, for dx = -3..3 (image y grows downwards).
_MOUTH_ROWS = {
    0: np.array([-1, 0, 1, 1, 1, 0, -1]),  # smile: corners up
    1: np.array([0, 0, 0, 0, 0, 0, 0]),  # neutral
    2: np.array([1, 0, -1, -1, -1, 0, 1]),  # frown: corners down
}
_FRECKLES = ((0, -1), (1, 0), (0, 1))  # (dy, dx) offsets of the three dots on each cheek


def _draw_labels(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.integers(0, len(values), size=n) for name, values in FACTORS.items()}


def _paint(images: np.ndarray, mask: np.ndarray, colours: np.ndarray) -> None:
    """Set ``images[i][mask[i]] = colours[i]`` (colours (n,3) or (3,)) for every image at once."""
    colours = np.broadcast_to(colours, (images.shape[0], 3))
    np.copyto(images, colours[:, None, None, :], where=mask[..., None])


def _head_masks(labels, cx, cy, scale, yy, xx):
    """(head, cap, behind, spikes) boolean masks, each (n, H, W)."""
    shape = labels["head_shape"][:, None, None]
    rx = np.choose(shape, [9.0, 7.0, 8.8]) * scale[:, None, None]
    ry = np.choose(shape, [9.0, 11.0, 9.0]) * scale[:, None, None]
    u = (xx - cx[:, None, None]) / rx
    v = (yy - cy[:, None, None]) / ry
    power = np.where(shape == 2, 10.0, 2.0)  # a superellipse of power 10 is a box with rounded corners
    head = np.abs(u) ** power + np.abs(v) ** power <= 1.0
    grown = np.abs(u * 0.88) ** power + np.abs(v * 0.9) ** power <= 1.0
    cap = grown & (v < -0.45)
    top = cy[:, None, None] - ry * 1.1
    behind = (np.abs(u) <= 1.25) & (yy >= cy[:, None, None] - ry * 0.6)
    dx = xx - cx[:, None, None]
    tooth = np.abs(np.mod(dx + 1.5, 3.0) - 1.5)  # distance to the nearest spike axis
    spikes = (np.abs(dx) <= rx * 0.95) & (yy >= top - 4.0 + 2.6 * tooth) & (yy <= top + 2.0)
    return head, cap, behind, spikes


def _feature_masks(labels, cx, cy, yy, xx):
    """(eyebrows, eye_dark, eye_white, mouth, freckles) boolean masks from the rounded head centre."""
    n = len(cx)
    icx = np.round(cx).astype(int)[:, None, None]
    icy = np.round(cy).astype(int)[:, None, None]
    dy, dx = yy.astype(int) - icy, xx.astype(int) - icx
    adx = np.abs(dx)
    # Two rows: on a bald face the brows are the only pixels of hair colour (on haired faces the upper
    # row lies on the cap).
    brows = (dy >= -5) & (dy <= -4) & (adx >= 2) & (adx <= 5)
    eye_kind = labels["eyes"][:, None, None]
    # Eyes sit at dx = ±3.5, rows -1..0; a pupil-or-dot occupies the two inner-aligned columns 3 and 4.
    eye_cols = (adx >= 3) & (adx <= 4)
    eye_wide = (adx >= 2) & (adx <= 4) & (dy >= -2) & (dy <= 0)
    pupil = (adx == 3) & (dy == -1)
    dots = eye_cols & (dy >= -1) & (dy <= 0)
    line = (adx >= 2) & (adx <= 4) & (dy == 0)
    eye_dark = np.where(eye_kind == 0, dots, np.where(eye_kind == 1, pupil, line))
    eye_white = (eye_kind == 1) & eye_wide & ~pupil
    mouth_offsets = np.stack([_MOUTH_ROWS[m] for m in labels["mouth"]]) if n else np.zeros((0, 7), int)
    mouth = np.zeros((n, SIZE, SIZE), dtype=bool)
    for j, ddx in enumerate(range(-3, 4)):
        row = 5 + mouth_offsets[:, j][:, None, None]
        mouth |= (dx == ddx) & (dy == row)
    freckles = np.zeros((n, SIZE, SIZE), dtype=bool)
    for fy, fx in _FRECKLES:
        freckles |= (dy == 2 + fy) & (adx == 5 + fx)
    freckles &= (labels["freckles"] == 1)[:, None, None]
    return brows, eye_dark, eye_white, mouth, freckles


def generate_faces(n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` faces as uint8 ``(n, 32, 32, 3)`` and their integer labels ``{factor: (n,) int64}``.

    Deterministic in ``(n, seed)``; the first ``m`` faces of ``generate_faces(n, s)`` are not those of
    ``generate_faces(m, s)`` (labels and jitter are drawn as whole arrays).
    """
    rng = np.random.default_rng(seed)
    labels = _draw_labels(n, rng)
    cx = 15.5 + rng.uniform(-1.2, 1.2, n)
    cy = 17.0 + rng.uniform(-1.0, 1.0, n)
    scale = rng.uniform(0.94, 1.06, n)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    images[:] = BACKGROUND_RGB[labels["background"]][:, None, None, :]
    head, cap, behind, spikes = _head_masks(labels, cx, cy, scale, yy, xx)
    style = labels["hair_style"][:, None, None]
    hair_rgb = HAIR_RGB[labels["hair_color"]]
    skin_rgb = SKIN_RGB[labels["skin_tone"]]
    _paint(images, behind & (style == 2), hair_rgb)
    _paint(images, head, skin_rgb)
    _paint(images, (cap | spikes) & (style == 3) | cap & ((style == 1) | (style == 2)), hair_rgb)
    brows, eye_dark, eye_white, mouth, freckles = _feature_masks(labels, cx, cy, yy, xx)
    _paint(images, brows, hair_rgb)
    _paint(images, eye_white, WHITE_RGB)
    _paint(images, eye_dark, DARK_RGB)
    _paint(images, mouth, MOUTH_RGB)
    _paint(images, freckles, (skin_rgb * 0.62).astype(np.uint8))
    return images, {k: v.astype(np.int64) for k, v in labels.items()}


def faces_tensor(n: int, seed: int) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """:func:`generate_faces` as a model-space float tensor in [-1, 1], NCHW, plus the labels."""
    from hrf.images import from_uint8_hwc

    images, labels = generate_faces(n, seed)
    return from_uint8_hwc(images), labels


def mixed_radix_codes(labels: dict[str, np.ndarray], cardinalities: dict[str, int]) -> np.ndarray:
    """One integer per image for its combination of the factors in ``cardinalities`` (first = most significant)."""
    code = np.zeros(len(next(iter(labels.values()))), dtype=np.int64)
    for name, size in cardinalities.items():
        code = code * size + np.asarray(labels[name], dtype=np.int64)
    return code


def combo_ids(labels: dict[str, np.ndarray]) -> np.ndarray:
    """One integer in ``0 .. 575`` per image naming its high-level combination (mixed-radix code)."""
    return mixed_radix_codes(labels, {name: len(FACTORS[name]) for name in HIGH_LEVEL})


def num_combos() -> int:
    """The number of distinct high-level combinations (576)."""
    return int(np.prod([len(FACTORS[name]) for name in HIGH_LEVEL]))
