"""Learned templates on real photos: genuine false rejects with and without learning, and impostor walks.

    .venv/bin/python bench/learning.py [--root /work/evalset]

Each person of the real-photo set (bench/real_photos.py; photos of public figures and a TV cast
taken at different times) enrols with their first usable photo; their other photos, in the set's
order, are their later logins (one photo = one live capture: liveness is taken as passed, which is
what learning needs). All people are enrolled together (1:N, the default tolerance and margin) and
log in in turns. Three policies run on the same encodings in this process:

- none: no learning (the baseline);
- ours: `faces.should_learn` with the defaults of facelogin/config.py (LEARN_MAX_DISTANCE to the
  closest template AND to the enrolment, LEARN_MIN_MARGIN over the whole gallery, LEARN_SLOTS);
- naive: every accepted live login is learned (closest template only, no anchor), same slots:
  what the anchor prevents.

Then the impostor walks: for every ordered pair (victim, attacker) the attacker, not enrolled, makes a sequence
of attempts against the victim, each at a distance just inside the tolerance of the victim's
closest template, in the direction of the attacker's own face (the most a look-alike near the
tolerance can offer), then shows their real photos.
"""

import argparse
import os
import sys
from collections import deque
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from facelogin import config  # noqa: E402
from facelogin.engine import evaluate, faces  # noqa: E402

DEFAULTS = config.defaults(SimpleNamespace(instance_path="", root_path=""))
BARS = config.learning_bars(DEFAULTS)  # what services/learning.py uses at the defaults
TOLERANCE, MARGIN = DEFAULTS["FACE_TOLERANCE"], DEFAULTS["FACE_MARGIN"]
WALK_STEPS = 20


def load(root):
    """Return {person: [encodings]} of the set: bench/real_photos.py's cached encodings, or encoded here."""
    try:
        from bench import real_photos

        return real_photos.encodings(root)
    except ImportError:  # before that script is merged: the same checks as `flask faces evaluate`
        people = {}
        for name, paths in evaluate.list_people(root).items():
            found = [evaluate.encode_photo(path)[0] for path in paths]
            people[name] = [e for e in found if e is not None]
        return {name: encs for name, encs in people.items() if encs}


class Policy:
    """When a login's capture is learned: never, by the project's rule, or every accepted login."""

    def __init__(self, name, max_distance=None, min_margin=None, slots=None):
        self.name = name
        self.max_distance = BARS["max_distance"] if max_distance is None else max_distance
        self.min_margin = BARS["min_margin"] if min_margin is None else min_margin
        self.slots = slots or DEFAULTS["LEARN_SLOTS"]

    def learns(self, match, anchor):
        """Return True if an accepted live capture with this match and enrolment distance is learned."""
        if self.name == "none":
            return False
        if self.name == "naive":
            return True
        gap = match.runner_up - match.distance
        return faces.should_learn(match.distance, gap, True, anchor, self.max_distance, self.min_margin)


class Gallery:
    """Enrolled templates (never changed) and up to `slots` learned ones per person, oldest replaced."""

    def __init__(self, enrolled, slots):
        self.enrolled = {name: [e] for name, e in enrolled.items()}
        self.learned = {name: deque(maxlen=slots) for name in enrolled}
        self.learned_from = {name: deque(maxlen=slots) for name in enrolled}  # whose capture each one is
        self.count = self.foreign = 0  # captures learned; of them, learned as somebody else

    def index(self, only=None):
        """Return a FaceIndex of everybody's templates (or of one person's)."""
        rows = [(n, self.enrolled[n] + list(self.learned[n])) for n in self.enrolled if only in (None, n)]
        return faces.FaceIndex.from_users(rows)

    def templates(self, name):
        """Return one person's templates, enrolled then learned."""
        return np.array(self.enrolled[name] + list(self.learned[name]))

    def login(self, probe, policy, claimed=None, who=None):
        """Decide one live capture (1:N, or 1:1 against `claimed`); learn it by `policy`; return the Match or None."""
        match = self.index(claimed).identify(probe)
        if not faces.accepts(match, TOLERANCE, MARGIN):
            return None
        full = self.index().identify(probe)  # learning looks at the whole gallery, as services/learning.py
        anchor = float(faces.face_distance(self.enrolled[match.label], probe).min())
        if full.label == match.label and policy.learns(full, anchor):
            self.learned[match.label].append(probe)
            self.learned_from[match.label].append(who)
            self.count += 1
            self.foreign += who != match.label
        return match


