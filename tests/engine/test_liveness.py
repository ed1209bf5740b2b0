"""Liveness on the real engine: blink (the maths on fixed numbers, real clips through the kiosk) and the
head-movement challenge (rendered 3D movements pass, presentation attacks do not; its clips are made
here from the real photos in media.py and cached)."""

import functools
import statistics
import weakref

import cv2
import numpy as np
import pytest

import media
from facelogin.engine import evaluate, faces, liveness
from facelogin.services.attempts import face_login
from media import BLINK_AT
from models import LoginAttempt, db

OPEN = [0.30, 0.31, 0.29, 0.30, 0.31]


def test_eye_aspect_ratio_of_known_points():
    # Corners 3 apart, lids 0.5 above and below at both inner points: (1 + 1) / (2 * 3).
    eye = [(0, 0), (1, -0.5), (2, -0.5), (3, 0), (2, 0.5), (1, 0.5)]
    assert liveness.eye_aspect_ratio(eye) == pytest.approx(1 / 3)
    assert liveness.eye_aspect_ratio([(1, 1)] * 6) == 0.0  # no width: no division by zero


@pytest.mark.parametrize(
    ("values", "found"),
    [
        (OPEN + [0.10, 0.08, 0.30, 0.30], (4, 6, 7)),  # closed two frames, then open again
        (OPEN + [0.25, 0.12, 0.10, 0.14, 0.22, 0.30], (5, 7, 10)),  # half-open frames belong to it
        (OPEN * 4, None),  # a still face
        (OPEN + [0.10, 0.30, 0.30], None),  # one low frame: a landmark glitch, not a blink
        (OPEN + [0.10] * 13 + [0.30], None),  # eyes shut too long: a photo with eyes closed
        (OPEN + [0.10, 0.10], None),  # never reopened within the burst
        (OPEN + [0.10, None, 0.10, 0.30], None),  # the face vanished mid-blink
        ([0.30, 0.10, 0.10, 0.30, 0.30], None),  # no open-eye baseline yet
    ],
)
def test_find_blink(values, found):
    blink = liveness.find_blink(values)
    assert (blink and (blink.before, blink.deepest, blink.after)) == found


def test_empty_burst_says_no_face():
    assert liveness.watch_for_blink([]) == liveness.Watch((), "no_face", 0, None, None)


def _clip_values(path):
    """Return the (EAR, openness) of every frame of a video file, measured by the engine."""
    capture, values = cv2.VideoCapture(path), []
    while (ok := capture.read())[0]:
        rgb = faces.frame_to_rgb(ok[1])
        points = faces.face_landmarks(rgb, faces.find_single_face(rgb).box)
        values.append((liveness.face_ear(points), liveness.openness(points)))
    capture.release()
    return values


def _drop(values, column):
    """Return the highest closed-frame value as a share of the median open-frame value."""
    closed = [v[column] for i, v in enumerate(values) if i in BLINK_AT]
    return max(closed) / statistics.median(v[column] for i, v in enumerate(values) if i not in BLINK_AT)


def test_painted_eyes_really_close_for_the_engine(blink_media):
    values = _clip_values(blink_media["grace_blinks"])
    assert _drop(values, 0) < 0.6 and _drop(values, 1) < 0.6  # EAR, and openness


def test_tilted_photo_drops_ear_but_not_openness(blink_media):
    values = _clip_values(blink_media["luis_tilted"])
    assert _drop(values, 0) < 0.75 and _drop(values, 1) > 0.8


def _login(app, kiosk, source, *people):
    """Turn blink liveness on, enrol `people`, log in at `source`; return the response and its audit row."""
    app.config["LIVENESS"] = "blink"
    for name, photo in people:
        kiosk.register(name, photo)
    kiosk.look(source)
    response = kiosk.face_login()
    with app.app_context():
        attempt = db.session.scalars(db.select(LoginAttempt).order_by(LoginAttempt.id.desc())).first()
        return response, (attempt.outcome, attempt.reason, attempt.liveness)


