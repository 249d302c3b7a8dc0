"""A small 3-D renderer for built-in data: meshes built in code, a camera on an orbit, a z-buffer.

    mesh = MESHES["torus"]()                          # Mesh: vertices [V, 3], faces [F, 3]
    camera = orbit_camera(azimuth=30, elevation=20, distance=3.2)
    image, mask = rasterise(mesh, camera, colour=(200, 80, 60), size=64, background=bg)

Everything is numpy and OpenCV on the CPU; no GPU, no display, no package beyond those.

* Meshes are closed triangle meshes, centred, scaled so every vertex lies within the unit
  sphere, faces wound counter-clockwise seen from outside (so the outward normal is
  ``(b - a) x (c - a)``).
* The camera looks at the origin from ``distance`` along the direction given by ``azimuth``
  (about the vertical y axis) and ``elevation`` (degrees) (:func:`orbit_camera`), or stands at
  a world ``position`` facing a ``yaw`` and ``pitch`` (:func:`head_camera`, y up, metres if
  the scene's unit is one); a pinhole with field of view
  ``fov`` degrees projects camera coordinates ``(x, y, z)`` (z forward) to pixels
  ``u = S/2 (1 + f x / z)``, ``v = S/2 (1 - f y / z)``, ``f = 1 / tan(fov / 2)``.
* Shading is flat Lambert with a light fixed to the camera, up and to the left:
  ``c_face = colour * (ambient + (1 - ambient) * max(0, n . l))``, so the shading of a face
  changes as the object turns, and the faceting shows the shape.
* A face is drawn where it is front-facing (back faces culled) and nearest (a z-buffer of the
  interpolated camera depth); the image is rendered at ``supersample`` times the size and
  area-averaged down, which anti-aliases the edges. The mask is the object's coverage >= 1/2.
* Several meshes share one z-buffer (:func:`rasterise_all`), so nearer objects hide farther
  ones; a face with a corner closer than ``NEAR`` to the camera plane (or behind it) is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

LIGHT = np.array([-0.45, 0.6, -0.66])  # towards the light, in camera coordinates (z forward)
LIGHT = LIGHT / np.linalg.norm(LIGHT)


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray  # [V, 3] float64
    faces: np.ndarray  # [F, 3] int64, counter-clockwise from outside

    def normalised(self) -> "Mesh":
        """Centred on its bounding box, scaled into the unit sphere."""
        v = self.vertices - (self.vertices.max(0) + self.vertices.min(0)) / 2
        return Mesh(v / np.linalg.norm(v, axis=1).max(), self.faces)

    def joined(self, other: "Mesh") -> "Mesh":
        return Mesh(np.concatenate([self.vertices, other.vertices]),
                    np.concatenate([self.faces, other.faces + len(self.vertices)]))

    def moved(self, offset, scale=(1.0, 1.0, 1.0)) -> "Mesh":
        return Mesh(self.vertices * np.asarray(scale, float) + np.asarray(offset, float), self.faces)


# --------------------------------------------------------------------------- meshes


def _outward(vertices: np.ndarray, faces: np.ndarray) -> Mesh:
    """Faces of a convex-per-part mesh, each wound so its normal points away from the centre of its vertices' part."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    normal = np.cross(b - a, c - a)
    outward = np.einsum("ij,ij->i", normal, (a + b + c) / 3 - vertices.mean(0)) >= 0
    faces = np.where(outward[:, None], faces, faces[:, ::-1])
    return Mesh(vertices.astype(np.float64), faces.astype(np.int64))


def box(size=(1.0, 1.0, 1.0)) -> Mesh:
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * np.asarray(size) / 2
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    return _outward(corners, np.array([t for q in quads for t in ((q[0], q[1], q[2]), (q[0], q[2], q[3]))]))


def prism(sides: int, top_scale: float = 1.0, height: float = 1.5) -> Mesh:
    """A ``sides``-gon prism along y (``top_scale`` < 1: a frustum; 0: a cone or pyramid)."""
    angles = 2 * math.pi * np.arange(sides) / sides + math.pi / sides
    ring = np.stack([np.cos(angles), np.zeros(sides), np.sin(angles)], 1)
    bottom = ring + [0, -height / 2, 0]
    if top_scale == 0:
        vertices = np.concatenate([bottom, [[0, height / 2, 0], [0, -height / 2, 0]]])
        apex, base = sides, sides + 1
        faces = [(i, (i + 1) % sides, apex) for i in range(sides)] + [(base, (i + 1) % sides, i) for i in range(sides)]
        return _outward(vertices, np.array(faces))
    top = ring * [top_scale, 1, top_scale] + [0, height / 2, 0]
    vertices = np.concatenate([bottom, top, [[0, -height / 2, 0], [0, height / 2, 0]]])
    low, high = 2 * sides, 2 * sides + 1
    faces = []
    for i in range(sides):
        j = (i + 1) % sides
        faces += [(i, j, sides + j), (i, sides + j, sides + i), (low, j, i), (high, sides + i, sides + j)]
    return _outward(vertices, np.array(faces))


