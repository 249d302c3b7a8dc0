"""An export's preprocessing as Python source that code without cltt runs.

cltt turns an image file into the model's input in four steps (the centre view that
``cltt export --embeddings`` and the probes encode):

1. decode the file at ``1/r`` of its size (JPEG scales in the DCT domain,
   ``cv2.IMREAD_REDUCED_COLOR_r``), ``r`` the largest of 8, 4, 2 that leaves the short side
   ``>= S``, else 1 (:func:`cltt.data.decode.reduction_for`), then BGR -> RGB;
2. cut the centre square of side ``min(H, W)`` and resize it to ``S x S``, ``INTER_AREA`` when
   shrinking and ``INTER_LINEAR`` otherwise (:func:`cltt.data.transforms.center_resize`);
3. ``x = (pixel / 255 - mean) / std`` per channel in float32 (:func:`cltt.data.model_input.to_model_input`);
4. laid out ``[1, 3, S, S]``.

"Resize the short side to S, crop the centre" alone gives other pixels (step 1 and the
interpolation matter), so :func:`preprocess_source` ships cltt's own functions for steps 1-2,
their source text read with :mod:`inspect`, around a short ``preprocess(path)``: what a
user runs cannot drift from what cltt runs. cltt writes this text into the sidecar and never
executes it. A frames store picks ``r`` once, from its first frame; the function picks it per
file, which is the same wherever a root's frames share one size.
"""

from __future__ import annotations

import inspect

from cltt.data import decode, transforms
from cltt.data.model_input import IMAGENET_MEAN, IMAGENET_STD

ENTRY_POINT = "preprocess"  # the function the source defines: path -> float32 [1, 3, S, S]

_HEADER = '''\
"""cltt's preprocessing for this export: preprocess(path) -> float32 [1, 3, S, S], needs numpy and OpenCV.

Stack several with np.concatenate(..., axis=0) for a batch [N, 3, S, S].
"""
from __future__ import annotations

import cv2
import numpy as np
'''

_ENTRY = '''
IMAGE_SIZE = {size}
MEAN = np.array({mean}, dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array({std}, dtype=np.float32).reshape(1, 3, 1, 1)
DECODE_FLAGS = {flags}  # reduction r -> cv2.IMREAD_COLOR, cv2.IMREAD_REDUCED_COLOR_2, _4, _8


def {entry}(path):
    """The image file at ``path`` as the model's input: float32 [1, 3, IMAGE_SIZE, IMAGE_SIZE], RGB, normalised."""
    encoded = np.fromfile(path, dtype=np.uint8)
    full = header_size(encoded)
    if full is None:  # neither a JPEG nor a PNG header: measure it by decoding in full
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        full = None if image is None else image.shape[:2]
    image = None if full is None else cv2.imdecode(encoded, DECODE_FLAGS[reduction_for(min(full), IMAGE_SIZE)])
    if image is None:
        raise ValueError(f"{{path}} is not a decodable image")
    view = center_resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), IMAGE_SIZE)  # uint8 [S, S, 3]
    pixels = view.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)
    return (pixels - MEAN) / STD
'''


def preprocess_source(image_size: int) -> str:
    """Source of a module defining ``preprocess(path) -> float32 [1, 3, S, S]`` for ``S = image_size``.

    Self-contained: imports numpy and cv2 only, holds cltt's decode and crop functions verbatim.
    """
    shipped = [decode.header_size, decode.reduction_for, transforms.resized_crop, transforms.center_resize]
    constants = f"_SOF = frozenset({sorted(decode._SOF)})  # JPEG start-of-frame markers, for header_size\n"
    flags = {reduction: int(flag) for reduction, flag in sorted(decode.reduced_flags().items())}
    entry = _ENTRY.format(size=image_size, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), flags=flags,
                          entry=ENTRY_POINT)
    return "\n\n".join([_HEADER + "\n" + constants] + [inspect.getsource(function) for function in shipped]) + "\n" + entry