def genuine_run(people, policy):
    """Enrol every first photo, then log everybody in with their later photos in turns; return the figures."""
    gallery = Gallery({name: encs[0] for name, encs in people.items()}, policy.slots)
    probes = {name: encs[1:] for name, encs in people.items()}
    correct = wrong = refused = 0
    for k in range(max(len(p) for p in probes.values())):
        for name, mine in probes.items():
            if k >= len(mine):
                continue
            match = gallery.login(mine[k], policy, who=name)
            if match is None:
                refused += 1
            elif match.label == name:
                correct += 1
            else:
                wrong += 1
    anchors = [float(np.linalg.norm(t - gallery.enrolled[n][0])) for n in gallery.learned for t in gallery.learned[n]]
    # Each person then comes as a stranger (not enrolled) against everybody else's final templates.
    strangers = sum(_stranger_accepts(gallery, name, encs) for name, encs in people.items())
    total = correct + wrong + refused
    return dict(
        policy=policy,
        probes=total,
        correct=correct,
        wrong=wrong,
        refused=refused,
        frr=refused / total,
        learned=gallery.count,
        foreign=gallery.foreign,
        max_anchor=max(anchors, default=0.0),
        strangers=strangers,
        stranger_probes=sum(len(e) for e in people.values()),
        gallery=gallery,
    )


def _stranger_accepts(gallery, name, encs):
    """Count the photos of `name` accepted when they are not enrolled (everybody else's templates)."""
    rows = [(n, list(gallery.templates(n))) for n in gallery.enrolled if n != name]
    index = faces.FaceIndex.from_users(rows)
    return sum(faces.accepts(index.identify(e), TOLERANCE, MARGIN) for e in encs)


def impostor_walk(people, policy, step_distance):
    """Every attacker walks against every victim (1:1 claims) with captures `step_distance` from the victim's
    closest template towards their own face; return the figures over all pairs."""
    names = list(people)
    learned_impostor = accepted_real = pairs = 0
    shrink = []  # how much closer the victim's nearest template came to the attacker's face
    closest_left = []  # the victim's nearest template to the attacker's face, after the walk
    for victim in names:
        for attacker in names:
            if attacker == victim:
                continue
            pairs += 1
            gallery = Gallery({n: people[n][0] for n in names if n != attacker}, policy.slots)  # a stranger
            target = people[attacker][0]
            start = float(faces.face_distance(gallery.templates(victim), target).min())
            for _ in range(WALK_STEPS):
                templates = gallery.templates(victim)
                nearest = templates[int(np.argmin(faces.face_distance(templates, target)))]
                direction = target - nearest
                length = float(np.linalg.norm(direction))
                if length <= step_distance:
                    probe = target
                else:
                    probe = (nearest + direction * (step_distance / length)).astype(np.float32)
                gallery.login(probe, policy, claimed=victim, who=attacker)
            learned_impostor += sum(who == attacker for who in gallery.learned_from[victim])
            end = float(faces.face_distance(gallery.templates(victim), target).min())
            shrink.append(start - end)
            closest_left.append(end)
            index = gallery.index(victim)
            accepted_real += sum(faces.accepts(index.identify(e), TOLERANCE, MARGIN) for e in people[attacker])
    return dict(
        pairs=pairs,
        learned=learned_impostor,
        accepted_real=accepted_real,
        real_photos=sum(len(people[a]) * (len(names) - 1) for a in names),
        max_shrink=max(shrink),
        min_left=min(closest_left),
    )