def test_real_blink_logs_in(app, kiosk, photos, blink_media):
    response, attempt = _login(app, kiosk, blink_media["grace_blinks"], ("grace", photos["grace"]))
    assert response.status_code == 302 and response.headers["Location"] == "/protected"
    assert b"Hello, grace" in kiosk.client.get("/protected").data
    assert attempt == ("success", "match", "passed")
    with app.test_request_context("/login", method="POST"):
        decision = face_login()  # the clip loops: the next blink, seen directly
    assert decision.label == 1 and decision.votes == 3  # before, during and after the blink


@pytest.mark.parametrize("source", ["grace_video", "grace_altered"])
def test_photo_or_frozen_frame_is_refused(app, kiosk, photos, media, source):
    response, attempt = _login(app, kiosk, media[source], ("grace", photos["grace"]))
    assert response.status_code == 401 and b"Please blink" in response.data
    assert attempt == ("failure", "no_blink", "failed")
    assert kiosk.client.get("/protected").status_code == 302


def test_tilting_a_photo_is_not_a_blink(app, kiosk, photos, blink_media):
    response, attempt = _login(app, kiosk, blink_media["luis_tilted"], ("luis", photos["luis"]))
    assert response.status_code == 401 and attempt == ("failure", "no_blink", "failed")


@pytest.mark.parametrize(
    ("clip", "enrolled"),
    [
        ("astronaut_blinks_in_grace", ["grace"]),  # someone else blinks between Grace's frames
        ("grace_blinks_in_luis", ["luis", "grace"]),  # Grace blinks while Luis is matched around her
    ],
)
def test_another_face_blinking_is_refused(app, kiosk, photos, blink_media, clip, enrolled):
    response, attempt = _login(app, kiosk, blink_media[clip], *[(n, photos[n]) for n in enrolled])
    assert response.status_code == 401 and b"Face not recognised" in response.data
    assert attempt == ("failure", "not_recognised", "passed")  # a blink, but not one person's


def test_liveness_off_decides_the_plain_burst(app, kiosk, photos, media):
    app.config["LIVENESS"] = "off"
    kiosk.register("grace", photos["grace"])
    with app.test_request_context("/login", method="POST"):
        assert face_login().liveness == "off"


@pytest.mark.parametrize("setting", [{"LIVENESS": "blnk"}, {"LOGIN_MODE": "face+pasword"}])
def test_misspelt_setting_stops_the_app_at_start(make_app, setting):
    with pytest.raises(ValueError, match="must be one of"):
        make_app(**setting)  # fails closed instead of quietly weakening the login


def test_login_page_asks_for_a_blink_only_when_on(app, client):
    assert b"then blink once" not in client.get("/login").data
    app.config["LIVENESS"] = "blink"
    assert b"then blink once" in client.get("/login").data


def test_no_face_is_reported_as_such(app, kiosk, photos, media):
    response, attempt = _login(app, kiosk, media["empty_video"], ("grace", photos["grace"]))
    assert response.status_code == 401 and b"No face seen" in response.data
    assert attempt == ("failure", "no_face", "failed")


# --- Challenge liveness on the real engine: rendered 3D head movements pass, presentation attacks do not.


