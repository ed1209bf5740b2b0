"""The face engine: decoding, detection, encoding and matching, on real photos and fixed vectors."""

import io
import tracemalloc

import cv2
import numpy as np
import pytest
from PIL import Image
from threadpoolctl import threadpool_info

import media
from facelogin.engine import faces
from media import load_bgr


def _png(image, **params):
    """Encode a Pillow image to PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format=params.pop("format", "PNG"), **params)
    return buf.getvalue()


@pytest.fixture(scope="module")
def grace_rgb(photos):
    return faces.read_image(open(photos["grace"], "rb").read())


@pytest.fixture(scope="module")
def grace_encoding(grace_rgb):
    check = faces.find_single_face(grace_rgb, detect_width=1024)
    return faces.encode_face(grace_rgb, check.box)


def test_read_image_gives_rgb(photos):
    rgb = faces.read_image(open(photos["grace"], "rb").read())
    bgr = load_bgr(photos["grace"])
    assert rgb.dtype == np.uint8 and rgb.shape == bgr.shape
    assert np.abs(rgb.astype(int) - bgr[..., ::-1]).max() <= 2  # same pixels, channels swapped


def test_read_image_honours_exif_orientation(grace_rgb):
    rotated = Image.fromarray(grace_rgb).rotate(90, expand=True)  # stored sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with "rotate 90 clockwise to view"
    upright = faces.read_image(_png(rotated, format="JPEG", exif=exif))
    assert upright.shape == grace_rgb.shape
    assert np.abs(upright.astype(int) - grace_rgb).mean() < 8  # upright again, only JPEG loss
    assert faces.find_single_face(upright, detect_width=1024).problem is None


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "I;16", "P"])
def test_read_image_converts_modes(grace_rgb, mode):
    image = Image.fromarray(grace_rgb)
    converted = image.convert("L").convert("I;16") if mode == "I;16" else image.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    rgb = faces.read_image(_png(converted, format=fmt))
    assert rgb.shape == grace_rgb.shape and rgb.dtype == np.uint8 and rgb.mean() > 40


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff\xe0" + b"\x00" * 50])
def test_read_image_refuses_non_images(data):
    with pytest.raises(faces.ImageError):
        faces.read_image(data)


def test_read_image_refuses_decompression_bomb():
    bomb = _png(Image.new("L", (12000, 12000)))
    with pytest.raises(faces.ImageError, match="too large"):
        faces.read_image(bomb, max_pixels=40_000_000)


@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "GIF", "PPM", "TGA", "ICO", "float TIFF"])
def test_read_image_accepts_only_jpeg_png_and_webp(grace_rgb, fmt):
    data = media.float_tiff(64) if fmt == "float TIFF" else _png(Image.fromarray(grace_rgb), format=fmt)
    with pytest.raises(faces.ImageError, match="use a JPEG, PNG or WebP photo"):
        faces.read_image(data)


def test_read_image_reads_webp(grace_rgb):
    rgb = faces.read_image(_png(Image.fromarray(grace_rgb), format="WEBP", quality=95))
    assert rgb.shape == grace_rgb.shape and np.abs(rgb.astype(int) - grace_rgb).mean() < 4


def test_16_bit_png_is_scaled_to_8_bits_without_a_float64_copy():
    side = 2800  # under the PNG limit and over PHOTO_WORK_PIXELS: shrunk, then scaled
    ramp = np.tile(np.linspace(0, 65535, side).astype(np.uint16), (side, 1))
    data = _png(Image.fromarray(ramp))
    tracemalloc.start()
    try:
        rgb = faces.read_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rgb.dtype == np.uint8 and rgb.shape[0] * rgb.shape[1] <= 4_000_000
    row = rgb[rgb.shape[0] // 2, :, 0].astype(int)
    assert np.abs(row - np.linspace(0, 255, len(row))).max() <= 2  # the ramp, brightest at 255
    assert peak < side * side * 8  # less than one float64 copy of the picture, ever


def test_16_bit_rgb_png_keeps_its_colours(grace_rgb):
    ok, buf = cv2.imencode(".png", grace_rgb[..., ::-1].astype(np.uint16) * 257)
    rgb = faces.read_image(buf.tobytes())
    assert rgb.dtype == np.uint8 and np.abs(rgb.astype(int) - grace_rgb).max() <= 1


def test_float_pictures_become_8_bits():
    values = np.linspace(-10.0, 1000.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    values[0, 0] = np.nan
    rgb = faces._to_rgb8(Image.fromarray(values, "F"))
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and (rgb[..., 0] == rgb[..., 2]).all()


@pytest.mark.parametrize(
    ("fmt", "mode", "size", "params", "megapixels"),
    [
        ("JPEG", "RGB", (5000, 3400), {}, 16),
        ("PNG", "RGB", (4000, 2500), {}, 8),  # PNG: half (an RGBA one is copied once more to shrink)
        ("WEBP", "RGB", (2500, 1700), {}, 4),  # WebP: a quarter (its decoder needs 16 bytes a pixel)
        ("JPEG", "CMYK", (4000, 3000), {"progressive": True}, 8),  # libjpeg buffers 8 bytes a pixel
    ],
)
def test_pictures_over_the_pixel_limit_are_refused_from_their_header(fmt, mode, size, params, megapixels):
    data = _png(Image.new(mode, size), format=fmt, **params)
    # The header alone is enough (the pixels are not there to decode); WebP's opener wants the whole file.
    header = data if fmt == "WEBP" else data[:2048]
    with pytest.raises(faces.ImageError, match=f"too large - use one under {megapixels} megapixels"):
        faces.read_image(header, max_pixels=16_000_000)


@pytest.mark.parametrize(
    ("fmt", "pixels", "params"), [("JPEG", 15_000_000, {"quality": 90}), ("PNG", 7_500_000, {"compress_level": 1})]
)
def test_large_photos_are_shrunk_while_decoding_and_upright(photos, fmt, pixels, params):
    big = Image.open(io.BytesIO(media.photo_bomb(photos["grace"], pixels, fmt, **params)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, "rotate 90 clockwise to view"
    sideways = _png(big.rotate(90, expand=True), format=fmt, exif=exif, **params)
    rgb = faces.read_image(sideways, max_pixels=16_000_000, work_pixels=4_000_000)
    h, w = rgb.shape[:2]
    assert 3_000_000 < h * w <= 4_000_000 and abs(w / h - big.width / big.height) < 0.01  # upright, same shape
    assert faces.find_single_face(rgb, detect_width=1024).problem is None


def test_detection_finds_one_face_and_the_patch(grace_rgb, photos):
    assert len(faces.detect_faces(grace_rgb, detect_width=1024)) == 1
    astronaut = faces.read_image(open(photos["astronaut"], "rb").read())
    assert len(faces.detect_faces(astronaut, detect_width=1024, upsample=1)) == 2
    assert len(faces.detect_faces(astronaut, detect_width=1024, upsample=0)) == 1


def test_downscaled_detection_boxes_are_full_size(grace_rgb):
    big = faces.detect_faces(grace_rgb, detect_width=1024)[0]
    small = faces.detect_faces(grace_rgb, detect_width=256)[0]
    assert np.abs(np.subtract(big, small)).max() < 40


def test_same_person_close_different_person_far(grace_encoding, media, photos):
    def encode(path):
        rgb = faces.frame_to_rgb(load_bgr(path))
        return faces.encode_face(rgb, faces.find_single_face(rgb, detect_width=320).box)

    altered = encode(media["grace_altered"])  # rotated, mirrored, brighter, JPEG 60
    other = encode(photos["luis"])
    assert grace_encoding.shape == (128,) and grace_encoding.dtype == np.float32
    assert faces.face_distance([grace_encoding], altered)[0] < 0.3
    assert faces.face_distance([grace_encoding], other)[0] > 0.7


def test_face_index_matches_naive_distances():
    rng = np.random.default_rng(1)
    templates = rng.normal(0, 0.1, (50, 128))
    index = faces.FaceIndex(range(50), templates)
    q = rng.normal(0, 0.1, 128)
    naive = np.linalg.norm(templates - q, axis=1)
    assert np.allclose(index.distances(q), naive, atol=1e-5)
    match = index.identify(q)
    assert match.label == int(np.argmin(naive))
    assert np.isclose(match.runner_up, np.sort(naive)[1], atol=1e-5)


def test_identify_takes_closest_user_and_best_template_per_user():
    a, b = np.zeros(128), np.zeros(128)
    b[0] = 1.0
    query = np.zeros(128)
    query[0] = 0.45  # within 0.6 of both: a first-match search would pick "far"
    index = faces.FaceIndex.from_users([("far", [a, a + 0.3]), ("near", [b])])
    match = index.identify(query)
    assert match.label == "far" and np.isclose(match.distance, 0.45)
    assert np.isclose(match.runner_up, 0.55)
    assert not faces.accepts(match, tolerance=0.5, margin=0.2)
    assert faces.accepts(match, tolerance=0.5, margin=0.05)


def test_empty_index_matches_nobody():
    match = faces.FaceIndex().identify(np.zeros(128))
    assert match.label is None and match.distance == float("inf")


def test_decide_burst_needs_consensus_and_vetoes_a_second_person(monkeypatch):
    """decide_burst with the engine replaced by fixed vectors (one "frame" = one vector)."""
    monkeypatch.setattr(faces, "find_single_face", lambda rgb, *a, **k: faces.FaceCheck((0, 1, 1, 0), None, 1))
    monkeypatch.setattr(faces, "encode_face", lambda rgb, box: rgb)
    a, b = np.zeros(128, np.float32), np.full(128, 0.1, np.float32)
    index = faces.FaceIndex(["a", "b"], [a, b])
    decide = lambda frames: faces.decide_burst(frames, index, 0.45, 0.08, consensus=2)  # noqa: E731
    assert decide([a + 0.01, a]).label == "a"
    assert decide([a + 0.01]).reason == "not_recognised"  # one vote is not enough
    assert decide([a, b, a]).reason == "not_recognised"  # b vetoes
    assert decide([a, a, b]).frames == 2  # stops as soon as it is sure


def test_an_accepted_burst_carries_the_encoding_of_its_closest_frame(monkeypatch):
    monkeypatch.setattr(faces, "find_single_face", lambda rgb, *a, **k: faces.FaceCheck((0, 1, 1, 0), None, 1))
    monkeypatch.setattr(faces, "encode_face", lambda rgb, box: rgb)
    a = np.zeros(128, np.float32)
    index = faces.FaceIndex(["a"], [a])
    decision = faces.decide_burst([a + 0.02, a + 0.01, a + 0.03], index, 0.45, 0.08, consensus=3)
    assert decision.label == "a" and np.array_equal(decision.encoding, a + 0.01)
    assert faces.decide_burst([a + 0.5], index, 0.45, 0.08, consensus=1).encoding is None  # refused: nothing to learn


# distance, margin, liveness passed, distance to the enrolment; bars 0.35 and 0.15
LEARN_CASES = {
    "confident and live": ((0.25, 0.40, True, 0.25), True),
    "no liveness": ((0.25, 0.40, False, 0.25), False),
    "near the tolerance": ((0.42, 0.40, True, 0.42), False),
    "small margin": ((0.25, 0.10, True, 0.25), False),
    "close to a learned template only": ((0.10, 0.40, True, 0.40), False),
    "no margin known": ((0.25, float("nan"), True, 0.25), False),
}


@pytest.mark.parametrize(("case", "learns"), LEARN_CASES.values(), ids=LEARN_CASES.keys())
def test_should_learn_only_a_confident_live_match_near_the_enrolment(case, learns):
    assert faces.should_learn(*case, max_distance=0.35, min_margin=0.15) is learns


def test_quick_detection_falls_back_to_upsampling_for_smaller_faces(photos):
    from media import on_canvas

    grace = load_bgr(photos["grace"])
    near = faces.frame_to_rgb(on_canvas(grace, height=420))  # face about 140 px tall
    far = faces.frame_to_rgb(on_canvas(grace, height=260))  # face about 90 px: needs upsampling
    assert not faces.detect_faces(far, 320, upsample=0)
    for frame in (near, far):
        quick, full = faces.find_single_face(frame, quick=True), faces.find_single_face(frame)
        assert quick.problem is None and full.problem is None
        assert np.abs(np.subtract(quick.box, full.box)).max() < 30


@pytest.mark.parametrize("height", [420, 260], ids=["found at once", "found upsampled"])
def test_the_search_around_the_face_before_finds_what_the_whole_frame_search_finds(photos, height):
    frame = faces.frame_to_rgb(media.on_canvas(load_bgr(photos["grace"]), height=height))
    first = faces.find_single_face(frame, quick=True)
    assert first.problem is None
    again = faces.find_single_face(frame, quick=True, near=first.box)
    assert again.problem is None and np.abs(np.subtract(again.box, first.box)).max() <= 4
    if height == 420:  # found at HOG's finest scale, whose cell grid the region starts on: the very same box
        assert again == first
    # The person moved between two frames: the region around the old box still holds the face.
    moved = np.roll(frame, (6, -10), axis=(0, 1))
    around, whole = faces.check_faces(moved, quick=True, near=first.box), faces.check_faces(moved, quick=True)
    assert around[0].problem is None and len(around[1]) == 1
    assert np.abs(np.subtract(around[0].box, whole[0].box)).max() <= 16


def test_the_search_around_the_face_before_falls_back_to_the_whole_frame(photos):
    luis = load_bgr(photos["luis"])
    frame = faces.frame_to_rgb(media.on_canvas(load_bgr(photos["grace"]), height=420))
    face = faces.find_single_face(frame, quick=True).box
    corner = (0, 100, 100, 0)  # no face there: the whole frame is searched and the face found
    assert faces.find_single_face(frame, quick=True, near=corner) == faces.find_single_face(frame, quick=True)
    pair = faces.frame_to_rgb(media.two_people(luis, luis))
    both = faces.detect_faces(pair, 320, upsample=0)
    assert len(both) == 2
    spanning = (min(b[0] for b in both), max(b[1] for b in both), max(b[2] for b in both), min(b[3] for b in both))
    # Two faces around the old one: the whole frame is searched, and it holds two people.
    assert faces.find_single_face(pair, quick=True, near=spanning).problem == "many_faces"
    assert faces.find_single_face(faces.frame_to_rgb(media.scene()), quick=True, near=face).problem == "no_face"


def test_a_burst_searches_its_first_frame_whole_and_each_next_one_around_the_face_before(monkeypatch):
    boxes = iter([(10, 60, 60, 10), None, (12, 62, 62, 12), (14, 64, 64, 14)])
    asked = []

    def find(rgb, *args, near=None, **kwargs):
        asked.append(near)
        box = next(boxes)
        return faces.FaceCheck(box, None if box else "no_face", int(box is not None))

    monkeypatch.setattr(faces, "find_single_face", find)
    monkeypatch.setattr(faces, "encode_face", lambda rgb, box: rgb)
    a = np.zeros(128, np.float32)
    decision = faces.decide_burst([a + 0.5, a, a, a], faces.FaceIndex(["a"], [a]), 0.45, 0.08, consensus=2)
    assert decision.label == "a" and decision.frames == 4
    # A frame without a face makes the next one search the whole frame again.
    assert asked == [None, (10, 60, 60, 10), None, (12, 62, 62, 12)]


# --- FaceIndex's fast search gives exactly the answers of the plain formula, with BLAS left as found.


def plain_identify(labels, templates, encoding):
    """The textbook search: every Euclidean distance, the closest, the closest other label."""
    d = np.linalg.norm(np.asarray(templates, np.float64) - np.asarray(encoding, np.float64), axis=1)
    best = int(np.argmin(d))
    others = d[np.array([label != labels[best] for label in labels])]
    return labels[best], d[best], others.min() if len(others) else np.inf


@pytest.mark.parametrize("seed", range(5))
def test_identify_matches_the_plain_formula(seed):
    rng = np.random.default_rng(seed)
    people = rng.normal(0, 0.09, (300, 128))
    labels = list(rng.integers(0, 120, 300))  # labels repeat: several templates per user
    query = people[7] + rng.normal(0, 0.02, 128)
    index = faces.FaceIndex(labels, people)
    match = index.identify(query)
    label, nearest, runner_up = plain_identify(labels, people, query)
    assert match.label == label
    assert match.distance == pytest.approx(nearest, abs=1e-5)
    assert match.runner_up == pytest.approx(runner_up, abs=1e-5)
    assert index.distances(query) == pytest.approx(np.linalg.norm(people - query, axis=1), abs=1e-5)


def test_one_label_and_empty_index():
    one = faces.FaceIndex(["grace", "grace"], np.ones((2, 128)) * [[0.1], [0.2]])
    match = one.identify(np.full(128, 0.1))
    assert match.label == "grace" and match.distance == pytest.approx(0, abs=1e-3)
    assert match.runner_up == float("inf")
    assert faces.FaceIndex().identify(np.zeros(128)).label is None


def test_search_leaves_the_blas_thread_count_as_it_was():
    before = [lib["num_threads"] for lib in threadpool_info()]
    faces.FaceIndex(range(1000), np.random.default_rng(0).normal(0, 0.09, (1000, 128))).identify(np.zeros(128))
    assert [lib["num_threads"] for lib in threadpool_info()] == before


# --- light is judged on the face ----------------------------------------------------------------


@pytest.fixture(scope="module")
def light_frames(photos):
    """Camera-sized frames of Grace: well lit before black, between black bars, dimmed, and an empty dark room."""
    from media import alter, letterbox, on_canvas, on_stage

    grace = load_bgr(photos["grace"])
    return {
        "on_stage": faces.frame_to_rgb(on_stage(grace)),
        "letterbox": faces.frame_to_rgb(letterbox(grace)),
        "dim": faces.frame_to_rgb(alter(on_canvas(grace), gain=0.15)),
        "dark_room": np.full((480, 640, 3), 12, np.uint8),
    }


@pytest.mark.parametrize("name", ["on_stage", "letterbox"])
@pytest.mark.parametrize("quick", [False, True])
def test_a_well_lit_face_in_a_dark_frame_is_not_too_dark(light_frames, name, quick):
    rgb = light_frames[name]
    assert faces.is_dark(rgb)  # the whole frame is dark: the old check refused it
    check = faces.find_single_face(rgb, quick=quick)
    assert check.problem is None and check.box is not None


@pytest.mark.parametrize(("name", "problem"), [("dim", "dark"), ("dark_room", "dark")])
def test_a_dim_face_or_a_dark_empty_frame_is_too_dark(light_frames, name, problem):
    check = faces.find_single_face(light_frames[name], quick=True)
    assert (check.problem, check.box) == (problem, None)
    assert check.count == (1 if name == "dim" else 0)  # the dim face was found, and judged on its own light


def test_a_well_lit_face_before_a_dark_wall_logs_in(light_frames, grace_encoding):
    index = faces.FaceIndex(["grace"], [grace_encoding])
    decision = faces.decide_burst([light_frames["on_stage"]] * 3, index, tolerance=0.45, margin=0.08)
    assert (decision.label, decision.reason) == ("grace", "match")