def uv_sphere(rings: int = 6, segments: int = 10) -> Mesh:
    vertices = [[0, 1, 0]]
    for r in range(1, rings):
        polar = math.pi * r / rings
        for s in range(segments):
            azimuth = 2 * math.pi * s / segments
            vertices.append([math.sin(polar) * math.cos(azimuth), math.cos(polar), math.sin(polar) * math.sin(azimuth)])
    vertices.append([0, -1, 0])
    bottom = len(vertices) - 1
    faces = []
    for s in range(segments):
        t = (s + 1) % segments
        faces.append((0, 1 + t, 1 + s))
        faces.append((bottom, 1 + (rings - 2) * segments + s, 1 + (rings - 2) * segments + t))
    for r in range(rings - 2):
        for s in range(segments):
            t = (s + 1) % segments
            a, b = 1 + r * segments + s, 1 + r * segments + t
            c, d = a + segments, b + segments
            faces += [(a, b, d), (a, d, c)]
    return _outward(np.array(vertices, float), np.array(faces))


def torus(major: int = 12, minor: int = 6, thickness: float = 0.4) -> Mesh:
    vertices, faces = [], []
    for i in range(major):
        u = 2 * math.pi * i / major
        for j in range(minor):
            w = 2 * math.pi * j / minor
            radius = 1 + thickness * math.cos(w)
            vertices.append([radius * math.cos(u), thickness * math.sin(w), radius * math.sin(u)])
    for i in range(major):
        for j in range(minor):
            a, b = i * minor + j, i * minor + (j + 1) % minor
            c, d = ((i + 1) % major) * minor + j, ((i + 1) % major) * minor + (j + 1) % minor
            faces += [(a, c, d), (a, d, b)]
    vertices, faces = np.array(vertices, float), np.array(faces)
    # wind each face away from the tube's centre line (the torus is not convex)
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    centre = (a + b + c) / 3
    ring = centre * [1, 0, 1]
    ring = ring / np.linalg.norm(ring, axis=1, keepdims=True)
    away = np.einsum("ij,ij->i", np.cross(b - a, c - a), centre - ring) >= 0
    return Mesh(vertices, np.where(away[:, None], faces, faces[:, ::-1]))


def octahedron() -> Mesh:
    vertices = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    faces = [(a, b, c) for a in (0, 1) for b in (2, 3) for c in (4, 5)]
    return _outward(vertices, np.array(faces))