@functools.cache
def photo(name):
    """Return a real photo placed in a 640x480 camera frame (the astronaut cropped clear of her mission patch)."""
    image = media.load_bgr(media.photo_paths()[name])
    if name == "astronaut":
        image = cv2.resize(image[0:260, 100:330], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    return media.on_canvas(image)


def rgb_frames(clip):
    """Yield a BGR clip as the camera path does: one RGB frame at a time (a generator, no len())."""
    return (faces.frame_to_rgb(frame) for frame in clip)


@functools.cache
def landmarks(bgr_bytes, shape):
    """Return the 68 landmarks of the one face in a BGR frame (cached by content)."""
    rgb = faces.frame_to_rgb(np.frombuffer(bgr_bytes, np.uint8).reshape(shape))
    check = faces.find_single_face(rgb)
    assert check.box, check.problem
    return faces.face_landmarks(rgb, check.box)


def points(bgr):
    """Return the landmarks of `bgr`."""
    return landmarks(bgr.tobytes(), bgr.shape)


@functools.cache
def model(name):
    """Return the cached 3D head model of a photo."""
    return media.HeadModel(photo(name))


# Genuine clips: two people whose photos face the camera, all four directions, a 20-25 degree turn
# or a 15-18 degree tilt, with different camera noise, JPEG quality and light drift each time.
# (luis's photo is taken ~35 degrees off frontal: the renderer assumes a frontal photo, so he
# appears in the attacks, where his start is refused as not frontal.)
GENUINE = [
    (name, direction, degrees, seed)
    for name in ("astronaut", "grace")
    for direction in liveness.CHALLENGES
    for seed, degrees in enumerate((20, 25) if direction in ("left", "right") else (15, 18))
]
GENUINE += [
    ("astronaut", "left", 22, 7),
    ("astronaut", "up", 16, 8),
    ("grace", "right", 22, 9),
    ("grace", "down", 16, 10),
]


@functools.cache
def genuine_result(name, direction, degrees, seed):
    """Return the Movement the engine finds in one rendered genuine clip."""
    clip = media.turn_clip(
        photo(name),
        direction,
        degrees,
        seed=seed,
        noise=2.0 + seed % 3,
        quality=60 + 8 * (seed % 4),
        gain=(0.8 + 0.02 * seed, 1.1),
    )
    return liveness.watch_for_challenge(rgb_frames(clip), direction)


ATTACKS = {
    "still grace": (lambda: media.still_clip(photo("grace")), "left"),
    "still astronaut": (lambda: media.still_clip(photo("astronaut"), seed=1), "up"),
    "still luis": (lambda: media.still_clip(photo("luis"), seed=2), "right"),
    "blink grace": (lambda: media.blink_clip(photo("grace")), "down"),
    "blink astronaut": (lambda: media.blink_clip(photo("astronaut")), "right"),
    **{
        f"flat astronaut {d}": (lambda d=d: media.flat_clip(photo("astronaut"), d, 35, seed=3), d)
        for d in liveness.CHALLENGES
    },
    **{f"flat grace {d}": (lambda d=d: media.flat_clip(photo("grace"), d, 30, seed=4), d) for d in ("up", "left")},
    "flat luis left": (lambda: media.flat_clip(photo("luis"), "left", 35), "left"),
    "replay astronaut left for right": (lambda: media.turn_clip(photo("astronaut"), "left", 25, seed=5), "right"),
    "replay astronaut down for right": (lambda: media.turn_clip(photo("astronaut"), "down", 18, seed=6), "right"),
    "replay grace up for left": (lambda: media.turn_clip(photo("grace"), "up", 18, seed=7), "left"),
    "swap grace to astronaut": (lambda: media.swap_clip(photo("grace"), photo("astronaut"), "left", 25), "left"),
    "swap astronaut to grace": (lambda: media.swap_clip(photo("astronaut"), photo("grace"), "up", 18), "up"),
}


@functools.cache
def attack_result(label):
    """Return the Movement the engine finds in one attack clip."""
    make, challenge = ATTACKS[label]
    return liveness.watch_for_challenge(rgb_frames(make()), challenge)


# --- head_pose and the depth measures -------------------------------------------------------------


@pytest.mark.parametrize(("direction", "angle"), [("left", 20), ("right", 20), ("up", 15), ("down", 15)])
def test_head_pose_signs_and_size_follow_a_rendered_movement(direction, angle):
    base = photo("astronaut")
    sy, sp = media.CHALLENGE_STEP[direction]
    before = liveness.head_pose(points(base), base.shape)
    turned = media.render_head(base, sy * angle, sp * angle, model("astronaut"))
    after = liveness.head_pose(points(turned), turned.shape)
    axis, sign = liveness.CHALLENGE_AXES[direction]
    change = sign * (after[axis] - before[axis])
    # The generic model reads these renders at 0.7-1.3x their angle; the other axis barely moves.
    assert 0.6 * angle <= change <= 1.5 * angle, (before, after)
    assert abs(after[1 - axis] - before[1 - axis]) < 0.5 * angle


def test_head_pose_is_near_frontal_on_frontal_photos_and_sees_luis_turned():
    for name in ("astronaut", "grace"):
        yaw, pitch, _ = liveness.head_pose(points(photo(name)), photo(name).shape)
        assert abs(yaw) < 12 and abs(pitch) < 15, name
    yaw, _, _ = liveness.head_pose(points(photo("luis")), photo("luis").shape)
    assert yaw < -25  # he looks to his own right: nose towards the left of the image


@pytest.mark.parametrize("name", ["astronaut", "grace"])
def test_parallax_and_flatness_tell_a_head_from_a_sheet(name):
    base = photo(name)
    start = np.mean([points(f) for f in media.camera([base] * 3, seed=1)], axis=0)
    head = np.mean([points(f) for f in media.camera([media.render_head(base, 22, 0, model(name))] * 3, seed=2)], axis=0)
    sheet = np.mean([points(f) for f in media.camera([media.sheet(base, 35, 0)] * 3, seed=2)], axis=0)
    assert liveness.parallax(start, head, "left") > 0.03
    assert liveness.parallax(start, sheet, "left") < 0.015
    assert liveness.parallax(start, head, "right") < 0  # signed: the nose went the other way
    assert liveness.flatness(start, head) > liveness.flatness(start, sheet)


def texture_of(frames, challenge):
    """Return the texture parallax of BGR `frames` (the first is the start), as watch_for_challenge measures it."""
    rgbs = [faces.frame_to_rgb(f) for f in frames]
    start = points(frames[0])
    patches = [liveness.face_patch(rgb, points(f)) for rgb, f in zip(rgbs, frames)]
    return liveness.texture_parallax(*liveness.track_texture(patches, start), start, challenge)


@pytest.mark.parametrize("name", ["astronaut", "grace"])
def test_texture_parallax_tells_a_head_from_a_sheet(name):
    base, steps = photo(name), np.linspace(0, 1, 12)
    head = media.camera([media.render_head(base, 0, 16 * t, model(name)) for t in steps], seed=3)
    sheet = media.camera([media.sheet(base, 0, 32 * t) for t in steps], seed=3)
    assert texture_of(head, "up") > 0.02
    assert abs(texture_of(sheet, "up")) < 0.004  # the sheet moves every texture point by one homography
    assert texture_of(head, "down") < 0  # signed: the nose went the other way


def test_texture_parallax_needs_points_on_the_nose_and_off_it():
    lm = points(photo("grace"))
    cheeks = lm[[1, 2, 3, 13, 14, 15]]
    assert liveness.texture_parallax(cheeks, cheeks, lm, "left") is None
    start = np.vstack([lm[[30, 31, 33, 35]], lm[0:17]])
    end = start.copy()
    end[:4, 0] += 5  # the nose alone moved right: depth for a turn to the person's left
    assert liveness.texture_parallax(start, end, lm, "left") > 0.03
    assert liveness.texture_parallax(start, end, lm, "right") < -0.03


def test_flatness_of_exact_homography_is_zero():
    pts = np.random.default_rng(0).uniform(100, 300, (68, 2))
    pts[36], pts[45] = (150, 150), (250, 150)
    hm = np.array([[0.9, 0.1, 12], [-0.05, 1.1, -7], [1e-4, -2e-4, 1]])
    moved = cv2.perspectiveTransform(pts[None], hm)[0]
    assert liveness.flatness(pts, moved) < 1e-6
    moved[30] += (8, 0)  # the nose tip alone moves right: depth
    assert liveness.parallax(pts, moved, "left") > 0.005


# --- the watcher on clips --------------------------------------------------------------------------


def test_at_least_19_of_20_genuine_movements_pass():
    assert len(GENUINE) == 20
    results = {g: genuine_result(*g) for g in GENUINE}
    failed = {g: (r.reason, r.measures) for g, r in results.items() if r.reason is not None}
    assert len(failed) <= 1, failed
    for r in results.values():
        if r.reason is None:
            assert len(r.frames) == 2 and all(f.shape == (480, 640, 3) for f in r.frames)
            assert r.measures["parallax"] >= 0.025 and r.measures["moved"] >= 8
            assert r.measures["texture"] >= 0.012  # measured 0.016-0.061: a margin over the 0.008 bar


def test_genuine_decision_comes_soon_after_the_movement_ends():
    # The clips reach the peak at frame 22 (8 still + 14 turning): reading stops within ~15 frames (0.5 s).
    seen = [genuine_result(*g).seen for g in GENUINE if genuine_result(*g).reason is None]
    assert max(seen) <= 22 + 15, seen


def test_identity_frames_are_the_start_and_the_peak():
    r = genuine_result("astronaut", "left", 25, 1)
    start, peak = (
        liveness.head_pose(faces.face_landmarks(f, faces.find_single_face(f).box), f.shape) for f in r.frames
    )
    assert abs(start[0]) < 8 and peak[0] - start[0] >= 10


@pytest.mark.parametrize("label", list(ATTACKS))
def test_no_attack_is_accepted(label):
    r = attack_result(label)
    assert r.reason is not None and r.frames == (), r.measures
    expected = {
        "still": {"no_movement", "wrong_way", "not_frontal"},
        "blink": {"no_movement", "wrong_way", "not_frontal"},
        "flat": {"flat", "wrong_way", "no_movement", "jump", "not_frontal"},
        "replay": {"wrong_way", "jump"},
        "swap": {"jump"},  # the tracker itself sees the face change
    }[label.split()[0]]
    assert r.reason in expected, (r.reason, r.measures)


def test_flat_sheets_that_do_fake_the_pose_are_refused_as_flat():
    # Turned 35 degrees, the astronaut's sheet reads as a 15-24 degree head turn: only depth refuses it.
    for d in ("left", "right", "down"):
        r = attack_result(f"flat astronaut {d}")
        assert r.reason == "flat" and r.measures["moved"] >= 10 and r.measures["parallax"] < 0.015, r.measures
        assert abs(r.measures["texture"]) < 0.005, r.measures


# Grace's photo tilted back: dlib re-fits the nose of the foreshortened face as on a real tilt, so its
# landmark parallax reaches the genuine range (0.04-0.064 on these seeds); the texture does not (<= 0.003).
GRACE_TILTED_BACK = [(30, 1), (30, 2), (30, 5), (30, 6), (35, 1), (35, 5), (35, 6), (35, 7)]


@functools.cache
def grace_tilted_back(degrees, seed):
    """Return the Movement the engine finds in Grace's photo tilted back as a flat sheet."""
    return liveness.watch_for_challenge(rgb_frames(media.flat_clip(photo("grace"), "up", degrees, seed=seed)), "up")


@pytest.mark.parametrize(("degrees", "seed"), GRACE_TILTED_BACK)
def test_grace_tilted_back_as_a_sheet_is_refused_as_flat(degrees, seed):
    r = grace_tilted_back(degrees, seed)
    assert r.reason == "flat" and r.frames == () and r.measures["moved"] >= 8, r.measures
    assert r.measures["texture"] < 0.005, r.measures


def test_the_landmarks_alone_would_take_grace_tilted_back_for_a_head():
    # Why the texture check is there: most of these sheets beat the landmark parallax bar for tilts.
    fooled = [g for g in GRACE_TILTED_BACK if grace_tilted_back(*g).measures["parallax"] >= 0.04]
    assert len(fooled) >= len(GRACE_TILTED_BACK) // 2, fooled


def test_texture_bar_is_a_keyword():
    clip = media.turn_clip(photo("astronaut"), "left", 22, seed=7)
    assert liveness.watch_for_challenge(rgb_frames(clip), "left").reason is None
    r = liveness.watch_for_challenge(rgb_frames(clip), "left", min_texture=0.2)
    assert r.reason == "flat" and r.frames == () and 0.008 <= r.measures["texture"] < 0.2


def test_empty_and_faceless_bursts():
    assert liveness.watch_for_challenge(iter([]), "up").reason == "no_face"
    dark = np.zeros((480, 640, 3), np.uint8)
    r = liveness.watch_for_challenge((dark for _ in range(5)), "left")
    assert (r.reason, r.seen, r.frames) == ("dark", 5, ())
    with pytest.raises(ValueError):
        liveness.watch_for_challenge(iter([]), "sideways")


def test_watch_reads_a_video_file_through_read_clip(tmp_path):
    clip = media.turn_clip(photo("astronaut"), "right", 22, seed=11)
    path = media.write_video(tmp_path / "right.avi", clip)
    r = liveness.watch_for_challenge(evaluate.read_clip(path), "right")
    assert r.reason is None, r.measures


def test_a_still_clip_is_read_to_its_end_and_refused():
    # Only detection and landmarks run per frame while watching; bench/login.py times the whole login.
    r = liveness.watch_for_challenge(rgb_frames(media.still_clip(photo("astronaut"), frames=20)), "left")
    assert r.seen == 20 and r.reason in ("no_movement", "wrong_way", "not_frontal") and r.frames == ()


def test_a_long_movement_does_not_hold_every_frame(monkeypatch):
    # A head that keeps turning a degree a frame for 60 frames (the pose is reported so, on real
    # landmarks): the watch keeps the start frames and the highest one, not the whole movement.
    real_pose, calls = liveness.head_pose, []

    def turning(points, shape):
        calls.append(1)
        return (max(0, len(calls) - 6) * 1.0, 0.0, real_pose(points, shape)[2])

    monkeypatch.setattr(liveness, "head_pose", turning)
    alive, most = [], 0

    def frames():
        nonlocal most
        for frame in media.still_clip(photo("grace"), frames=60):
            rgb = faces.frame_to_rgb(frame)
            alive.append(weakref.ref(rgb))
            yield rgb
            del rgb
            most = max(most, sum(ref() is not None for ref in alive))

    r = liveness.watch_for_challenge(frames(), "left")
    assert r.seen == 60 and most <= 8, most


# --- evaluation helpers ----------------------------------------------------------------------------


def test_list_liveness_clips_and_read_clip(tmp_path):
    frames = media.still_clip(photo("grace"), frames=3)
    (tmp_path / "genuine" / "left").mkdir(parents=True)
    media.write_video(tmp_path / "genuine" / "left" / "a.avi", frames)
    folder = tmp_path / "photo" / "up" / "clip1"
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)
    (folder / "notes.txt").write_text("ignored")
    (tmp_path / "photo" / "up" / "readme.txt").write_text("ignored")
    (tmp_path / "stray.txt").write_text("ignored")
    clips = evaluate.list_liveness_clips(tmp_path)
    assert [(label, ch, p.rsplit("/", 1)[1]) for label, ch, p in clips] == [
        ("genuine", "left", "a.avi"),
        ("photo", "up", "clip1"),
    ]
    video, pictures = (list(evaluate.read_clip(p)) for _, _, p in clips)
    assert len(video) == 3 and len(pictures) == 3
    assert np.array_equal(pictures[1], faces.frame_to_rgb(frames[1]))  # RGB, in name order, lossless
    assert video[0].shape == (480, 640, 3)


def test_liveness_rates():
    rates = evaluate.liveness_rates(
        [
            ("genuine", True),
            ("genuine", False),
            ("genuine", True),
            ("genuine", True),
            ("photo", False),
            ("photo", True),
            ("replay", False),
        ]
    )
    assert rates["genuine"] == {"count": 4, "refused": 1, "bpcer": 0.25}
    assert rates["attacks"] == {
        "photo": {"count": 2, "accepted": 1, "apcer": 0.5},
        "replay": {"count": 1, "accepted": 0, "apcer": 0.0},
    }
    assert evaluate.liveness_rates([])["genuine"]["bpcer"] is None
