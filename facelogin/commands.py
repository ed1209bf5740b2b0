"""Command-line tools: `flask faces ...` for the face gallery, `flask users ...` for accounts,
`flask kiosks ...` for the kiosk browsers allowed to use face login."""

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from facelogin.config import challenge_bars
from facelogin.engine import evaluate, faces, plot
from facelogin.services import accounts, consent, health, privacy, sessions
from facelogin.services.gallery import get_gallery
from models import User, db, reseal_templates, template_cipher

faces_cli = AppGroup("faces", help="Measure, check and import face templates.")
users_cli = AppGroup("users", help="Manage kiosk accounts.")
kiosks_cli = AppGroup("kiosks", help="Register and revoke the kiosk browsers allowed to use face login.")


@faces_cli.command("evaluate")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--target-far", default=1e-4, show_default=True, help="False-accept rate to stay under.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), help="Also draw the distances as an SVG file.")
def evaluate_command(folder, target_far, as_json, plot_file):
    """Measure accuracy on FOLDER/<person>/*.jpg: distances, FAR/FRR, EER and a 1:N login run."""
    cfg = current_app.config
    people, refused = {}, []
    photos = [(name, path) for name, paths in evaluate.list_people(folder).items() for path in paths]
    with click.progressbar(photos, label="Encoding photos", file=sys.stderr) as bar:
        for name, path in bar:
            encoding, problem = evaluate.encode_photo(path, cfg["MIN_FACE_HEIGHT"])
            if problem:
                refused.append((path, problem))
            else:
                people.setdefault(name, []).append(encoding)
    tolerances = [0.35, 0.4, 0.45, 0.5, 0.55, 0.6]
    result = evaluate.summarise(people, tolerances, cfg["FACE_TOLERANCE"], cfg["FACE_MARGIN"], target_far)
    result["refused_photos"] = [{"photo": p, "problem": why} for p, why in refused]
    if plot_file:
        with open(plot_file, "w", encoding="utf-8") as f:
            f.write(evaluation_plot(people, cfg["FACE_TOLERANCE"]))
    click.echo(json.dumps(result, indent=2) if as_json else format_summary(result))


def evaluation_plot(people, tolerance):
    """Return the SVG histogram of an evaluation folder's genuine and impostor distances."""
    genuine, impostor = evaluate.split_pairs(people)
    text = (
        f"{len(genuine)} genuine pairs and {len(impostor)} impostor pairs of {len(people)} people; "
        f"{int((genuine > tolerance).sum())} genuine pairs over and {int((impostor <= tolerance).sum())} "
        f"impostor pairs at or under the tolerance {tolerance:.3f}."
    )
    series = [("impostor", plot.bin_distances(impostor)), ("genuine", plot.bin_distances(genuine))]
    return plot.histogram_svg(series, [("tolerance", tolerance)], "Face distances in the evaluation folder", text)


@faces_cli.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def report_command(as_json):
    """Measure this gallery: users, templates, look-alike pairs, false-match rate and 1:N false positives."""
    data = health.summary()
    data["engine"] = engine_figures()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(format_report(data))
    click.echo(format_engine(data["engine"]))


def engine_figures():
    """Return which dlib build runs here and its measured time to encode one face."""
    build = faces.engine_build()
    return {
        "dlib": build.version,
        "blas": build.blas,
        "blas_library": build.blas_library,
        "distribution": build.distribution,
        "description": str(build),
        "encoding_ms": round(faces.encoding_time() * 1000, 1),
    }


def format_engine(engine):
    """Render the engine figures as one line."""
    return f"face engine: {engine['description']}; one face encoded in {engine['encoding_ms']:.0f} ms"