def tetrahedron() -> Mesh:
    vertices = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
    return _outward(vertices, np.array([(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]))


def _parts(*parts: Mesh) -> Mesh:
    mesh = parts[0]
    for part in parts[1:]:
        mesh = mesh.joined(part)
    return mesh


MESHES: dict[str, Callable[[], Mesh]] = {
    "cube": lambda: box(),
    "tetrahedron": tetrahedron,
    "octahedron": octahedron,
    "pyramid": lambda: prism(4, 0.0, 1.4),
    "hexagonal_prism": lambda: prism(6, 1.0, 0.7),
    "cylinder": lambda: prism(12, 1.0, 2.2),
    "cone": lambda: prism(12, 0.0, 2.0),
    "sphere": uv_sphere,
    "torus": torus,
    "l_block": lambda: _parts(box((2.0, 0.7, 0.7)).moved((0.35, -0.65, 0)), box((0.7, 2.0, 0.7)).moved((-0.65, 0, 0))),
    "t_block": lambda: _parts(box((2.2, 0.7, 0.7)).moved((0, 0.75, 0)), box((0.7, 1.8, 0.7)).moved((0, -0.3, 0))),
    "dumbbell": lambda: _parts(uv_sphere(5, 8).moved((-1.1, 0, 0), (0.6, 0.6, 0.6)),
                               uv_sphere(5, 8).moved((1.1, 0, 0), (0.6, 0.6, 0.6)), _bar()),
}


def _bar() -> Mesh:
    """The dumbbell's handle: a thin 8-sided bar along x."""
    bar = prism(8, 1.0, 1.6)
    v = bar.vertices * [0.22, 1.0, 0.22]
    return _outward(np.stack([v[:, 1], v[:, 0], v[:, 2]], 1), bar.faces)


# --------------------------------------------------------------------------- camera and rasteriser


def rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


NEAR = 0.05  # faces with a corner nearer than this to the camera plane (camera z, scene units) are dropped


@dataclass(frozen=True)
class Camera:
    rotation: np.ndarray  # [3, 3] world -> camera
    distance: float
    fov: float = 40.0
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # subtracted before the rotation

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``[N, 3]`` -> camera coordinates ``[N, 3]`` (z forward, y up):
        ``R (p - position) + (0, 0, distance)``."""
        return (points - np.asarray(self.position, float)) @ self.rotation.T + [0.0, 0.0, self.distance]

    def rays(self, side: int) -> np.ndarray:
        """World directions ``[side, side, 3]`` (not unit length) through the centre of each pixel
        of a ``side``-pixel image, the inverse of the projection in the module doc."""
        f = 1.0 / math.tan(math.radians(self.fov) / 2)
        centres = (np.arange(side) + 0.5) / side * 2 - 1
        x, y = np.meshgrid(centres / f, -centres / f)
        return np.stack([x, y, np.ones_like(x)], -1) @ self.rotation  # camera -> world: R^T d


def orbit_camera(azimuth: float, elevation: float, distance: float, fov: float = 40.0) -> Camera:
    """A camera ``distance`` from the origin, looking at it, from ``azimuth`` and ``elevation`` degrees."""
    return Camera(rotation("x", elevation) @ rotation("y", azimuth), distance, fov)


def head_camera(position, yaw: float, pitch: float, fov: float = 60.0) -> Camera:
    """A camera at world ``position`` (x, y, z; y up) looking along
    ``(sin yaw cos pitch, sin pitch, cos yaw cos pitch)``: ``yaw`` degrees from +z towards +x,
    ``pitch`` degrees above the horizon (negative: looking down); no roll."""
    return Camera(rotation("x", pitch) @ rotation("y", -yaw), 0.0, fov, tuple(float(c) for c in position))


def rasterise(mesh: Mesh, camera: Camera, colour, size: int, background: np.ndarray, ambient: float = 0.35,
              supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``mesh`` over ``background [size, size, 3]`` (float 0..255): (RGB uint8 ``[size, size, 3]``,
    object mask bool ``[size, size]``); see the module doc."""
    image, ids = rasterise_all([(mesh, colour)], camera, size, background, ambient, supersample)
    return image, ids == 1


def rasterise_all(objects, camera: Camera, size: int, background: np.ndarray, ambient: float = 0.35,
                  supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Draw several ``(mesh, colour)`` with one z-buffer over ``background`` (float 0..255, any
    square size; resized to ``size * supersample``): (RGB uint8 ``[size, size, 3]``, object ids
    uint8 ``[size, size]``: 0 background, k where the k-th object covers at least half the pixel).
    """
    side = size * supersample
    meshes = [mesh for mesh, _ in objects]
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes])
    vertices = np.concatenate([m.vertices for m in meshes])
    faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets)])
    owner = np.concatenate([np.full(len(m.faces), k, np.int64) for k, m in enumerate(meshes)])
    points = camera.to_camera(vertices)
    in_front = points[:, 2] > NEAR
    depth_of = np.where(in_front, points[:, 2], 1.0)  # no division by ~0 for corners that are dropped anyway
    f = 1.0 / math.tan(math.radians(camera.fov) / 2)
    pixels = np.stack([side / 2 * (1 + f * points[:, 0] / depth_of),
                       side / 2 * (1 - f * points[:, 1] / depth_of)], 1)
    depth_buffer = np.full((side, side), np.inf)
    face_of = np.full((side, side), -1, np.int64)
    corners = points[faces]  # [F, 3, 3] in camera coordinates
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    facing = np.einsum("ij,ij->i", normals, corners.mean(1)) < 0  # the outward normal points back at the camera
    a, b, c = (pixels[faces[:, i]] for i in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    low, high = np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)
    on_screen = (high > 0).all(1) & (low < side).all(1)
    drawn = facing & (np.abs(area) > 1e-9) & in_front[faces].all(1) & on_screen
    for index in np.flatnonzero(drawn):
        tri = pixels[faces[index]]
        x0, y0 = np.maximum(np.floor(tri.min(0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(tri.max(0)).astype(int) + 1, side)
        if x0 >= x1 or y0 >= y1:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
        (ax, ay), (bx, by), (cx, cy) = tri
        w_a = ((bx - gx) * (cy - gy) - (by - gy) * (cx - gx)) / area[index]
        w_b = ((cx - gx) * (ay - gy) - (cy - gy) * (ax - gx)) / area[index]
        w_c = 1 - w_a - w_b
        inside = (w_a >= 0) & (w_b >= 0) & (w_c >= 0)
        if not inside.any():
            continue
        z = points[faces[index], 2]
        depth = w_a * z[0] + w_b * z[1] + w_c * z[2]
        window = depth_buffer[y0:y1, x0:x1]
        nearer = inside & (depth < window)
        window[nearer] = depth[nearer]
        face_of[y0:y1, x0:x1][nearer] = index
    light = ambient + (1 - ambient) * np.clip(normals @ LIGHT, 0, None)
    colours = np.stack([np.asarray(colour, float) for _, colour in objects])
    shades = light[:, None] * colours[owner]  # [F, 3]
    covered = face_of >= 0
    canvas = cv2.resize(background.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    canvas[covered] = shades[face_of[covered]]
    image = cv2.resize(canvas.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    pixel_owner = np.where(covered, owner[face_of], -1)
    coverage = np.stack([cv2.resize((pixel_owner == k).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
                         for k in range(len(objects))])
    best = coverage.argmax(0)
    ids = np.where(np.take_along_axis(coverage, best[None], 0)[0] >= 0.5, best + 1, 0).astype(np.uint8)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), ids
