"""Recognition health: this gallery's operating point for `flask faces report`, /admin and the 1:N guard.

The impostor statistics are computed once per version of the face index (Gallery.index()
returns a new FaceIndex whenever the enrolled faces change) and kept, so neither a login
nor an /admin page pays for them again. A large gallery is recomputed in the background
while the login keeps the previous figures: one new user barely moves them, and the
FACE_MARGIN rule already refuses a face that two users hold.
"""

import logging
import threading
from typing import NamedTuple

from flask import current_app

from facelogin.engine import faces, plot, report
from facelogin.services.gallery import get_gallery
from models import LoginAttempt, User, db

log = logging.getLogger(__name__)

SYNC_TEMPLATES = 5000  # up to this many templates a change is measured at once (bench/report.py: < 0.5 s)
GENUINE_RECENT = 1000  # successful face logins shown as the genuine distances
SHOW_LOOKALIKES = 50  # pairs listed on /admin (the report lists them all)


class Health:
    """The impostor statistics and the guard of the newest face index measured, for one app."""

    def __init__(self):
        """Start with nothing measured."""
        self._lock = threading.Lock()  # guards the fields below
        self._computing = threading.Lock()  # one computation at a time: each may take seconds
        self._index = self._key = self._stats = None
        self._guards = {}
        self._background = None

    def _compute(self, index, key):
        """Measure `index` and keep the result unless a newer index was measured meanwhile."""
        with self._computing:
            with self._lock:
                if self._index is index and self._key == key:
                    return self._stats
            stats = report.impostor_pairs(index.labels, index.matrix, *key)
            with self._lock:
                self._index, self._key, self._stats, self._guards = index, key, stats, {}
            return stats

    def stats(self, index, tolerance, margin, wait=True):
        """Return the PairStats of `index`; with wait=False a large gallery may get the previous ones."""
        key = (float(tolerance), float(margin))
        with self._lock:
            if self._index is index and self._key == key:
                return self._stats
            if not wait and self._stats is not None and self._key == key and len(index) > SYNC_TEMPLATES:
                if self._background is None or not self._background.is_alive():
                    self._background = threading.Thread(target=self._compute, args=(index, key), daemon=True)
                    self._background.start()
                return self._stats
        return self._compute(index, key)

    def guard(self, stats, tolerance, max_fpir, floor):
        """Return the guard for `stats`, decided once per measurement and logged when it is not "ok"."""
        key = (id(stats), tolerance, max_fpir, floor)
        with self._lock:
            found = self._guards.get(key)
        if found is None:
            found = report.guard(stats, tolerance, max_fpir, floor)
            log_guard(found, stats)
            with self._lock:
                if self._stats is stats:
                    self._guards[key] = found
        return found


def log_guard(decision, stats):
    """Say in the log what face-only login does with this gallery."""
    text = f"1:N guard for {stats.users} users: {decision.action} - {decision.reason}"
    (log.info if decision.action == "ok" else log.warning)(text)


def get_health():
    """Return this app's Health."""
    return current_app.extensions["face_health"]


def init_app(app):
    """Give the app its Health, and say in the log which dlib build will encode the faces."""
    app.extensions["face_health"] = Health()
    app.logger.info("face engine: %s", faces.engine_build())


# --- what the app asks ------------------------------------------------------------------------


def gallery_stats(index=None, wait=True):
    """Return the PairStats of the current gallery at the configured tolerance and margin."""
    cfg = current_app.config
    index = get_gallery().index() if index is None else index
    return get_health().stats(index, cfg["FACE_TOLERANCE"], cfg["FACE_MARGIN"], wait)


def current_guard(index=None, wait=True):
    """Return the report.Guard for face-only (1:N) login with the current gallery."""
    cfg = current_app.config
    stats = gallery_stats(index, wait)
    return get_health().guard(stats, cfg["FACE_TOLERANCE"], cfg["FACE_MAX_FPIR"], cfg["FACE_GUARD_FLOOR"])


def login_mode():
    """Return the login mode in force: LOGIN_MODE, or "username+face" when the guard asks for the username."""
    mode = current_app.config["LOGIN_MODE"]
    if mode == "face" and current_guard(wait=False).action == "username":
        return "username+face"
    return mode


def face_tolerance(mode, index):
    """Return the tolerance a login in `mode` uses: the guard's in face-only mode, else FACE_TOLERANCE."""
    if mode == "face":
        return current_guard(index, wait=False).tolerance
    return current_app.config["FACE_TOLERANCE"]


