"""``playroom``: toys (the rotating-objects meshes) standing on the floor of a room, seen by a
head camera that walks among them, turns and looks from one toy to another; every frame is
labelled with the toy nearest the image centre (``centre.csv``, and as labels by time in
``segments.csv``), each clip with the kind seen there most (``labels.csv``). Rendered by
:mod:`cltt.data.render3d`.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from cltt.data.render3d import MESHES, Camera, Mesh, head_camera, rasterise_all, rotation
from cltt.data.synthetic.base import Generator, Scene, balanced
from cltt.data.synthetic.registry import register_generator
from cltt.data.synthetic.rotating_objects import RotatingObjects, object_colour

CENTRE_FILE = "centre.csv"
CENTRE_COLUMNS = ("clip", "frame", "label", "object", "distance")
SEGMENTS_FILE = "segments.csv"

# the room, in metres: walls at |x| = |z| = WALL, ceiling at HEIGHT, toys on a rug within |x|, |z| <= RUG
WALL, HEIGHT, RUG = 4.0, 2.4, 2.6
MIN_TOYS = 5  # a room holds every kind once, and more drawn at random up to this many
TOY_SIZE = (0.28, 0.42)  # radius of a toy's bounding sphere
CLEARANCE = 1.1  # the camera never comes nearer than this to a toy's centre
STAY = 2.4  # the walk is drawn back towards the focus toy beyond this distance
ROAM = 3.3  # the camera stays within |x|, |z| <= ROAM
EYE = (0.9, 1.2)  # camera height, a small child's
FOV = 60.0  # degrees
ASIDE = (7.0, 5.0)  # a look aims up to this many degrees beside (yaw) and above or below (pitch) its toy
TURN = 0.3  # the head closes this fraction of the way to where it wants to look, per frame ...
MAX_TURN = 12.0  # ... at most this many degrees a frame


@register_generator("playroom", id=5)
class Playroom(Generator):
    """Toys on a rug in one room, filmed by a head camera that walks among them and looks about.

    A room holds one toy of each of the ``max_objects`` kinds (the first meshes of
    :data:`cltt.data.render3d.MESHES`, as rotating-objects), and more of random kinds up to
    :data:`MIN_TOYS`, each 0.28-0.42 m in radius, standing on the floor at a random place and
    turn, in a colour from the hues that every kind shares (so colour says nothing about the
    kind). The room itself (floor boards, a rug, four tinted walls with a window and a door)
    is the same in every clip, as rotating-objects' background.

    The camera, 0.9-1.2 m above the floor with a 60 degree field of view, walks: its velocity
    is low-pass filtered (each frame moves a fifth of the way to the wanted one) towards a
    heading that random-walks, pushed away from toys (never nearer than 1.1 m to a centre)
    and walls, and drawn back to the clip's focus toy (below) beyond 2.4 m of it. Meanwhile it
    looks at a toy at a time, 2-4 looks a clip, at a point up to 7 degrees aside and 5 above
    or below the toy (the toys are not centred); between looks the
    head turns at most 12 degrees a frame and closes 30% of the gap each frame, with a small
    low-passed tremor. So consecutive frames are close, toys enter and leave the view, and a
    toy is seen from the changing sides that only time links.

    Labels: ``centre.csv`` gives per frame the kind of the toy nearest the image centre (the
    toy whose mask has the pixel centre nearest the image centre; ``distance`` in pixels, 0
    when it covers the centre; ``object`` its id in ``masks.npz``; an empty label when no toy
    is in view), ``segments.csv`` the same as labels by time, and ``labels.csv`` the kind seen
    most: nearest the centre in the most frames of the clip. Each clip has a focus toy (kinds
    balanced over clips; splits stratified by it, as the other generators) that its looks
    return to for 55-75% of the frames and that its walk stays near, so the kind seen most is
    nearly always the focus kind (60 of 60 clips at the default size). Masks and ``boxes.csv``
    hold every toy.
    """
    frame_table = (CENTRE_FILE, CENTRE_COLUMNS)
    segments_file = SEGMENTS_FILE
    fps = 10.0  # a walk of 48 frames lasts 4.8 s; at 0.3-0.7 m/s it covers 1.4-3.4 m

    def kinds(self, config) -> list[str]:
        return list(MESHES)[:min(config.max_objects, len(MESHES))]

    def plan_contents(self, config, rng):
        kinds = self.kinds(config)
        toys = max(len(kinds), MIN_TOYS)
        return [(toys, (int(focus),), kinds[focus]) for focus in balanced(rng, config.clips, range(len(kinds)))]

    def scene(self, config, plan):
        rng = self.clip_rng(config, plan.index)
        kinds = self.kinds(config)
        toy_kinds = [*range(len(kinds)), *rng.integers(0, len(kinds), plan.objects - len(kinds)).tolist()]
        toy_kinds = [toy_kinds[i] for i in rng.permutation(len(toy_kinds))]
        places = _place_toys(rng, len(toy_kinds))
        toys, sizes, hues = [], [], []
        for kind, (x, z) in zip(toy_kinds, places):
            radius = float(rng.uniform(*TOY_SIZE))
            mesh = MESHES[kinds[kind]]().normalised()
            turned = mesh.vertices @ rotation("y", rng.uniform(0, 360)).T * radius
            standing = turned + [x, -turned[:, 1].min(), z]  # resting on the floor, y = 0
            hue, colour = object_colour(rng, RotatingObjects.hues)
            toys.append((Mesh(standing, mesh.faces), colour))
            sizes.append(radius)
            hues.append(round(hue, 4))
        centres = np.array([[x, float(m.vertices[:, 1].mean()), z] for (m, _), (x, z) in zip(toys, places)])
        focus = toy_kinds.index(plan.classes[0])
        looks = _looks(rng, config.frames, focus, len(toys))
        eye = float(rng.uniform(*EYE))
        path = _walk(rng, config.frames, places, focus, eye)
        yaw, pitch = _gaze(rng, path, centres, looks)
        cameras = [head_camera(p, y, q, FOV) for p, y, q in zip(path, yaw, pitch)]
        size = config.size

        def draw(images: bool) -> tuple[np.ndarray | None, np.ndarray]:
            frames = np.empty((config.frames, size, size, 3), np.uint8)
            masks = np.empty((config.frames, size, size), np.uint8)
            blank = np.zeros((size, size, 3), np.float32)
            for t, camera in enumerate(cameras):
                background = room_view(camera, 2 * size) if images else blank
                frames[t], masks[t] = rasterise_all(toys, camera, size, background)
            return (frames if images else None), masks

        def label_frames(masks: np.ndarray) -> list[tuple]:
            rows = []
            for ids in masks:
                toy, distance = nearest_to_centre(ids)
                rows.append((kinds[toy_kinds[toy - 1]], toy, round(distance, 2)) if toy else ("", 0, ""))
            return rows

        return Scene(background=np.zeros((size, size, 3), np.float32), alphas=[], colours=np.zeros((len(toys), 3), np.float32),
                     positions=np.zeros((config.frames, len(toys), 2), np.int64), blend="over",
                     extra={"objects": len(toys), "label": plan.label, "split": plan.split,
                            "kinds": [kinds[k] for k in toy_kinds], "focus": focus + 1, "sizes": [round(r, 3) for r in sizes],
                            "places": [[round(float(v), 3) for v in p] for p in places], "hues": hues,
                            "eye_height": round(eye, 3), "looks": [[int(toy) + 1, int(n)] for toy, n in looks]},
                     draw=draw, label_frames=label_frames, clip_label=lambda rows: seen_most(rows, plan.label))


def seen_most(rows: list[tuple], focus: str) -> str:
    """The kind nearest the image centre in the most frames of ``rows`` (``centre.csv``'s, label
    first); a tie goes to ``focus`` when it is tied, else to the kind first in MESHES."""
    counts = Counter(row[0] for row in rows if row[0])
    if not counts:
        return focus
    top = max(counts.values())
    tied = [kind for kind in MESHES if counts.get(kind) == top]
    return focus if focus in tied else tied[0]


def nearest_to_centre(ids: np.ndarray) -> tuple[int, float]:
    """The object id of ``ids [H, W]`` (0 = none) whose nearest pixel centre is nearest the
    image centre, and that distance in pixels (0 when it covers the centre pixel); ties go to
    the larger object, then the lower id. ``(0, inf)`` when no object is in view."""
    height, width = ids.shape
    ys, xs = np.nonzero(ids)
    if not len(ys):
        return 0, math.inf
    distance = np.hypot(xs + 0.5 - width / 2, ys + 0.5 - height / 2)
    distance[distance < 0.75] = 0.0  # the four pixels around the centre all count as covering it
    found = ids[ys, xs]
    best = []
    for toy in np.unique(found):
        mine = found == toy
        best.append((float(distance[mine].min()), -int(mine.sum()), int(toy)))
    d, _, toy = min(best)
    return toy, d


def _place_toys(rng: np.random.Generator, count: int) -> np.ndarray:
    """``[count, 2]`` floor positions (x, z) on the rug, at least 1.1 m apart where they fit
    (the spacing shrinks by 10% until they do)."""
    spacing = 1.1
    candidates = rng.uniform(-RUG + 0.5, RUG - 0.5, (400, 2))
    while True:
        chosen: list[np.ndarray] = []
        for point in candidates:
            if all(np.hypot(*(point - other)) >= spacing for other in chosen):
                chosen.append(point)
                if len(chosen) == count:
                    return np.array(chosen)
        spacing *= 0.9


def _looks(rng: np.random.Generator, frames: int, focus: int, toys: int) -> list[tuple[int, int]]:
    """``(toy, frames)`` looks that fill the clip: 2-4 (one when under 8 frames), alternating
    between the focus toy, which gets 55-75% of the frames, and other toys."""
    count = 1 if frames < 8 else int(rng.integers(2, 5))
    first_focus = bool(rng.random() < 0.5) or count == 1
    on_focus = [(i % 2 == 0) == first_focus for i in range(count)]
    share = rng.uniform(0.55, 0.75) if not all(on_focus) else 1.0
    weights = np.where(on_focus, share / max(1, sum(on_focus)), (1 - share) / max(1, count - sum(on_focus)))
    weights = weights * rng.uniform(0.7, 1.3, count)
    lengths = np.maximum(1, np.floor(weights / weights.sum() * frames)).astype(int)
    lengths[int(np.argmax(lengths))] += frames - lengths.sum()
    others = [toy for toy in range(toys) if toy != focus]
    looks, last = [], focus
    for look_focus, length in zip(on_focus, lengths):
        toy = focus if look_focus else int(rng.choice([t for t in others if t != last] or others))
        looks.append((toy, int(length)))
        last = toy
    return looks


def _walk(rng: np.random.Generator, frames: int, toys: np.ndarray, focus: int, eye: float) -> np.ndarray:
    """Camera positions ``[frames, 3]`` (m): a smooth walk (see :class:`Playroom`) that starts
    about 1.4-2.4 m from the focus toy (the clear spot nearest that) and is drawn back whenever it strays beyond STAY of it, kept at
    least CLEARANCE from every toy and within ROAM of the room's centre."""
    spots = rng.uniform(-ROAM, ROAM, (400, 2))
    clear = np.hypot(*(spots[:, None] - toys[None]).transpose(2, 0, 1)).min(1)
    from_focus = np.hypot(*(spots - toys[focus]).T)
    wanted = rng.uniform(1.4, 2.4)  # the spot nearest this far from the focus toy, of those clear of every toy
    start = spots[np.argmin(np.where(clear >= CLEARANCE + 0.2, np.abs(from_focus - wanted), 1e6 - clear))]  # none clear: the clearest
    heading = math.atan2(*(toys[focus] - start)) + rng.normal(0, 0.8)  # set off roughly past the focus toy
    speed = rng.uniform(0.03, 0.07)  # m a frame
    position, velocity = start.copy(), np.zeros(2)
    path = np.empty((frames, 3))
    for t in range(frames):
        path[t] = [position[0], eye, position[1]]
        heading += rng.normal(0, 0.15)
        wanted = speed * np.array([math.sin(heading), math.cos(heading)])
        away = position - toys
        gap = np.hypot(*away.T)
        near = gap < CLEARANCE + 0.6
        push = (away[near] / gap[near, None] * (CLEARANCE + 0.6 - gap[near, None])).sum(0) * 0.15
        push += np.where(np.abs(position) > ROAM - 0.5, -np.sign(position) * 0.05, 0.0)
        to_focus = toys[focus] - position
        if np.hypot(*to_focus) > STAY:
            push += to_focus / np.hypot(*to_focus) * speed
        velocity += 0.2 * (wanted + push - velocity)
        if np.hypot(*push) > 0:
            heading = math.atan2(velocity[0], velocity[1])  # the walker turns away from what it avoids
        position = np.clip(position + velocity, -ROAM, ROAM)
        for k in np.flatnonzero(np.hypot(*(position - toys).T) < CLEARANCE):
            offset = position - toys[k]
            position = toys[k] + offset / max(np.hypot(*offset), 1e-9) * CLEARANCE
    return path