def format_report(r):
    """Render the gallery report as a short text."""
    g = r["guard"]
    lines = [
        f"{r['users']} users, {r['templates']} templates, {r['impostor_pairs']:,} impostor pairs (every pair of users, "
        "at the closest of their templates)",
        f"tolerance {r['tolerance']:.3f}: {r['pairs_under_tolerance']} pairs at or under it",
        f"false-match rate {r['fmr']:.3g}, at most {r['fmr_upper']:.3g} ({r['fmr_upper_method']})",
        f"1:N false-positive identification rate for {r['users']} users ({r['fpir_formula']}): "
        f"{r['fpir']:.3%}, at most {r['fpir_upper']:.3%}",
        f"  {r['note']}",
    ]
    if g["applies"]:
        lines.append(f"1:N guard (FACE_MAX_FPIR {g['max_fpir']:g}): {g['action']} - {g['reason']}")
    else:
        lines.append("1:N guard: not needed (LOGIN_MODE is not face: every login names its user)")
    genuine = r["genuine"]
    if genuine["count"]:
        lines.append(
            f"recent genuine logins: {genuine['count']}, median distance {genuine['median']:.3f}, "
            f"largest {genuine['max']:.3f}"
        )
    else:
        lines.append("recent genuine logins: none recorded")
    lines.append(f"look-alike pairs (closer than {r['lookalike_under']:.3f}): {r['lookalike_count']}")
    lines += [f"  {p['distance']:.3f}  {p['users'][0]}  {p['users'][1]}" for p in r["lookalikes"]]
    return "\n".join(lines)


def format_summary(r):
    """Render the evaluate figures as a short text report."""
    lines = [f"{r['people']} people, {r['photos']} photos ({len(r['refused_photos'])} refused)"]
    for kind in ("genuine", "impostor"):
        s = r[kind]
        extra = f": mean {s['mean']:.3f}, min {s['min']:.3f}, max {s['max']:.3f}" if s["pairs"] else ""
        lines.append(f"{kind} pairs {s['pairs']}{extra}")
    lines.append("tolerance    FAR        FRR")
    lines += [f"{x['tolerance']:<12} {x['far']:<10.4%} {x['frr']:.2%}" for x in r["rates"]]
    if r["eer"] is not None:
        at = r["eer_rates"]
        lines.append(
            f"EER {r['eer']:.4%} at tolerance {r['eer_tolerance']:.3f} (FAR {at['far']:.4%}, FRR {at['frr']:.2%} there)"
        )
    sim = r["simulation"]
    lines.append(
        f"1:N logins at tolerance {sim['tolerance']}, margin {sim['margin']}: "
        f"{sim['correct']} correct, {sim['wrong_user']} wrong user, {sim['refused']} refused"
    )
    st = r["strangers"]
    lines.append(f"strangers (each person left out of the gallery): {st['accepted']} of {st['probes']} photos let in")
    if r["largest_tolerance"] is not None:
        lines.append(f"largest tolerance with FAR <= {r['target_far']:g}: {r['largest_tolerance']:.3f}")
        if r["far_resolution"] > r["target_far"]:
            lines.append(
                f"  (only {r['impostor']['pairs']} impostor pairs: a FAR of 0 shows only FAR < "
                f"{r['far_resolution']:.2g}, not {r['target_far']:g}; add more people)"
            )
    for item in r["refused_photos"]:
        lines.append(f"refused {item['photo']}: {item['problem']}")
    return "\n".join(lines)


@faces_cli.command("liveness")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def liveness_command(folder, as_json):
    """Measure challenge liveness on FOLDER/<label>/<challenge>/*.mp4 (or frame folders): APCER and BPCER.

    <label> is "genuine" or an attack type (photo, screen, flat-turn, replay, swap...); <challenge>
    is the movement that was asked (left, right, up, down).
    """
    cfg = current_app.config
    clips = evaluate.list_liveness_clips(folder)
    results = []
    with click.progressbar(clips, label="Watching clips", file=sys.stderr) as bar:
        for label, challenge, path in bar:
            accepted = evaluate.presentation_accepted(
                evaluate.read_clip(path),
                challenge,
                cfg["FACE_TOLERANCE"],
                cfg["CHALLENGE_FRAMES"],
                **challenge_bars(cfg),
            )
            results.append((label, accepted))
    rates = evaluate.liveness_rates(results)
    click.echo(json.dumps(rates, indent=2) if as_json else format_liveness(rates))


