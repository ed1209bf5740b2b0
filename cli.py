"""Command-line tools: `flask faces ...` for the face gallery, `flask users ...` for accounts."""

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

import evaluate

faces_cli = AppGroup("faces", help="Measure, check and import face templates.")
users_cli = AppGroup("users", help="Manage kiosk accounts.")


@faces_cli.command("evaluate")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--target-far", default=1e-4, show_default=True, help="False-accept rate to stay under.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def evaluate_command(folder, target_far, as_json):
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
    click.echo(json.dumps(result, indent=2) if as_json else format_summary(result))


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
        lines.append(f"EER {r['eer']:.2%} at tolerance {r['eer_tolerance']:.3f}")
    sim = r["simulation"]
    lines.append(f"1:N logins at tolerance {sim['tolerance']}, margin {sim['margin']}: "
                 f"{sim['correct']} correct, {sim['wrong_user']} wrong user, {sim['refused']} refused")
    if r["largest_tolerance"] is not None:
        lines.append(f"largest tolerance with FAR <= {r['target_far']:g}: {r['largest_tolerance']:.3f}")
        if r["far_resolution"] > r["target_far"]:
            lines.append(f"  (only {r['impostor']['pairs']} impostor pairs: a FAR of 0 shows only FAR < "
                         f"{r['far_resolution']:.2g}, not {r['target_far']:g}; add more people)")
    for item in r["refused_photos"]:
        lines.append(f"refused {item['photo']}: {item['problem']}")
    return "\n".join(lines)


@faces_cli.command("check")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False))
def check_command(photo):
    """Print the distance from PHOTO's face to each user's closest template."""
    from gallery import get_gallery
    from models import User, db

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


def init_app(app):
    """Register the command groups."""
    app.cli.add_command(faces_cli)
    app.cli.add_command(users_cli)
