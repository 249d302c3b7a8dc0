"""Captioned image tiles: frames drawn as rows and grids, slot masks, sequence alignments.

The pictures the trainer logs (``views_grid``, and a method's own through
:meth:`~cltt.methods.base.Method.monitor_images`) and that ``cltt visualize`` writes are made
of these, so they live below methods and the engine; run-dir pictures built on them (windows
of a dataset, training curves) are in :mod:`cltt.visualize`. Every image is RGB uint8
``[H, W, 3]``:

    image = views_grid(views)                         # views [b, F, S, S, 3] -> one row per sample
    image = slot_strip(frames, labels, num_slots, "clip_0003")   # frames, then tinted by slot
    image = alignment_image(first, second, similarity)           # two sequences and a heat map

Frames are enlarged (nearest neighbour, so pixels stay honest) to at least ``MIN_TILE`` pixels
and captioned with the clip name and the frame numbers (1-based, as in the file names). A
caption wider than its tile takes two lines, the frame number whole on the second
(:func:`caption_lines`).
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_TILE = 96
CAPTION = 14  # pixels of one caption line above each tile
CAPTION_MARGIN = 2  # pixels left of the text
CAPTION_FONT, CAPTION_SCALE = cv2.FONT_HERSHEY_PLAIN, 0.8
BAND_GREY = 24
GAP = 4


def caption_width(text: str) -> int:
    """Pixels ``text`` takes in a caption, margin included."""
    return cv2.getTextSize(text, CAPTION_FONT, CAPTION_SCALE, 1)[0][0] + CAPTION_MARGIN


def caption_lines(caption: str, width: int) -> list[str]:
    """``caption`` as lines that each fit ``width`` pixels: the caption itself when it fits, else
    the text before its last space (the clip name) over the rest (the frame number, ``#12``), a
    line still too wide losing characters from its start (``..ip_0003``), so a frame number is
    never cut off."""
    if caption_width(caption) <= width:
        return [caption]
    head, _, tail = caption.rpartition(" ")
    return [_shortened(line, width) for line in ([head, tail] if head else [tail])]


def _shortened(text: str, width: int) -> str:
    """``text``, or ``..`` and its longest ending that fits ``width`` pixels."""
    cut = 0
    while caption_width(text if cut == 0 else ".." + text[cut:]) > width and cut < len(text) - 1:
        cut += 1
    return text if cut == 0 else ".." + text[cut:]


def captioned_tile(frame: np.ndarray, caption: str, side: int) -> np.ndarray:
    """One frame [H, W, 3] enlarged to ``side`` with a caption band on top (one or two lines)."""
    scale = max(1, -(-side // frame.shape[0]))  # ceiling: small frames are enlarged to at least side
    image = cv2.resize(frame, (frame.shape[1] * scale, frame.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    lines = caption_lines(caption, image.shape[1])
    band = np.full((CAPTION * len(lines), image.shape[1], 3), BAND_GREY, dtype=np.uint8)
    for number, line in enumerate(lines, start=1):
        cv2.putText(band, line, (CAPTION_MARGIN, CAPTION * number - 4), CAPTION_FONT, CAPTION_SCALE, (235, 235, 235), 1,
                    cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def tile_row(tiles: list[np.ndarray]) -> np.ndarray:
    """Tiles side by side; a tile with a one-line caption beside two-line ones gets a taller band."""
    height = max(tile.shape[0] for tile in tiles)
    tiles = [np.pad(tile, ((height - tile.shape[0], 0), (0, 0), (0, 0)), constant_values=BAND_GREY) for tile in tiles]
    gap = np.full((height, GAP, 3), 255, dtype=np.uint8)
    parts = []
    for tile in tiles:
        parts += [tile, gap]
    return np.concatenate(parts[:-1], axis=1)


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows one under another, ``GAP`` white pixels apart, narrower ones padded white on the right."""
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, axis=0)[:-GAP]


def slot_palette(num_slots: int) -> np.ndarray:
    """``[K, 3]`` uint8 RGB colours, evenly spaced hues, one per slot."""
    hues = np.linspace(0, 180, num_slots, endpoint=False).astype(np.uint8)
    hsv = np.stack([hues, np.full_like(hues, 220), np.full_like(hues, 255)], axis=1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def overlay_slots(frames: np.ndarray, labels: np.ndarray, num_slots: int, opacity: float = 0.5) -> np.ndarray:
    """Frames ``[T, S, S, 3]`` uint8 with each pixel tinted by its slot's colour (``labels [T, S, S]``)."""
    colours = slot_palette(num_slots)[labels]
    return np.round((1 - opacity) * frames + opacity * colours).astype(np.uint8)


def slot_strip(frames: np.ndarray, labels: np.ndarray, num_slots: int, clip: str) -> np.ndarray:
    """Two rows: frames ``[T, S, S, 3]`` of ``clip``, then the same frames tinted by slot ``labels [T, S, S]``."""
    side = max(MIN_TILE, frames.shape[1])
    plain = [captioned_tile(f, f"{clip} #{j + 1}", side) for j, f in enumerate(frames)]
    tinted = [captioned_tile(f, f"slots #{j + 1}", side) for j, f in enumerate(overlay_slots(frames, labels, num_slots))]
    return stack_rows([tile_row(plain), tile_row(tinted)])


def views_grid(views: np.ndarray, side: int = MIN_TILE) -> np.ndarray:
    """Training samples as an RGB image: ``views [b, F, S, S, 3]`` uint8, one row of F frames per sample."""
    return stack_rows([tile_row([captioned_tile(frame, f"sample {i + 1} #{j + 1}", side) for j, frame in enumerate(frames)])
                   for i, frames in enumerate(views)])


def slot_mask_grid(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Windows and their slots: ``frames [n, T, S, S, 3]`` uint8, ``masks [n, T, K, h, w]`` (sum 1
    over slots); two rows per window (:func:`slot_strip`), each pixel tinted by its argmax slot."""
    n, t, size = frames.shape[:3]
    labels = masks.argmax(axis=2)  # [n, T, h, w]
    scale = -(-size // labels.shape[-1])
    full = labels.repeat(scale, axis=-2).repeat(scale, axis=-1)[..., :size, :size]
    return stack_rows([slot_strip(frames[i], full[i], masks.shape[2], f"window {i + 1}") for i in range(n)])


def alignment_image(first: np.ndarray, second: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """Two sequences and how they align: ``first [T1, S, S, 3]``, ``second [T2, S, S, 3]`` uint8
    as rows, then ``similarity [T1, T2]`` as a heat map (row i: frame i of the first sequence),
    with each row's most similar frame of the second marked white."""
    cell = 16
    low, high = float(similarity.min()), float(similarity.max())
    scaled = np.uint8(np.round(255 * (similarity - low) / max(high - low, 1e-8)))
    heat = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)
    heat = heat.repeat(cell, axis=0).repeat(cell, axis=1)
    for row, column in enumerate(similarity.argmax(axis=1)):
        centre = (int(column) * cell + cell // 2, row * cell + cell // 2)
        cv2.circle(heat, centre, cell // 4, (255, 255, 255), -1)
    side = max(MIN_TILE // 2, first.shape[1])
    rows = [tile_row([captioned_tile(f, f"a #{j + 1}", side) for j, f in enumerate(first)]),
            tile_row([captioned_tile(f, f"b #{j + 1}", side) for j, f in enumerate(second)]),
            captioned_tile(heat, f"similarity a x b ({low:.2f}..{high:.2f})", heat.shape[0])]
    return stack_rows(rows)
