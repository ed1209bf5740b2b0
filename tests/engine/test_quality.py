"""The enrolment quality gate: good fixture photos pass; blurred, turned, eyes-shut and half-shadowed copies fail."""

import cv2
import pytest

from facelogin.engine import faces, quality
from media import alter, blur_face, camera, close_eyes, load_bgr, on_canvas, render_head, shade_half


@pytest.fixture(scope="module")
def sources(photos):
    """The fixture faces as BGR: Grace (frontal), Luis (a three-quarter view) and Eileen (the astronaut's face)."""
    astronaut = load_bgr(photos["astronaut"])[20:260, 100:340]  # her face, without the patch
    return {
        "grace": load_bgr(photos["grace"]),
        "luis": load_bgr(photos["luis"]),
        "eileen": cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC),
    }


def _problem(bgr):
    """Return the gate's verdict on the one face of a BGR photo."""
    rgb = faces.frame_to_rgb(bgr)
    check = faces.find_single_face(rgb, detect_width=1024)
    assert check.box, check.problem
    return quality.problem(quality.measure(rgb, check.box, faces.face_landmarks(rgb, check.box)))


# The photos the other tests enrol (conftest's people_dir variants, the camera clips' frames): all pass.
GOOD = [
    {},
    {"angle": 4, "gain": 0.9, "quality": 60},
    {"angle": -3, "gain": 1.1, "flip": True},
    {"gain": 0.75, "quality": 40, "scale": 0.9},
]


@pytest.mark.parametrize("name", ["grace", "luis", "eileen"])
@pytest.mark.parametrize("variant", range(len(GOOD)))
def test_good_fixture_photos_pass(sources, name, variant):
    assert _problem(alter(sources[name], **GOOD[variant])) is None


@pytest.mark.parametrize("name", ["grace", "luis", "eileen"])
def test_good_kiosk_camera_frames_pass(sources, name):
    frame = camera([on_canvas(alter(sources[name], gain=0.85, quality=70))])[0]
    assert _problem(frame) is None


@pytest.mark.parametrize(
    ("name", "spoil", "expected"),
    [
        ("grace", lambda bgr: blur_face(bgr, 2.0), "blurred"),
        ("eileen", lambda bgr: blur_face(bgr, 2.0), "blurred"),
        ("luis", lambda bgr: render_head(bgr, -30, 0), "turned"),  # his three-quarter view, 30 degrees further
        ("luis", lambda bgr: render_head(bgr, 0, 35), "turned"),  # and tilted back
        ("eileen", close_eyes, "eyes_closed"),
        ("grace", shade_half, "shadow"),
        ("luis", shade_half, "shadow"),
    ],
)
def test_spoilt_copies_fail_with_what_to_change(sources, name, spoil, expected):
    assert _problem(spoil(sources[name])) == expected


def test_sharpness_does_not_depend_on_the_resolution(sources):
    rgb = faces.frame_to_rgb(sources["grace"])
    small = cv2.resize(rgb, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    values = []
    for image in (rgb, small):
        box = faces.find_single_face(image, detect_width=1024).box
        values.append(quality.measure(image, box, faces.face_landmarks(image, box)).sharpness)
    assert abs(values[0] - values[1]) < 0.1 and min(values) > quality.Bars().min_sharpness


def test_a_check_set_to_zero_is_off(sources):
    blurred = faces.frame_to_rgb(blur_face(sources["grace"], 2.0))
    box = faces.find_single_face(blurred, detect_width=1024).box
    measures = quality.measure(blurred, box, faces.face_landmarks(blurred, box))
    assert quality.problem(measures) == "blurred"
    assert quality.problem(measures, quality.Bars(min_sharpness=0)) is None
