"""The neighbour viewer: a held-out frame's nearest frames in feature space, as a PNG grid.

``cltt visualize RUN --mode neighbours`` takes the held-out clips of the label-free probe
(:func:`cltt.eval.label_free.held_out_frames`: ``probe.label_free.held_out`` of the clips,
drawn with ``probe.split_seed``), picks N query frames (the middle frame of N clips drawn with
``--seed``) and, for the trained encoder and its random init, the k frames with the largest
cosine similarity ``u_q . u_j`` (features standardised as in the label-free probe,
``probe.standardise``) among every held-out frame except the query's own window (the
frames of its clip with |t' - t| < g / 2, g the first of ``probe.label_free.gaps``, as in
temporal retrieval: with the default 1 s, a clip under about 1 s is left out whole (the
middle frame's window reaches both ends), and a note says
so, as it does when there are fewer held-out clips than queries). A row shows the query, then its trained neighbours, then its random-init
neighbours; a neighbour from the query's own clip has a red frame and a ``=`` before its
caption, which gives the clip, the time in seconds (to as many decimals as tell a clip's
consecutive frames apart, :func:`time_decimals`) and the cosine. Features come from the probe's
cache (``RUN_DIR/features``).

The search is blocked: ``[block, N]`` similarities and their top k at a time.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from cltt.data.tiles import GAP, MIN_TILE, captioned_tile, stack_rows, tile_row
from cltt.eval.label_free import HeldOut, own_windows, standardised

SAME_CLIP = (220, 30, 30)  # RGB of the frame around a neighbour from the query's clip
BORDER = 3


def top_neighbours(features: np.ndarray, clips: np.ndarray, times: np.ndarray, queries: np.ndarray, k: int,
                   window: float, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest frames (cosine) of each query: (indices ``[Q, k]``, similarities ``[Q, k]``),
    nearest first, over every frame of ``features [N, D]`` except the query's own window (frames
    of its clip with |t' - t| < window / 2, the query included); ``[block, N]`` at a time. An
    index is -1 where fewer than k frames are candidates."""
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    u = torch.nn.functional.normalize(x, dim=1)
    lo, hi = (torch.from_numpy(a) for a in own_windows(clips, times, window))
    columns = torch.arange(len(u))
    k = min(k, len(u) - 1)
    index, value = [], []
    for start in range(0, len(queries), block):
        rows = torch.from_numpy(np.asarray(queries[start:start + block], dtype=np.int64))
        sims = u[rows] @ u.T
        inside = (columns[None, :] >= lo[rows][:, None]) & (columns[None, :] < hi[rows][:, None])
        sims[inside] = -torch.inf
        top = sims.topk(k, dim=1)
        index.append(torch.where(torch.isinf(top.values), -1, top.indices).numpy())  # fewer candidates than k
        value.append(top.values.numpy())
    if not index:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(index), np.concatenate(value)


