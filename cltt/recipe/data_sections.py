"""The recipe sections of the data: ``data`` (frames and windows, ``data.augment``) and
``extract`` (videos to frames, ``extract.synthetic``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from cltt.errors import RecipeError
from cltt.recipe.checks import check_finite, check_min, check_pair, check_positive, check_probability


@dataclass
class AugmentConfig:
    """Spatial and photometric augmentation of every view of a window."""

    enabled: bool = True  # false: frames as decoded, resized to image_size
    consistent: bool = True  # one draw per window (True) or an independent draw per frame
    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])  # random resized crop: the area fraction's range
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])  # random resized crop: the aspect ratio's range
    flip_p: float = 0.5  # probability of a horizontal flip
    jitter_p: float = 0.8  # probability of colour jitter
    jitter: list[float] = field(default_factory=lambda: [0.4, 0.4, 0.4, 0.1])  # b, c, s, hue
    grayscale_p: float = 0.2  # probability of turning the frame grey
    blur_p: float = 0.0  # probability of a Gaussian blur
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])  # the blur's sigma range, in pixels

    def validate(self, at: str) -> None:
        check_pair(self.crop_scale, f"{at}.crop_scale", low=0.0, high=1.0)
        check_pair(self.crop_ratio, f"{at}.crop_ratio", low=0.0)
        if self.crop_ratio[0] <= 0:  # the crop draws its aspect ratio as exp(uniform(log low, log high))
            raise RecipeError(f"recipe key '{at}.crop_ratio' must be [low, high] with 0 < low <= high (aspect ratios "
                              f"w/h), got {self.crop_ratio}")
        check_pair(self.blur_sigma, f"{at}.blur_sigma", low=0.0)
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
            check_probability(getattr(self, name), f"{at}.{name}")
        if len(self.jitter) != 4 or not all(0 <= v < float("inf") for v in self.jitter) or self.jitter[3] > 0.5:
            raise RecipeError(
                f"recipe key '{at}.jitter' must be [brightness, contrast, saturation, hue] "
                f"with finite values >= 0 and hue <= 0.5, got {self.jitter}"
            )


DEFAULT_MAX_PIXELS = 50_000_000  # data.max_pixels: 50 MP (a 4K video frame is 8.3 MP)


@dataclass
class DataConfig:
    """Where the frames are and how they become windows.

    window(t) = [t, t+s, ..., t+(W-1)s] with W = window_size and s = frame_step; the next
    window starts at t + window_stride; two_view_offset = k > 0 pairs window(t) with
    window(t+k) of the same clip.
    """

    root: str = "data/digits"  # a folder of clip folders, or a packed store (cltt pack)
    # built-in data written to root if missing: a name of cltt.data.synthetic's registry (open_frames checks it)
    synthetic: Optional[str] = None
    window_size: int = 5  # W: frames in a window
    frame_step: int = 1  # s: frames between consecutive frames of a window
    window_stride: int = 1  # frames between the starts of consecutive windows
    two_view_offset: int = 0  # k > 0: a sample pairs window(t) with window(t+k) of the same clip
    gaps: Literal["split", "ignore", "error"] = "split"  # missing frame numbers in a clip: cut windows there, or not, or stop
    image_size: int = 64  # side of the square frames the model sees, in pixels
    num_workers: int = 2  # DataLoader worker processes (0: load in the training process)
    decode: Literal["cpu", "gpu"] = "cpu"  # gpu: workers read bytes, JPEGs decoded and augmented on the CUDA device
    cache_dir: Optional[str] = None  # frames roots' manifests; default $CLTT_CACHE, else ~/.cache/cltt
    # a frame whose header says H * W is larger is corrupt (index --verify lists it, training skips it):
    # decoding costs 3 * H * W bytes at every read, 1.2 GB for 20000 x 20000
    max_pixels: int = DEFAULT_MAX_PIXELS
    boxes: Optional[str] = None  # CSV clip,frame,x1,y1,x2,y2; default ROOT/boxes.csv
    # a text file of clip names, one a line: training samples come from these clips only (the
    # train split of a labelled root, so probes score clips never trained on); probes read every clip
    clips: Optional[str] = None
    # blur the background outside each frame's box (boxes_or_center: a centre box where a frame has none)
    object_focus: Literal["none", "boxes", "boxes_or_center"] = "none"
    focus_blur_sigma: float = 6.0  # object_focus's background blur, in pixels
    center_box_fraction: float = 0.5  # object_focus=boxes_or_center: side of the centre box, as a fraction of the frame
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self, at: str) -> None:
        for name in ("window_size", "frame_step", "window_stride", "image_size", "max_pixels"):
            check_min(getattr(self, name), f"{at}.{name}", 1)
        # data.synthetic is checked against the generator registry by the data layer that owns it
        # (cltt.data.build.open_frames, before any frame is read), not here: the recipe sits below data.
        check_min(self.two_view_offset, f"{at}.two_view_offset", 0)
        check_min(self.num_workers, f"{at}.num_workers", 0)
        check_min(self.focus_blur_sigma, f"{at}.focus_blur_sigma", 0)
        if not 0 < self.center_box_fraction <= 1:
            raise RecipeError(
                f"recipe key '{at}.center_box_fraction' must be in (0, 1], "
                f"got {self.center_box_fraction}"
            )


@dataclass
class SyntheticConfig:
    """Size of the built-in data that ``cltt extract --synthetic NAME`` writes."""

    clips: int = 60  # clips to write
    frames: int = 48  # frames per clip
    size: int = 64  # frame side, in pixels
    max_objects: int = 3  # most objects in a clip (rotating-objects: how many objects there are)
    seed: int = 0  # the data's seed: two runs with one seed write identical files

    def validate(self, at: str) -> None:
        for name in ("clips", "frames", "max_objects"):
            check_min(getattr(self, name), f"{at}.{name}", 1)
        check_min(self.size, f"{at}.size", 24)
        check_min(self.seed, f"{at}.seed", 0)
        if self.clips < 3:
            raise RecipeError(
                f"recipe key '{at}.clips' must be at least 3 (one clip per split), got {self.clips}"
            )


@dataclass
class ExtractConfig:
    """How ``cltt extract`` turns videos into frames."""

    fps: Optional[float] = None  # target frames per second; None keeps the video's rate
    every_nth: int = 1  # keep every n-th decoded frame (used when fps is None)
    short_side: Optional[int] = None  # resize so the short side has this many pixels
    center_crop: bool = False  # crop the centre square after resizing
    jpeg_quality: int = 95  # quality of the JPEGs written, 1..100
    start: Optional[float] = None  # seconds
    end: Optional[float] = None  # seconds
    workers: int = 1  # videos extracted in parallel
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def validate(self, at: str) -> None:
        if self.fps is not None:
            check_positive(self.fps, f"{at}.fps")
        check_min(self.every_nth, f"{at}.every_nth", 1)
        if self.fps is not None and self.every_nth != 1:
            raise RecipeError(f"recipe keys '{at}.fps' and '{at}.every_nth' both choose the kept frames; "
                              f"give one of them (--fps {self.fps:g} or --every-nth {self.every_nth})")
        if self.short_side is not None:
            check_min(self.short_side, f"{at}.short_side", 8)
        if not 1 <= self.jpeg_quality <= 100:
            raise RecipeError(
                f"recipe key '{at}.jpeg_quality' must be in 1..100, got {self.jpeg_quality}"
            )
        for name in ("start", "end"):
            if getattr(self, name) is not None:
                check_finite(getattr(self, name), f"{at}.{name}")
        if self.start is not None and self.start < 0:
            raise RecipeError(f"recipe key '{at}.start' must be >= 0 seconds, got {self.start}")
        if self.end is not None and self.end <= 0:
            raise RecipeError(f"recipe key '{at}.end' must be > 0 seconds, got {self.end}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise RecipeError(
                f"recipe key '{at}.end' ({self.end}) must be after '{at}.start' ({self.start})"
            )
        check_min(self.workers, f"{at}.workers", 1)
