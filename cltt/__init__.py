"""cltt: contrastive learning through time.

Self-supervised visual representations learned from video, where frames close in time are
positives. Start with ``cltt --help``; the README has the two commands that matter.
"""

__version__ = "0.1.0"

import os as _os

# FFmpeg's and OpenCV's own log lines ("moov atom not found", "[ WARN:0] ... VIDEOIO") would
# print above cltt's one-line report of the same problem; they are read when cv2 loads. A
# value the user set is kept.
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
