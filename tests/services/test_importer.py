"""Bulk enrolment with `flask faces import DIR`: real photos, worker processes, the real database."""

import os
import re
import shutil
import stat

import cv2
import pytest

from facelogin.services import importer
from media import alter, load_bgr
from models import User, db


@pytest.fixture
def people(tmp_path, photos, media):
    """A folder of people to import: two good ones and one of each refusal."""
    d = tmp_path / "people"
    d.mkdir()
    shutil.copy(photos["grace"], d / "grace.jpg")
    (d / "luis").mkdir()
    luis = load_bgr(photos["luis"])
    cv2.imwrite(str(d / "luis" / "1.jpg"), luis)
    cv2.imwrite(str(d / "luis" / "2.jpg"), alter(luis, angle=4, gain=0.9, quality=70))
    cv2.imwrite(str(d / "hopper.jpg"), alter(load_bgr(photos["grace"]), angle=-3, flip=True))  # Grace again
    (d / "mixed").mkdir()
    shutil.copy(photos["luis"], d / "mixed" / "1.jpg")
    shutil.copy(photos["grace"], d / "mixed" / "2.jpg")
    shutil.copy(photos["astronaut"], d / "eileen.png")  # the mission patch is a second face
    shutil.copy(media["no_face"], d / "nobody.jpg")
    shutil.copy(media["tiny_face"], d / "tiny.jpg")
    shutil.copy(media["not_an_image"], d / "notes.jpg")
    return str(d)


EXPECTED_REFUSALS = {
    "eileen": "several faces",
    "hopper": "face already enrolled",
    "mixed": "photos of different people",
    "nobody": "no face",
    "notes": "not an image",
    "tiny": "face too small",
}


def test_import_enrols_good_photos_and_explains_refusals(app, runner, kiosk, people, media, tmp_path):
    passwords = tmp_path / "passwords.txt"
    result = runner.invoke(
        args=["faces", "import", people, "--consent", "paper-2026", "--workers", "2", "--passwords", str(passwords)]
    )
    assert result.exit_code == 0, result.output
    assert "Enrolled 2, skipped 0 (already there), refused 6; 0 photos left out." in result.output
    refused = dict(re.findall(r"^Refused (\w+): ([a-z ]+) - ", result.output, re.M))
    assert refused == EXPECTED_REFUSALS
    assert stat.S_IMODE(os.stat(passwords).st_mode) == 0o600
    secrets = dict(line.split("\t") for line in passwords.read_text().splitlines())
    assert sorted(secrets) == ["grace", "luis"] and secrets["grace"] not in result.output
    with app.app_context():
        users = {u.username: u for u in db.session.execute(db.select(User)).scalars()}
        assert len(users["luis"].face_encodings) == 2 and len(users["grace"].face_encodings) == 1
        for user in users.values():
            assert os.path.isfile(os.path.join(app.config["KNOWN_FACES_FOLDER"], f"{user.id}.jpg"))
    # The printed password and the imported face both log in.
    assert kiosk.password_login("luis", secrets["luis"]).headers["Location"] == "/protected"
    kiosk.client.post("/logout")
    kiosk.look(media["grace_video"])
    assert kiosk.face_login().headers["Location"] == "/protected"
    assert b"Hello, grace" in kiosk.client.get("/protected").data


def test_second_run_skips_everybody_already_there(runner, people, stored_files, user_count):
    first = runner.invoke(args=["faces", "import", people, "--consent", "paper-2026", "--workers", "1"])
    printed = re.findall(r"^  (grace|luis)\t(\S+)$", first.output, re.M)
    assert [name for name, _ in printed] == ["grace", "luis"]
    files = stored_files()
    again = runner.invoke(args=["faces", "import", people, "--consent", "paper-2026", "--workers", "1"])
    assert "Enrolled 0, skipped 2 (already there), refused 6; 0 photos left out." in again.output
    assert "Skipped (already there): grace, luis" in again.output
    assert "New passwords" not in again.output
    assert user_count() == 2 and stored_files() == files


