"""``rotating-objects``: one 3-D object per clip (``max_objects`` distinct meshes built in code),
flat-shaded in a hue every object shares, seen by a camera orbiting it; label = the object;
every object has train clips and held-out clips, each clip its own orbit (rendered by
:mod:`cltt.data.render3d`).
"""

from __future__ import annotations

import colorsys

import numpy as np

from cltt.data.render3d import MESHES, Mesh, orbit_camera, rasterise, rotation
from cltt.data.synthetic.base import ClipPlan, Generator, Scene, textured_background
from cltt.data.synthetic.registry import register_generator
from cltt.errors import CLTTError


def object_colour(rng: np.random.Generator, hues) -> tuple[float, np.ndarray]:
    """A hue near one of ``hues`` (within 0.02) and its RGB ``[3]`` in 0..255, saturation 0.55-0.8 and
    value 0.75-0.95: a colour that says nothing about which object wears it."""
    hue = float(rng.choice(hues) + rng.uniform(-0.02, 0.02)) % 1.0
    return hue, np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.55, 0.8), rng.uniform(0.75, 0.95))) * 255


@register_generator("rotating-objects", id=4)
class RotatingObjects(Generator):
    """One 3-D object per clip, seen by a camera orbiting it; label = which object.

    The objects are the first ``max_objects`` meshes of :data:`cltt.data.render3d.MESHES`
    (cube, tetrahedron, octahedron, pyramid, hexagonal prism, cylinder, cone, sphere, torus,
    L-block, T-block, dumbbell), each drawn flat-shaded in a colour drawn per clip from three
    hues that every object shares, so colour says nothing about the label and shape has to.
    Each clip has its own orbit: an elevation (-20..40 degrees), a start azimuth, a direction,
    4-9 degrees per frame, a camera distance and a small tilt of the object, so a held-out
    clip's views are new ones, never frames of a train clip. Every clip shares one background:
    a background of its own would let a model tell clips apart without looking at the object
    (measured: a cltt probe on such data scored no better than random-init features). Splits
    hold out whole clips, object by object: about 20% test, 15% val, at least one test clip.
    """
    hues = (0.02, 0.36, 0.62)  # red-orange, green, blue: shared by all objects
    fps = 10.0  # as the other generators: a turntable clip of 32 frames lasts 3.2 s
    elevation = (-20.0, 40.0)  # degrees, every clip its own

    def object_names(self, config) -> list[str]:
        return list(MESHES)[:min(config.max_objects, len(MESHES))]

    def plan(self, config):
        names = self.object_names(config)
        if config.clips < 2 * len(names):
            raise CLTTError(f"rotating-objects needs at least 2 clips per object (a train and a test clip): "
                            f"{len(names)} objects need extract.synthetic.clips >= {2 * len(names)}, got {config.clips}")
        rng = np.random.default_rng([config.seed, self.id])
        objects = [i % len(names) for i in range(config.clips)]
        splits = [""] * config.clips
        for k in range(len(names)):
            clips = rng.permutation([i for i, o in enumerate(objects) if o == k])
            test = max(1, round(0.2 * len(clips)))
            val = round(0.15 * len(clips)) if len(clips) - test >= 2 else 0
            for j, clip in enumerate(clips):
                splits[clip] = "test" if j < test else "val" if j < test + val else "train"
        return [ClipPlan(i, 1, (objects[i],), names[objects[i]], splits[i]) for i in range(config.clips)]

    def scene(self, config, plan):
        rng = self.clip_rng(config, plan.index)
        orbit = {"elevation": float(rng.uniform(*self.elevation)), "azimuth": float(rng.uniform(0, 360)),
                 "direction": int(rng.choice([-1, 1])), "speed": float(rng.uniform(4.0, 9.0)),
                 "distance": float(rng.uniform(3.0, 3.6)), "tilt": [float(a) for a in rng.uniform(-20, 20, 2)]}
        hue, colour = object_colour(rng, self.hues)
        # one background for every clip: a per-clip one would let a model tell clips apart without the object
        background = textured_background(np.random.default_rng([config.seed, self.id, 0]), config.size)
        name = plan.label
        mesh = MESHES[name]().normalised()
        tilted = Mesh(mesh.vertices @ (rotation("x", orbit["tilt"][0]) @ rotation("z", orbit["tilt"][1])).T, mesh.faces)

        def draw(images: bool) -> tuple[np.ndarray | None, np.ndarray]:
            frames = np.empty((config.frames, config.size, config.size, 3), np.uint8)
            masks = np.empty((config.frames, config.size, config.size), np.uint8)
            for t in range(config.frames):
                azimuth = orbit["azimuth"] + orbit["direction"] * orbit["speed"] * t
                camera = orbit_camera(azimuth, orbit["elevation"], orbit["distance"])
                frames[t], covered = rasterise(tilted, camera, colour, config.size, background)
                masks[t] = covered
            return (frames if images else None), masks

        return Scene(background=background, alphas=[], colours=np.zeros((1, 3), np.float32),
                     positions=np.zeros((config.frames, 1, 2), np.int64), blend="over",
                     extra={"objects": 1, "label": plan.label, "split": plan.split, "object": name,
                            "hue": round(hue, 4), **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in orbit.items()}},
                     draw=draw)
