"""Erasure, export and the retention purge (services/privacy.py), on real registrations."""

import os
from datetime import timedelta

import pytest

from facelogin.services import privacy, storage, thumbnails
from facelogin.services.gallery import get_gallery
from models import LearnedTemplate, LoginAttempt, User, db, utcnow


@pytest.fixture
def people(app, kiosk, photos):
    """Grace and Luis registered with their photos; Grace with a learned template, its picture and a snapshot."""
    kiosk.register("grace", photos["grace"])
    kiosk.register("luis", photos["luis"])
    with app.app_context():
        grace = User.by_username("grace")
        learned = [x + 0.001 for x in grace.templates()[0]]
        attempt = LoginAttempt(mode="username+face", outcome="failure", reason="not_recognised", client_addr="10.0.0.7")
        attempt.claimed_user_id, attempt.distance, attempt.snapshot = grace.id, 0.61, "20260101T090000-abc.jpg"
        db.session.add(attempt)
        success = LoginAttempt(mode="face", outcome="success", reason="match", client_addr="10.0.0.8", distance=0.3)
        success.matched_user_id = grace.id
        db.session.add(success)
        db.session.flush()
        db.session.add(LearnedTemplate(user_id=grace.id, encoding=[learned], distance=0.2, attempt_id=success.id))
        db.session.commit()
        thumbnails.save(grace.id, learned, b"\xff\xd8 a face \xff\xd9")
        storage.write_atomically(f"{storage.folder('attempts')}/{attempt.snapshot}", b"\xff\xd8 a face \xff\xd9")
    return kiosk


def _rows(app, model, **where):
    with app.app_context():
        return db.session.scalars(db.select(model).filter_by(**where)).all()


def _tops(app, stored_files):
    """Return the first path part under known_faces/ of every stored file (uploads/ ones whole)."""
    return {os.path.relpath(f, app.config["KNOWN_FACES_FOLDER"]).split(os.sep)[0] for f in stored_files()}


def _grace_files(app, stored_files):
    return [f for f in stored_files() if "/known_faces/1" in f or "/attempts/" in f]


def test_erase_face_deletes_every_template_photo_thumbnail_and_snapshot(app, people, stored_files):
    assert len(_grace_files(app, stored_files)) == 4  # photo, enrolled and learned thumbnails, snapshot
    with app.app_context():
        get_gallery().index()
        privacy.erase_face(User.by_username("grace"))
        grace = User.by_username("grace")
        assert grace.templates() == [] and grace.password_hash and not grace.face_disabled
        assert 1 not in set(get_gallery()._index.labels)  # forgotten before anyone looks at the database
        assert 2 in set(get_gallery().index().labels)
    assert _grace_files(app, stored_files) == []
    assert _rows(app, LearnedTemplate) == []
    assert [a.snapshot for a in _rows(app, LoginAttempt)] == [None, None]
    assert _tops(app, stored_files) == {"2.jpg", "2"}  # Luis keeps his photo and thumbnail


def test_delete_account_leaves_attempts_with_no_link_to_the_person(app, people, stored_files):
    with app.app_context():
        privacy.delete_account(User.by_username("grace"))
        assert User.by_username("grace") is None and User.by_username("luis").templates()
    assert _grace_files(app, stored_files) == [] and _rows(app, LearnedTemplate) == []
    failure, success = sorted(_rows(app, LoginAttempt), key=lambda a: a.id)
    for row in (failure, success):
        assert (row.claimed_user_id, row.matched_user_id, row.distance, row.margin, row.snapshot) == (None,) * 5
    assert failure.client_addr == "10.0.0.7"  # a refusal stays evidence of where it came from
    assert success.client_addr is None  # a success only said "this person was here"
    assert (success.at, success.outcome, success.mode) != (None, None, None)


def test_a_refused_enrolment_keeps_the_other_persons_row_but_loses_the_holder(app, people, photos):
    people.register("grace2", photos["grace"])  # refused: Grace holds this face
    with app.app_context():
        privacy.delete_account(User.by_username("grace"))
    (conflict,) = _rows(app, LoginAttempt, outcome="conflict")
    assert conflict.reason == "grace2" and (conflict.matched_user_id, conflict.distance) == (None, None)