def test_interrupted_import_leaves_only_whole_users(app, runner, people, stored_files, user_count, monkeypatch):
    real_commit, calls = db.session.commit, []

    def commit_then_interrupt():
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C while the second user is being written
            raise KeyboardInterrupt
        real_commit()

    monkeypatch.setattr(db.session, "commit", commit_then_interrupt)
    result = runner.invoke(args=["faces", "import", people, "--consent", "paper-2026", "--workers", "1"])
    assert result.exit_code != 0
    assert re.search(r"^  grace\t\S+$", result.output, re.M)  # the committed user's password is shown
    assert user_count() == 1 and {f.split("/")[-2] for f in stored_files()} == {"known_faces", "1"}
    monkeypatch.undo()
    result = runner.invoke(args=["faces", "import", people, "--consent", "paper-2026", "--workers", "1"])
    assert "Enrolled 1, skipped 1 (already there)" in result.output
    assert user_count() == 2 and {f.split("/")[-2] for f in stored_files()} == {"known_faces", "1", "2"}


def test_find_people_checks_names_and_caps_templates(tmp_path):
    (tmp_path / "Ok.Name").mkdir()
    for i in range(7):
        (tmp_path / "Ok.Name" / f"{i}.jpg").write_bytes(b"x")
    (tmp_path / "ok.name.jpg").write_bytes(b"x")  # the same name in another case
    (tmp_path / "no").mkdir()
    (tmp_path / "x!.jpg").write_bytes(b"x")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    jobs, refused = importer.find_people(str(tmp_path), max_templates=5)
    assert [(j.username, [os.path.basename(p) for p in j.photos]) for j in jobs] == [
        ("Ok.Name", ["0.jpg", "1.jpg", "2.jpg", "3.jpg", "4.jpg"])
    ]
    assert sorted((r.username, r.reason) for r in refused) == [
        ("no", "bad_name"),
        ("ok.name", "bad_name"),
        ("x!", "bad_name"),
    ]


def test_a_person_is_enrolled_with_the_good_photos_and_each_bad_one_reported(
    app, runner, photos, media, tmp_path, monkeypatch
):
    from facelogin.engine import faces
    from media import blur_face, letterbox

    grace = load_bgr(photos["grace"])
    d = tmp_path / "folder"
    (d / "grace").mkdir(parents=True)
    cv2.imwrite(str(d / "grace" / "1.jpg"), letterbox(grace))  # well lit between black bars: good
    cv2.imwrite(str(d / "grace" / "2.jpg"), blur_face(grace, 2.0))
    shutil.copy(media["dark"], d / "grace" / "3.jpg")
    shutil.copy(media["not_an_image"], d / "grace" / "4.jpg")
    cv2.imwrite(str(d / "grace" / "5.jpg"), alter(grace, angle=3, gain=0.9))
    real, calls = faces.encode_face, []

    def spy(rgb, box, jitters=1):
        calls.append(jitters)
        return real(rgb, box, jitters)

    monkeypatch.setattr(faces, "encode_face", spy)
    app.config["ENROL_JITTERS"] = 2
    result = runner.invoke(args=["faces", "import", str(d), "--consent", "paper-2026", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "Enrolled 1, skipped 0 (already there), refused 0; 3 photos left out." in result.output
    left_out = dict(re.findall(r"^Left out (\S+): ([a-z ]+) - ", result.output, re.M))
    assert left_out == {"grace/2.jpg": "blurred", "grace/3.jpg": "too dark", "grace/4.jpg": "not an image"}
    assert calls == [2, 2]  # enrolment photos are encoded with ENROL_JITTERS
    with app.app_context():
        assert len(User.by_username("grace").face_encodings) == 2


def test_import_needs_the_consent_the_operator_collected(app, runner, people, stored_files, user_count):
    refused = runner.invoke(args=["faces", "import", people, "--workers", "1"])
    assert refused.exit_code == 2 and "--consent" in refused.output
    blank = runner.invoke(args=["faces", "import", people, "--consent", " ", "--workers", "1"])
    assert blank.exit_code == 2 and "notice's version" in blank.output
    assert user_count() == 0 and stored_files() == []
    runner.invoke(args=["faces", "import", people, "--consent", "paper-2026", "--workers", "1"])
    with app.app_context():
        users = db.session.execute(db.select(User)).scalars().all()
        assert len(users) == 2 and {(u.consent_version, u.consented_at is not None) for u in users} == {
            ("paper-2026", True)
        }