def format_liveness(rates):
    """Render the liveness figures (ISO/IEC 30107-3 terms) as a short text report."""
    g = rates["genuine"]
    lines = [
        f"genuine: {g['count']} clips, {g['refused']} refused, BPCER {g['bpcer']:.1%}"
        if g["count"]
        else "genuine: no clips"
    ]
    for label, a in sorted(rates["attacks"].items()):
        lines.append(f"attack {label}: {a['count']} clips, {a['accepted']} accepted, APCER {a['apcer']:.1%}")
    return "\n".join(lines)


@faces_cli.command("rekey")
def rekey_command():
    """Seal every face template with the first FACE_TEMPLATE_KEY (old keys may follow it)."""
    if template_cipher() is None:
        raise click.ClickException("Set FACE_TEMPLATE_KEY=NEW_KEY[,OLD_KEY...] first")
    click.echo(f"Sealed the face templates of {reseal_templates()} users with the new key.")


@faces_cli.command("purge")
@click.option("--dry-run", is_flag=True, help="List the accounts due, without deleting anything.")
def purge_command(dry_run):
    """Delete the face data of accounts with no login for FACE_RETENTION_DAYS days (safe to run from cron)."""
    days = current_app.config["FACE_RETENTION_DAYS"]
    if not days:
        click.echo("FACE_RETENTION_DAYS is 0: face data is kept, nothing to purge")
        return
    done = privacy.purge(dry_run=dry_run)
    if dry_run:
        for item in done:
            click.echo(f"{item.user.username}  last seen {_when(item.last_seen)}  due since {_when(item.due_at)}")
        click.echo(f"{len(done)} accounts due: no login for {days} days (dry run: nothing deleted)")
        return
    # One line, for cron's mail; who was purged stays in users.face_purged_at.
    click.echo(f"deleted the face data of {len(done)} accounts with no login for {days} days")


@faces_cli.command("check")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False))
def check_command(photo):
    """Print the distance from PHOTO's face to each user's closest template."""
    encoding, problem = evaluate.encode_photo(photo, current_app.config["MIN_FACE_HEIGHT"])
    if problem:
        raise click.ClickException(f"{photo}: {problem.replace('_', ' ')}")
    index = get_gallery().index()
    names = dict(db.session.execute(db.select(User.id, User.username)).all())
    closest = {}
    for label, d in zip(index.labels, index.distances(encoding)):
        closest[label] = min(float(d), closest.get(label, float("inf")))
    tolerance = current_app.config["FACE_TOLERANCE"]
    for label, d in sorted(closest.items(), key=lambda kv: kv[1]):
        click.echo(f"{d:.3f}  {names.get(label, label)}{'  (within tolerance)' if d <= tolerance else ''}")
    if not closest:
        click.echo("no users enrolled")
    click.echo(format_engine(engine_figures()))


def _consent_version(ctx, param, value):
    """Refuse a --consent version that does not fit the account's record."""
    if not 0 < len(value.strip()) <= consent.VERSION_LENGTH:
        raise click.BadParameter(f"give the notice's version, 1 to {consent.VERSION_LENGTH} characters")
    return value.strip()


@faces_cli.command("import")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--workers", type=click.IntRange(1), help="Processes encoding photos [default: all cores].")
@click.option(
    "--passwords",
    type=click.Path(dir_okay=False),
    help="Append the new users' passwords to this file (mode 0600) instead of printing them.",
)
@click.option(
    "--consent",
    "consent_version",
    required=True,
    callback=_consent_version,
    help="The version of the consent notice every person in FOLDER agreed to (on paper, say): recorded on each "
    "account with the time of the import. Required: nobody's face is enrolled without a consent record.",
)
def import_command(folder, workers, passwords, consent_version):
    """Enrol everybody in FOLDER: FOLDER/<username>.jpg or FOLDER/<username>/*.jpg (up to MAX_TEMPLATES)."""
    from facelogin.services import importer  # its worker pool is needed by this command only

    importer.import_folder(folder, consent_version, workers, passwords)


