"""`flask users ...`: create or promote an admin, list accounts, delete one with its face data."""

from models import User, db


def _user(app, name):
    with app.app_context():
        return User.by_username(name)


def test_create_admin_without_a_face_then_log_in_by_password(app, runner, kiosk):
    result = runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    assert result.exit_code == 0, result.output
    assert "created admin boss" in result.output
    with app.app_context():
        boss = User.by_username("boss")
        assert boss.is_admin and boss.face_encodings == []
    assert kiosk.password_login("boss", "s3cret pass").headers["Location"] == "/protected"


def test_create_admin_asks_again_when_the_confirmation_differs(app, runner):
    result = runner.invoke(
        args=["users", "create-admin", "boss"], input="s3cret pass\ntypo pass\ns3cret pass\ns3cret pass\n"
    )
    assert result.exit_code == 0 and "do not match" in result.output
    assert _user(app, "boss").is_admin


def test_create_admin_refuses_a_short_password_or_bad_name(app, runner):
    result = runner.invoke(args=["users", "create-admin", "boss"], input="short\nshort\n")
    assert result.exit_code == 1 and "8 to 128 characters" in result.output
    result = runner.invoke(args=["users", "create-admin", "bad name!"], input="s3cret pass\ns3cret pass\n")
    assert result.exit_code == 1 and "letters, digits" in result.output
    assert _user(app, "boss") is None