def distances(people):
    """Return (genuine distances to the enrolment, each probe's nearest other enrolment) over the set."""
    enrolled = {n: e[0] for n, e in people.items()}
    genuine, nearest_other = [], []
    for name, encs in people.items():
        for probe in encs[1:]:
            genuine.append(float(np.linalg.norm(probe - enrolled[name])))
            nearest_other.append(min(float(np.linalg.norm(probe - t)) for n, t in enrolled.items() if n != name))
    return np.array(genuine), np.array(nearest_other)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/work/evalset")
    args = parser.parse_args()
    common.header("Learned templates on real photos")
    people = {n: e for n, e in load(args.root).items() if len(e) >= 2}
    print(
        f"{len(people)} people, {sum(len(e) for e in people.values())} usable photos (enrolment = first); "
        f"FACE_TOLERANCE {TOLERANCE}, FACE_MARGIN {MARGIN}; defaults LEARN_MAX_DISTANCE "
        f"{DEFAULTS['LEARN_MAX_DISTANCE']}, LEARN_MIN_MARGIN {DEFAULTS['LEARN_MIN_MARGIN']}, "
        f"LEARN_SLOTS {DEFAULTS['LEARN_SLOTS']}\n"
    )
    genuine, others = distances(people)
    print("Distances of later photos to their person's enrolment (genuine) and to the nearest other enrolment:")
    common.table(
        [
            [
                what,
                f"{np.min(v):.3f}",
                f"{np.percentile(v, 10):.3f}",
                f"{np.median(v):.3f}",
                f"{np.percentile(v, 90):.3f}",
                f"{np.max(v):.3f}",
            ]
            for what, v in (("genuine", genuine), ("nearest other person", others))
        ],
        ["", "min", "p10", "median", "p90", "max"],
    )

    print("Genuine logins in turns, 1:N, every first photo enrolled:")
    runs = [genuine_run(people, Policy(name)) for name in ("none", "ours", "naive")]
    base = runs[0]["frr"]
    common.table(
        [
            [
                r["policy"].name,
                r["probes"],
                r["correct"],
                r["wrong"],
                r["refused"],
                f"{r['frr']:.1%}",
                f"{r['frr'] / base:.2f}" if base else "-",
                r["learned"],
                r["foreign"],
                f"{r['max_anchor']:.3f}",
                f"{r['strangers']}/{r['stranger_probes']}",
            ]
            for r in runs
        ],
        [
            "policy",
            "probes",
            "correct",
            "wrong user",
            "refused",
            "FRR",
            "FRR ratio to none",
            "templates learned",
            "of another person",
            "farthest learned from enrolment",
            "strangers accepted after",
        ],
    )

    print("The bars of `ours` swept (LEARN_SLOTS 2; as given, without the cap of config.learning_bars):")
    sweep = []
    for max_distance in (0.25, 0.30, 0.35, 0.37, 0.40, 0.45):
        for min_margin in (0.08, 0.15, 0.25):
            if max_distance > TOLERANCE:
                continue
            r = genuine_run(people, Policy("ours", max_distance, min_margin))
            sweep.append(
                [
                    max_distance,
                    min_margin,
                    f"{r['frr']:.1%}",
                    r["wrong"],
                    r["learned"],
                    f"{r['max_anchor']:.3f}",
                    f"{r['strangers']}/{r['stranger_probes']}",
                ]
            )
    common.table(
        sweep,
        ["LEARN_MAX_DISTANCE", "LEARN_MIN_MARGIN", "FRR", "wrong user", "learned", "farthest learned", "strangers"],
    )

    print(
        f"Impostor walks: every attacker against every victim (1:1 claims), {WALK_STEPS} live attempts each "
        "from the victim's closest template towards the attacker's face, then the attacker's real photos:"
    )
    rows = []
    for step in (TOLERANCE - 0.01, BARS["max_distance"] - 0.01):
        for name in ("ours", "naive"):
            w = impostor_walk(people, Policy(name), step)
            rows.append(
                [
                    f"{step:.2f}",
                    name,
                    w["pairs"],
                    w["learned"],
                    f"{w['max_shrink']:.3f}",
                    f"{w['min_left']:.3f}",
                    f"{w['accepted_real']}/{w['real_photos']}",
                ]
            )
    common.table(
        rows,
        [
            "attempt distance",
            "policy",
            "pairs",
            "impostor templates learned",
            "most a victim template moved towards the attacker",
            "closest victim template to an attacker after",
            "attacker's real photos accepted after",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