def _gaze(rng: np.random.Generator, path: np.ndarray, centres: np.ndarray,
          looks: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Head yaw and pitch per frame (degrees, as :func:`~cltt.data.render3d.head_camera` takes
    them) following the looks (see :class:`Playroom`); the first frame already looks."""
    target = np.concatenate([[toy] * length for toy, length in looks])
    aside = {i: (rng.uniform(-ASIDE[0], ASIDE[0]), rng.uniform(-ASIDE[1], ASIDE[1])) for i in range(len(looks))}
    look_of = np.concatenate([[i] * length for i, (_, length) in enumerate(looks)])
    yaw, pitch = np.empty(len(path)), np.empty(len(path))
    tremor = np.zeros(2)
    for t, position in enumerate(path):
        to = centres[target[t]] - position
        wanted = np.array([math.degrees(math.atan2(to[0], to[2])),
                           math.degrees(math.atan2(to[1], math.hypot(to[0], to[2])))]) + aside[look_of[t]]
        if t == 0:
            current = wanted
        else:
            gap = np.array([(wanted[0] - yaw[t - 1] + 180) % 360 - 180, wanted[1] - pitch[t - 1]])
            current = np.array([yaw[t - 1], pitch[t - 1]]) + np.clip(TURN * gap, -MAX_TURN, MAX_TURN)
        tremor = 0.7 * tremor + rng.normal(0, 0.6, 2)
        yaw[t], pitch[t] = current[0] + tremor[0], current[1] + tremor[1]
    return yaw, pitch


def room_view(camera: Camera, side: int) -> np.ndarray:
    """What the camera sees of the empty room, ``[side, side, 3]`` float32 RGB 0..255: each pixel's
    ray (:meth:`Camera.rays`) from ``camera.position`` meets the floor (0.3 m boards, and the rug
    of half-width RUG with a border), the ceiling or a wall (each its own tint, a skirting board,
    a window on +z and a door on -x), darkened by 1 / (1 + 0.04 distance)."""
    rays = camera.rays(side)
    origin = np.asarray(camera.position, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        hits = {}
        for axis, limit in ((0, WALL), (2, WALL)):
            reach = (np.sign(rays[..., axis]) * limit - origin[axis]) / rays[..., axis]
            hits[axis] = np.where(reach > 0, reach, np.inf)
        plane = np.where(rays[..., 1] < 0, -origin[1] / rays[..., 1], (HEIGHT - origin[1]) / rays[..., 1])
        hits[1] = np.where(plane > 0, plane, np.inf)
    surface = np.argmin(np.stack([hits[0], hits[1], hits[2]]), 0)  # 0: x wall, 1: floor or ceiling, 2: z wall
    reach = np.minimum(np.minimum(hits[0], hits[1]), hits[2])
    point = origin + rays * reach[..., None]
    x, y, z = point[..., 0], point[..., 1], point[..., 2]
    image = np.empty(rays.shape, np.float64)

    boards = np.floor(x / 0.3)
    grain = 8 * np.sin(boards * 12.9898) * np.cos(boards * 4.1414)  # a fixed brightness per board
    floor = np.stack([92 + grain, 72 + grain, 54 + grain], -1)
    on_rug = (np.abs(x) < RUG) & (np.abs(z) < RUG)
    border = on_rug & ((np.abs(x) > RUG - 0.15) | (np.abs(z) > RUG - 0.15))
    floor[on_rug] = [70, 76, 70]
    floor[border] = [110, 70, 60]
    ceiling = np.broadcast_to(np.array([150.0, 150, 146]), rays.shape)
    tints = {(0, 1): [128, 112, 100], (0, -1): [100, 112, 128], (2, 1): [110, 126, 104], (2, -1): [126, 104, 118]}
    wall = np.empty(rays.shape)
    for (axis, sign), tint in tints.items():
        mine = (surface == axis) & (np.sign(rays[..., axis]) == sign)
        wall[mine] = tint
    wall[y < 0.12] = [60, 55, 50]  # skirting
    window = (surface == 2) & (rays[..., 2] > 0) & (np.abs(x) < 1.0) & (y > 1.0) & (y < 1.9)
    door = (surface == 0) & (rays[..., 0] < 0) & (np.abs(z - 1.5) < 0.45) & (y < 2.0)
    wall[window] = [185, 200, 215]
    wall[door] = [85, 60, 40]
    is_floor = (surface == 1) & (rays[..., 1] < 0)
    image[:] = wall
    image[surface == 1] = ceiling[surface == 1]
    image[is_floor] = floor[is_floor]
    return (image / (1 + 0.04 * reach[..., None])).astype(np.float32)
