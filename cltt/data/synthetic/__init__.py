"""Built-in synthetic datasets, written as frames on disk so everything runs with no download.

One generator a module, each a folder of clips ``OUT/clip_0000/frame_000001.jpg ...``:

* ``bouncing-balls`` (:mod:`.bouncing_balls`): coloured balls bouncing off the walls; label =
  ball count.
* ``moving-digits`` (:mod:`.moving_digits`): handwritten digits bouncing on black, Moving-MNIST
  style; label = the digit of single-digit clips.
* ``phases`` (:mod:`.phases`): one object taken through the same four phases at each clip's
  own pace, for CARL's frame-wise evaluation; ``phases.csv`` labels every frame.
* ``rotating-objects`` (:mod:`.rotating_objects`): one 3-D object per clip seen by an orbiting
  camera; label = the object.
* ``playroom`` (:mod:`.playroom`): toys standing in a room, seen by a head camera that walks
  and looks among them; ``centre.csv`` labels each frame with the toy nearest the centre, and
  the label is the kind seen most.

:mod:`.registry` is the one list of them (a new module with a registered
:class:`~cltt.data.synthetic.base.Generator` is a new dataset), :mod:`.base` what they share,
:mod:`.writer` how a dataset is written (clips, ``labels.csv``, ``boxes.csv``, masks). A clip
depends only on the config and its index, so runs are reproducible byte for byte and a rerun
skips finished clips:

    for result in write_synthetic("moving-digits", Path("data/digits"), SyntheticConfig()):
        print(result.clip, result.status)
"""

from cltt.data.synthetic.base import ClipPlan, Generator, Scene
from cltt.data.synthetic.moving_digits import digit_samples
from cltt.data.synthetic.phases import PHASE_NAMES, phase_timeline
from cltt.data.synthetic.registry import get_generator, register_generator, registered_generators
from cltt.data.synthetic.writer import write_synthetic

__all__ = [
    "PHASE_NAMES",
    "ClipPlan",
    "Generator",
    "Scene",
    "digit_samples",
    "get_generator",
    "phase_timeline",
    "register_generator",
    "registered_generators",
    "write_synthetic",
]