def pick_queries(clips: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The middle frame of ``count`` clips drawn with ``seed`` (every clip when fewer), in clip order."""
    ids = np.unique(clips)
    chosen = np.sort(np.random.default_rng(seed).choice(ids, size=min(count, len(ids)), replace=False))
    return np.array([int(np.flatnonzero(clips == c)[len(np.flatnonzero(clips == c)) // 2]) for c in chosen])


def time_decimals(clips: np.ndarray, times: np.ndarray, most: int = 3) -> int:
    """Decimals of the seconds in the captions: the fewest, from 1 to ``most``, at which every two
    consecutive frames of a clip (``clips [N]``, ``times [N]``) print differently, so a 25 fps clip
    (frames 0.04 s apart) does not show two neighbours as "6.6s"; ``most`` when none does."""
    times = np.asarray(times, dtype=np.float64)
    same_clip = np.asarray(clips)[1:] == np.asarray(clips)[:-1]
    for decimals in range(1, most):
        shown = np.array([f"{t:.{decimals}f}" for t in times])
        if not (same_clip & (shown[1:] == shown[:-1])).any():
            return decimals
    return most


def _framed(tile: np.ndarray, colour: tuple[int, int, int] | None) -> np.ndarray:
    if colour is None:
        return np.pad(tile, ((BORDER, BORDER), (BORDER, BORDER), (0, 0)), constant_values=255)
    out = np.empty((tile.shape[0] + 2 * BORDER, tile.shape[1] + 2 * BORDER, 3), np.uint8)
    out[:] = colour
    out[BORDER:-BORDER, BORDER:-BORDER] = tile
    return out


def _heading(parts: list[tuple[str, int]]) -> np.ndarray:
    """A white band with each text left-aligned over its width (``parts``: (text, width))."""
    band = np.full((22, sum(w for _, w in parts) + GAP * (len(parts) - 1), 3), 255, np.uint8)
    x = 0
    for text, width in parts:
        cv2.putText(band, text, (x + 2, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += width + GAP
    return band


def neighbour_grid(held: HeldOut, queries: np.ndarray, neighbours: dict[str, np.ndarray],
                   similarities: dict[str, np.ndarray], side: int = MIN_TILE) -> np.ndarray:
    """The PNG grid (module doc): one row per query of ``queries [Q]``; ``neighbours`` source ->
    ``[Q, k]`` frame numbers of the held-out set, ``similarities`` the same shape."""
    names = [name.rsplit("/", 1)[-1] for name in held.store.clips]
    clip_names = [names[int(c)] for c in held.frames.clip_index]
    decimals = time_decimals(held.clips, held.times)

    def tile(j: int, caption: str, colour=None) -> np.ndarray:
        return _framed(captioned_tile(held.frames.read(int(j), 1), caption, side), colour)

    rows, widths = [], []
    for row, q in enumerate(queries):
        tiles = [tile(q, f"{clip_names[held.clips[q]]} {held.times[q]:.{decimals}f}s", (40, 40, 40))]
        widths = [tiles[0].shape[1]]
        for source, found in neighbours.items():
            group = []
            for j, sim in zip(found[row], similarities[source][row]):
                if j < 0:
                    continue
                same = held.clips[j] == held.clips[q]
                caption = (f"{'=' if same else ''}{clip_names[held.clips[j]]} {held.times[j]:.{decimals}f}s"
                           f" {sim:.3f}")
                group.append(tile(j, caption, SAME_CLIP if same else None))
            block = tile_row(group)
            tiles.append(np.full((block.shape[0], 3 * GAP, 3), 255, np.uint8))  # a wider gap between sources
            tiles.append(block)
            widths += [3 * GAP - GAP, block.shape[1]]
        rows.append(tile_row(tiles))
    heading = _heading([("query", widths[0])] + [part for source, w in zip(neighbours, widths[2::2])
                                                  for part in (("", widths[1] - GAP), (f"{source}: nearest first", w))])
    return stack_rows([heading, *rows])


def neighbour_notes(held: HeldOut, queries: np.ndarray, count: int, window: float) -> list[str]:
    """What the grid of ``queries [Q]`` (asked for ``count``) cannot show, one line each: fewer rows
    than asked (one query per held-out clip), and queries whose own window (|t' - t| < window / 2,
    :func:`~cltt.eval.label_free.own_windows`) holds their whole clip, so no neighbour can come
    from their clip (the default first gap, 1 s, on clips under about 1 s)."""
    notes = []
    clips = len(np.unique(held.clips))
    if len(queries) < count:
        notes.append(f"{len(queries)} rows, not --queries {count}: one query per held-out clip, and there are {clips} "
                     "(raise probe.label_free.held_out for more)")
    lo, hi = own_windows(held.clips, held.times, window)
    whole = [int(q) for q in queries if hi[q] - lo[q] == int((held.clips == held.clips[q]).sum())]
    if whole:
        notes.append(f"the own window, |t' - t| < {window / 2:g} s (half the first of probe.label_free.gaps, "
                     f"{window:g} s), holds the whole clip of {len(whole)} of the {len(queries)} queries: no neighbour "
                     "of theirs can come from their own clip; set probe.label_free.gaps=[G,...] with a shorter first G")
    return notes


def neighbours_image(recipe, checkpoint: Path, state: dict, count: int, k: int,
                     seed: int) -> tuple[np.ndarray, list[str]]:
    """The neighbour grid of a checkpoint (module doc): trained and random init side by side, and
    the notes on what it cannot show (:func:`neighbour_notes`)."""
    from cltt.data.build import open_frames
    from cltt.engine.device import resolve_device
    from cltt.engine.run_files import FEATURES_DIR
    from cltt.eval.features import extract_features
    from cltt.eval.label_free import feature_sources, held_out_frames

    held = held_out_frames(open_frames(recipe.data, synthetic=recipe.extract.synthetic),
                           recipe.probe.label_free.held_out, recipe.probe.split_seed)
    device = resolve_device(recipe.train.device)
    sources = feature_sources(recipe, Path(checkpoint), state, device, baselines=("random_init",))
    result = extract_features(held.frames, sources, cache_dir=Path(checkpoint).parent / FEATURES_DIR,
                              batch_size=recipe.probe.batch_size, workers=max(1, recipe.data.num_workers),
                              decode_at_least=recipe.data.image_size)
    queries = pick_queries(held.clips, count, seed)
    window = recipe.probe.label_free.gaps[0]
    found = {s.name: top_neighbours(standardised(result.features[s.name]) if recipe.probe.standardise
                                    else result.features[s.name], held.clips, held.times, queries, k, window)
             for s in sources}
    return (neighbour_grid(held, queries, {n: f[0] for n, f in found.items()}, {n: f[1] for n, f in found.items()}),
            neighbour_notes(held, queries, count, window))
