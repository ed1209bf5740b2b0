"""The burst decision on real frames: consensus across frames and the veto of a second person."""

from conftest import load_bgr, on_canvas, scene, write_video


def _clip(tmp_path, name, frames):
    return write_video(tmp_path / f"{name}.avi", frames)


def test_one_matching_frame_is_not_enough(app, kiosk, photos, tmp_path):
    kiosk.register("grace", photos["grace"])
    grace = on_canvas(load_bgr(photos["grace"]))
    kiosk.look(_clip(tmp_path, "glimpse", [scene(1), scene(2), grace, scene(3)]))
    app.config["CAMERA_FRAMES"] = 4
    refused = kiosk.face_login()
    assert refused.status_code == 401 and b"Face not recognised" in refused.data
    app.config["FACE_CONSENSUS"] = 1
    assert kiosk.face_login().headers["Location"] == "/protected"


def test_a_second_enrolled_person_in_the_burst_vetoes(app, kiosk, photos, tmp_path):
    kiosk.register("grace", photos["grace"])
    kiosk.register("luis", photos["luis"])
    grace, luis = on_canvas(load_bgr(photos["grace"])), on_canvas(load_bgr(photos["luis"]))
    kiosk.look(_clip(tmp_path, "swap", [grace, luis, grace, grace]))
    app.config["CAMERA_FRAMES"] = 4
    refused = kiosk.face_login()
    assert refused.status_code == 401 and b"Face not recognised" in refused.data
    kiosk.look(_clip(tmp_path, "steady", [grace, grace, luis, luis]))
    assert kiosk.face_login().headers["Location"] == "/protected"  # decided before Luis appears