def _user_or_fail(username):
    """Return the user called `username` (any case) or stop with an error."""
    user = User.by_username(username)
    if user is None:
        raise click.ClickException(f"no user called {username}")
    return user


@users_cli.command("create-admin")
@click.argument("username")
def create_admin_command(username):
    """Create admin USERNAME (password asked twice, no face yet), or promote an existing user."""
    user = User.by_username(username)
    if user is not None:
        accounts.promote(user)
        click.echo(f"{user.username} is now an admin")
        return
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        accounts.create_admin(username, password)
    except accounts.AccountError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"created admin {username}: log in with the password; add a face photo after logging in")


@users_cli.command("list")
def list_command():
    """List the accounts: id, name, role, templates, created, last login, lock state."""
    rows = accounts.account_rows()
    width = max([len("username"), *(len(row.user.username) for row in rows)])  # long names stay aligned
    click.echo(f"{'id':>4}  {'username':<{width}} {'role':<6} {'faces':>5}  {'created':<16}  {'last login':<16}  state")
    for row in rows:
        user = row.user
        state = "unreadable face data" if row.unreadable else "locked" if row.locked else "ok"
        click.echo(
            f"{user.id:>4}  {user.username:<{width}} {'admin' if user.is_admin else 'user':<6} "
            f"{row.template_count:>5}  {_when(user.created_at):<16}  "
            f"{_when(user.last_login_at):<16}  {state}"
        )


@users_cli.command("delete")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_command(username, yes):
    """Delete USERNAME: the account and all its face data; login attempts keep no link to it."""
    user = _user_or_fail(username)
    if not yes:
        click.confirm(f"Delete {user.username} and their face data?", abort=True)
    name = user.username
    accounts.delete_user(user)
    click.echo(f"deleted {name}")


def _when(moment):
    """Return a time for a listing, or "never"."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"


@kiosks_cli.command("add")
@click.argument("name")
@click.option("--unless-registered", is_flag=True, help="Say so and succeed if NAME is registered already.")
@click.option("--base", default="", help="This server's address, to print the whole link (e.g. http://127.0.0.1:5000).")
def kiosks_add_command(name, unless_registered, base):
    """Register kiosk NAME: prints a one-time path to open in that kiosk's browser (last line)."""
    try:
        code = sessions.add_device(name)
    except sessions.DeviceError as e:
        if unless_registered and "registered already" in str(e):
            click.echo(f"Kiosk {name} is registered already (revoke it with `flask kiosks revoke {name}`).")
            return
        raise click.ClickException(str(e)) from e
    path = f"/kiosks/enrol/{code}"
    minutes = current_app.config["KIOSK_ENROL_MINUTES"]
    where = f"open {base.rstrip('/')}{path}" if base else "open this path on this server"
    click.echo(f"Kiosk {name} added. Within {minutes} minutes, {where} in the kiosk's browser, once:")
    click.echo(path)


@kiosks_cli.command("list")
def kiosks_list_command():
    """List the kiosks: name, state, registered, last seen."""
    click.echo(f"{'name':<24} {'state':<10} {'registered':<16}  last seen")
    for device in sessions.list_devices():
        state = "revoked" if device.revoked_at else "active" if device.secret_hash else "waiting"
        click.echo(f"{device.name:<24} {state:<10} {_when(device.enrolled_at):<16}  {_when(device.last_seen_at)}")


@kiosks_cli.command("revoke")
@click.argument("name")
def kiosks_revoke_command(name):
    """Revoke kiosk NAME: its browser can no longer use face login, camera capture or the preview."""
    try:
        sessions.revoke_device(name)
    except sessions.DeviceError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"revoked kiosk {name}")


def init_app(app):
    """Register the command groups."""
    for group in (faces_cli, users_cli, kiosks_cli):
        app.cli.add_command(group)
