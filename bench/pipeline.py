"""Time per stage for one 640x480 camera frame with one face: the naive pipeline against ours.

naive: face_recognition's defaults: load_image_file (Pillow), face_locations at full
       resolution (HOG, upsample 1), face_encodings (5-point landmarks, then the encoding).
ours:  faces.py as the login uses it: OpenCV decode + frame_to_rgb, find_single_face with
       DETECT_WIDTH=320 and quick=True (dark check, HOG on a 320 px copy without upsampling,
       upsampled only when that finds no face), encode_face (68-point landmarks on the full
       frame, then the encoding). The third column is ours with the upsampled search always
       run (quick=False), as registration photos are checked.
The encoding itself (dlib's ResNet, 1 jitter) is the same in both and is the floor.

    .venv/bin/python bench/pipeline.py [--repeats 15]
"""

import argparse
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from facelogin.engine import faces  # noqa: E402

DETECT_WIDTH = 320


def stages(jpeg, repeats):
    """Return {pipeline: {stage: median ms}} for the naive pipeline and ours."""
    fr = faces._engine()
    api = fr.api
    rgb = fr.load_image_file(io.BytesIO(jpeg))
    naive_box = fr.face_locations(rgb)[0]
    naive_shape = api._raw_face_landmarks(rgb, [naive_box], model="small")[0]
    ours_box = faces.find_single_face(rgb, 80, DETECT_WIDTH, quick=True).box
    ours_shape = api._raw_face_landmarks(rgb, [ours_box], model="large")[0]

    def naive_frame():
        image = fr.load_image_file(io.BytesIO(jpeg))
        return fr.face_encodings(image, fr.face_locations(image))[0]

    def frame(quick):
        image = faces.frame_to_rgb(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
        return faces.encode_face(image, faces.find_single_face(image, 80, DETECT_WIDTH, quick=quick).box)

    run = lambda fn: common.median_ms(common.timed(fn, repeats))  # noqa: E731
    encode = run(lambda: api.face_encoder.compute_face_descriptor(rgb, ours_shape, 1))
    return {
        "naive": {
            "decode": run(lambda: fr.load_image_file(io.BytesIO(jpeg))),
            "detect": run(lambda: fr.face_locations(rgb)),
            "landmarks": run(lambda: api._raw_face_landmarks(rgb, [naive_box], model="small")),
            "encode": run(lambda: api.face_encoder.compute_face_descriptor(rgb, naive_shape, 1)),
            "whole frame": run(naive_frame),
        },
        "ours": {
            "decode": run(lambda: faces.frame_to_rgb(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))),
            "detect": run(lambda: faces.find_single_face(rgb, 80, DETECT_WIDTH, quick=True)),
            "landmarks": run(lambda: api._raw_face_landmarks(rgb, [ours_box], model="large")),
            "encode": encode,
            "whole frame": run(lambda: frame(True)),
        },
        "always upsampled": {
            "detect": run(lambda: faces.find_single_face(rgb, 80, DETECT_WIDTH)),
            "whole frame": run(lambda: frame(False)),
        },
    }


def main():
    """Measure and print the per-stage table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    common.header("One 640x480 frame with one face: time per stage")
    ok, buf = cv2.imencode(".jpg", common.camera_frame("grace"), [cv2.IMWRITE_JPEG_QUALITY, 90])
    result = stages(buf.tobytes(), args.repeats)
    naive, ours, two = result["naive"], result["ours"], result["always upsampled"]
    rows = [
        (
            stage,
            f"{naive[stage]:.1f}",
            f"{ours[stage]:.1f}",
            f"{naive[stage] / ours[stage]:.1f}x",
            f"{two[stage]:.1f}" if stage in two else "same as ours",
        )
        for stage in naive
    ]
    print(f"Median ms of {args.repeats} runs (Grace Hopper's photo, 420 px tall, in a 640x480 frame):")
    common.table(
        rows,
        [
            "stage",
            "naive (library defaults)",
            f"ours (DETECT_WIDTH={DETECT_WIDTH})",
            "naive / ours",
            "ours, always upsampled (quick=False)",
        ],
    )
    floor = ours["encode"]
    for name, figures in (("Ours", ours), ("Ours always upsampled", two)):
        ratio = figures["whole frame"] / floor
        print(
            f"{name}, whole frame: {figures['whole frame']:.1f} ms = {ratio:.2f}x the floor "
            f"(the encoding alone, {floor:.1f} ms; target <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})."
        )


if __name__ == "__main__":
    main()