def test_create_admin_promotes_an_existing_user_without_asking(app, runner, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    result = runner.invoke(args=["users", "create-admin", "GRACE"])
    assert result.exit_code == 0 and "grace is now an admin" in result.output
    grace = _user(app, "grace")
    assert grace.is_admin
    with app.app_context():
        assert len(db.session.get(User, grace.id).face_encodings) == 1  # her face stays


def test_list_shows_every_account(runner, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    runner.invoke(args=["users", "create-admin", "boss"], input="s3cret pass\ns3cret pass\n")
    lines = runner.invoke(args=["users", "list"]).output.splitlines()
    assert lines[0].split()[:4] == ["id", "username", "role", "faces"]
    assert lines[1].split()[:4] == ["1", "grace", "user", "1"]
    assert lines[2].split()[:4] == ["2", "boss", "admin", "0"]
    assert lines[1].split()[-1] == "ok"


def test_list_aligns_long_names(runner, kiosk, photos):
    kiosk.register("grace", photos["grace"])
    kiosk.register("a-rather-long-username-indeed", photos["luis"])
    lines = runner.invoke(args=["users", "list"]).output.splitlines()
    starts = {line.index(" user ") if " user " in line else line.index(" role ") for line in lines}
    assert len(starts) == 1, lines  # the role column starts at one place on every line


def test_delete_removes_row_templates_and_photo(app, runner, kiosk, photos, stored_files, user_count):
    kiosk.register("grace", photos["grace"])
    kiosk.register("luis", photos["luis"])
    result = runner.invoke(args=["users", "delete", "grace"], input="n\n")
    assert result.exit_code == 1 and user_count() == 2  # answered no
    result = runner.invoke(args=["users", "delete", "grace"], input="y\n")
    assert result.exit_code == 0 and "deleted grace" in result.output
    assert user_count() == 1 and [f.split("/")[-2:][0] for f in stored_files()] == ["known_faces", "2"]
    # Grace's face no longer logs anybody in.
    assert kiosk.face_login().status_code == 401


def test_delete_unknown_user_fails(runner):
    result = runner.invoke(args=["users", "delete", "nobody", "--yes"])
    assert result.exit_code == 1 and "no user called nobody" in result.output


# --- flask kiosks ... -------------------------------------------------------------------------


def test_kiosks_add_prints_a_one_time_path_on_its_last_line(app, runner, stranger):
    result = runner.invoke(args=["kiosks", "add", "hall"])
    assert result.exit_code == 0, result.output
    path = result.output.strip().splitlines()[-1]
    assert path.startswith("/kiosks/enrol/") and len(path) > 40
    enrolled = stranger.get(path)
    assert enrolled.status_code == 302 and "kiosk_device=" in enrolled.headers["Set-Cookie"]
    cookie = enrolled.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert stranger.get(path).status_code == 404  # used once
    listed = runner.invoke(args=["kiosks", "list"]).output
    assert "hall" in listed and "active" in listed
    again = runner.invoke(args=["kiosks", "add", "hall"])
    assert again.exit_code != 0 and "registered already" in again.output
    assert runner.invoke(args=["kiosks", "add", "hall", "--unless-registered"]).exit_code == 0


def test_kiosk_secret_is_stored_only_as_a_hash(app, runner, stranger):
    path = runner.invoke(args=["kiosks", "add", "hall"]).output.strip().splitlines()[-1]
    secret = stranger.get(path).headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    with app.app_context():
        from models import KioskDevice

        device = db.session.execute(db.select(KioskDevice)).scalar_one()
        assert secret not in (device.secret_hash, device.enrol_code_hash) and device.secret_hash
        assert path.rsplit("/", 1)[1] not in str(device.enrol_code_hash)


def test_kiosks_revoke_ends_face_login_there(app, runner, stranger):
    path = runner.invoke(args=["kiosks", "add", "hall"]).output.strip().splitlines()[-1]
    stranger.get(path)
    assert stranger.post("/login").status_code != 403
    assert runner.invoke(args=["kiosks", "revoke", "hall"]).exit_code == 0
    refused = stranger.post("/login")
    assert refused.status_code == 403 and b"registered kiosk" in refused.data
    assert "revoked" in runner.invoke(args=["kiosks", "list"]).output
    assert runner.invoke(args=["kiosks", "revoke", "nowhere"]).exit_code != 0


def test_an_expired_kiosk_link_is_refused(app, runner, stranger):
    app.config["KIOSK_ENROL_MINUTES"] = -1
    path = runner.invoke(args=["kiosks", "add", "hall"]).output.strip().splitlines()[-1]
    refused = stranger.get(path)
    assert refused.status_code == 404 and b"not valid" in refused.data and b"Back to the start" in refused.data


# --- flask faces liveness ---------------------------------------------------------------------


def test_faces_liveness_prints_apcer_and_bpcer(app, runner, photos, tmp_path):
    from media import load_bgr, on_canvas, still_clip, turn_clip, write_video

    grace = on_canvas(load_bgr(photos["grace"]))
    for label, challenge, frames in (
        ("genuine", "down", turn_clip(grace, "down", seed=3)),
        ("photo", "down", still_clip(grace)),
        ("replay", "up", turn_clip(grace, "down", seed=3)),
    ):
        (tmp_path / "clips" / label / challenge).mkdir(parents=True)
        write_video(tmp_path / "clips" / label / challenge / "1.avi", frames)
    result = runner.invoke(args=["faces", "liveness", str(tmp_path / "clips")])
    assert result.exit_code == 0, result.output
    assert "genuine: 1 clips, 0 refused, BPCER 0.0%" in result.output
    assert "attack photo: 1 clips, 0 accepted, APCER 0.0%" in result.output
    assert "attack replay: 1 clips, 0 accepted, APCER 0.0%" in result.output
    as_json = runner.invoke(args=["faces", "liveness", str(tmp_path / "clips"), "--json"])
    import json

    rates = json.loads(as_json.output[as_json.output.index("{") :])
    assert rates["genuine"] == {"count": 1, "refused": 0, "bpcer": 0.0}


def test_liveness_off_warns_at_start_up(make_app, caplog):
    make_app(LIVENESS="off")
    assert any("LIVENESS=off: a photo of an enrolled person logs in" in r.getMessage() for r in caplog.records)
    caplog.clear()
    make_app(LIVENESS=None)  # the shipped default
    assert not any("LIVENESS=off" in r.getMessage() for r in caplog.records)


def test_faces_purge_is_safe_from_cron_and_dry_run_lists_who(app, runner, kiosk, photos, stored_files, clock):
    from datetime import timedelta

    from models import utcnow

    kiosk.register("grace", photos["grace"])
    result = runner.invoke(args=["faces", "purge"])
    assert result.exit_code == 0 and result.output == "deleted the face data of 0 accounts with no login for 365 days\n"
    clock.now = utcnow() + timedelta(days=366)
    result = runner.invoke(args=["faces", "purge", "--dry-run"])
    assert result.exit_code == 0 and result.output.startswith("grace  last seen ")
    assert "1 accounts due" in result.output and len(stored_files()) == 2  # photo and thumbnail kept
    for _ in range(2):  # a second run, as a second cron job would, finds nothing left
        result = runner.invoke(args=["faces", "purge"])
        assert result.exit_code == 0 and len(result.output.splitlines()) == 1
    assert "of 0 accounts" in result.output and stored_files() == []
    app.config["FACE_RETENTION_DAYS"] = 0
    assert "face data is kept" in runner.invoke(args=["faces", "purge"]).output