def test_export_has_the_fields_and_own_attempts_and_numbers_only_if_asked(app, people):
    with app.app_context():
        grace = User.by_username("grace")
        data = privacy.export(grace)
        full = privacy.export(grace, with_templates=True)
        enrolled = grace.templates()
    assert data["account"]["username"] == "grace" and "hash" not in str(data["account"]).replace("scrypt hash", "")
    assert data["face"]["enrolled_templates"] == 1 and len(data["face"]["learned_templates"]) == 1
    assert data["face"]["face_photo_kept"] and data["face"]["thumbnails_kept"] == 2
    assert "numbers" not in str(data) and set(data["consent"]) == {"version", "consented_at"}
    assert [(a["mode"], a["outcome"], a["address"]) for a in data["login_attempts"]] == [
        ("username+face", "failure", "10.0.0.7"),
        ("face", "success", "10.0.0.8"),
    ]
    assert full["face"]["enrolled_template_numbers"] == enrolled
    assert len(full["face"]["learned_templates"][0]["numbers"]) == 128
    with app.app_context():
        assert privacy.export(User.by_username("luis"))["login_attempts"] == []  # only the person's own


def _age(app, name, days):
    """Make `name`'s last login `days` ago."""
    with app.app_context():
        User.by_username(name).last_login_at = utcnow() - timedelta(days=days)
        db.session.commit()


def test_purge_deletes_the_face_data_of_accounts_unseen_for_the_retention(app, people, clock, stored_files):
    clock.now = utcnow()
    _age(app, "grace", 366)
    _age(app, "luis", 300)
    with app.app_context():
        assert [d.user.username for d in privacy.purge(dry_run=True)] == ["grace"]
        assert User.by_username("grace").templates()  # a dry run deletes nothing
        assert [d.user.username for d in privacy.purge()] == ["grace"]
        assert privacy.purge() == [] and privacy.due_for_purge() == []  # idempotent
        grace = User.by_username("grace")
        assert grace.templates() == [] and grace.face_purged_at is not None and privacy.last_purge()
        assert User.by_username("luis").templates()
        clock.now += timedelta(days=70)  # Luis's turn
        assert [d.user.username for d in privacy.purge()] == ["luis"]
    assert not [f for f in stored_files() if "/known_faces/" in f or "/attempts/" in f]


def test_an_account_never_logged_in_counts_from_its_creation(app, people, clock):
    with app.app_context():
        created = User.by_username("grace").created_at
        clock.now = created + timedelta(days=364)
        assert privacy.due_for_purge() == []
        clock.now = created + timedelta(days=366)
        assert {d.user.username for d in privacy.due_for_purge()} == {"grace", "luis"}
        app.config["FACE_RETENTION_DAYS"] = 0  # keep for ever
        assert privacy.due_for_purge() == [] and privacy.purge() == []


def test_a_password_only_account_is_never_due(app, runner, clock):
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    clock.now = utcnow() + timedelta(days=800)
    with app.app_context():
        assert privacy.due_for_purge() == []


def test_the_purge_notice_is_owed_once(app, people, clock, monkeypatch):
    clock.now = utcnow()
    _age(app, "grace", 400)
    with app.app_context():
        privacy.purge()
        grace = User.by_username("grace")
        assert "deleted after 365 days without a login" in privacy.purge_notice(grace)
        grace.last_login_at = utcnow()  # the login that told them
        db.session.commit()
        assert privacy.purge_notice(grace) is None
        assert privacy.purge_notice(User.by_username("luis")) is None


@pytest.mark.parametrize("bad", [-1, 1.5, True, "365"])
def test_face_retention_days_is_checked(make_app, bad):
    with pytest.raises(ValueError, match="FACE_RETENTION_DAYS"):
        make_app(FACE_RETENTION_DAYS=bad)