def genuine_distances(limit=GENUINE_RECENT):
    """Return the distances of the newest successful face logins in the audit log."""
    rows = db.session.scalars(
        db.select(LoginAttempt.distance)
        .where(LoginAttempt.outcome == "success", LoginAttempt.distance.is_not(None))
        .order_by(LoginAttempt.at.desc(), LoginAttempt.id.desc())
        .limit(limit)
    )
    return [float(d) for d in rows]


class Lookalike(NamedTuple):
    """Two users whose templates are closer than tolerance + margin."""

    users: tuple
    distance: float


def lookalikes(stats, limit=None):
    """Return the closest user pairs of `stats` with their usernames, closest first."""
    pairs = list(zip(stats.close_users[:limit], stats.close[:limit]))
    ids = {int(u) for pair, _ in pairs for u in pair}
    names = dict(db.session.execute(db.select(User.id, User.username).where(User.id.in_(ids))).all()) if ids else {}
    return [Lookalike((names.get(a, f"#{a}"), names.get(b, f"#{b}")), float(d)) for (a, b), d in pairs]


def summary(limit=None):
    """Return every figure of the report as plain data (the JSON of `flask faces report --json`)."""
    cfg = current_app.config
    stats = gallery_stats()
    at = report.estimates(stats)
    decision = current_guard()
    genuine = genuine_distances()
    return {
        "users": stats.users,
        "templates": stats.templates,
        "impostor_pairs": stats.pairs,
        "tolerance": at.tolerance,
        "margin": cfg["FACE_MARGIN"],
        "lookalike_under": stats.near,
        "lookalike_count": stats.lookalike_count,
        "lookalikes": [{"users": list(p.users), "distance": p.distance} for p in lookalikes(stats, limit)],
        "pairs_under_tolerance": at.matches,
        "fmr": at.fmr,
        "fmr_upper": at.fmr_upper,
        "fmr_upper_method": f"one-sided {report.CONFIDENCE:.0%} bound: {at.method}",
        "fpir": at.fpir,
        "fpir_upper": at.fpir_upper,
        "fpir_formula": "1 - (1 - FMR)^users",
        "note": (
            "Impostor pairs here are enrolled users against enrolled users, each pair at the smallest "
            "distance between their templates; the false-match rate they give is an estimate for a "
            "stranger against one enrolled user."
        ),
        "impostor_histogram": {"bin_width": report.BIN_WIDTH, "counts": stats.histogram.tolist()},
        "genuine": {
            "count": len(genuine),
            **({"median": sorted(genuine)[len(genuine) // 2], "max": max(genuine)} if genuine else {}),
        },
        "genuine_distances": genuine,
        "guard": {
            "applies": cfg["LOGIN_MODE"] == "face",
            "action": decision.action,
            "tolerance": decision.tolerance,
            "fpir": decision.fpir,
            "max_fpir": cfg["FACE_MAX_FPIR"],
            "floor": cfg["FACE_GUARD_FLOOR"],
            "reason": decision.reason,
        },
    }


def histogram(data):
    """Return the SVG histogram of a summary(): this gallery's impostor pairs, recent genuine logins, tolerances."""
    marks = [("tolerance", data["tolerance"])]
    if data["guard"]["applies"] and data["guard"]["action"] == "tighten":
        marks.append(("tightened", data["guard"]["tolerance"]))
    genuine = data["genuine"]
    text = (
        f"{data['impostor_pairs']:,} impostor pairs between {data['users']} users: "
        f"{data['pairs_under_tolerance']} at or under the tolerance {data['tolerance']:.3f}, "
        f"smallest {data['lookalikes'][0]['distance']:.3f}. "
        if data["lookalikes"]
        else f"{data['impostor_pairs']:,} impostor pairs between {data['users']} users, none under "
        f"{data['lookalike_under']:.3f}. "
    )
    text += (
        f"{genuine['count']} recent genuine logins, median {genuine['median']:.3f}, largest {genuine['max']:.3f}."
        if genuine["count"]
        else "No successful face logins recorded yet."
    )
    series = [
        ("impostor", plot.rebin(data["impostor_histogram"]["counts"], data["impostor_histogram"]["bin_width"])),
        ("genuine", plot.bin_distances(data["genuine_distances"])),
    ]
    return plot.histogram_svg(series, marks, "Face distances in this gallery", text)
