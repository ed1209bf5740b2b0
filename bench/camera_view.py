"""What the kiosk's camera view costs the server per second, before and after issue 13.

Before: the MJPEG preview ran the face check and drew the box and the caption on every frame, 8 a
second. Now: the preview is a plain mirrored picture, 12 a second, and the page asks /camera/look
4 times a second (one face check of one frame each). Both are timed here, on the same 640x480 frame
with one face, in the same process; the figure that matters is CPU milliseconds per second of a
kiosk showing its camera view (lower is better).

    .venv/bin/python bench/camera_view.py [--repeats 60]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cv2  # noqa: E402

from bench import common  # noqa: E402
from facelogin.engine import faces, preview  # noqa: E402

OLD_FPS = 8  # the preview's rate before: a face check per frame
LOOKS_PER_SECOND = 4  # static/stage.js asks every 250 ms
DETECT_WIDTH, MIN_FACE_HEIGHT = 320, 80  # the defaults


def old_frame(frame):
    """The preview's work per frame before issue 13: the face check, the boxes, the caption, the JPEG."""
    rgb = faces.frame_to_rgb(frame)
    check, boxes = faces.check_faces(rgb, MIN_FACE_HEIGHT, DETECT_WIDTH, quick=True)
    for top, right, bottom, left in boxes:
        cv2.rectangle(rgb, (left, top), (right, bottom), (40, 200, 90), 4)
    preview._caption(rgb, preview.HINTS[check.problem], (40, 200, 90))
    return faces.encode_jpeg(rgb, quality=80)


def new_frame(frame):
    """The preview's work per frame now: mirror and JPEG."""
    return faces.encode_jpeg(preview.mirrored(frame), quality=80)


def look(frame):
    """One /camera/look: the login's face check of one frame."""
    return preview.look(frame, DETECT_WIDTH, MIN_FACE_HEIGHT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    common.header("The camera view's cost per second of a kiosk showing it")
    frame = common.camera_frame()
    # Interleaved, so the machine's load hits each alike.
    old, new, looks = [], [], []
    for _ in range(args.repeats):
        old += common.timed(lambda: old_frame(frame), 1, warmup=0)
        new += common.timed(lambda: new_frame(frame), 1, warmup=0)
        looks += common.timed(lambda: look(frame), 1, warmup=0)
    old_ms, new_ms, look_ms = (common.median_ms(t) for t in (old, new, looks))
    before = OLD_FPS * old_ms
    after = preview.FPS * new_ms + LOOKS_PER_SECOND * look_ms
    print("| work | median ms | per second | CPU ms per second |")
    print("|---|---|---|---|")
    print(f"| before: preview frame with face check, box, caption | {old_ms:.1f} | {OLD_FPS} | {before:.0f} |")
    print(f"| now: plain mirrored preview frame | {new_ms:.1f} | {preview.FPS} | {preview.FPS * new_ms:.0f} |")
    print(f"| now: one look (face check) | {look_ms:.1f} | {LOOKS_PER_SECOND} | {LOOKS_PER_SECOND * look_ms:.0f} |")
    print(f"| **now, together** | | | **{after:.0f}** |")
    print(f"\nnow / before: {after / before:.2f}x the CPU time per second ({args.repeats} repeats each)")


if __name__ == "__main__":
    main()
