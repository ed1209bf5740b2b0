"""Accuracy measurement: the maths on fixed numbers, and `flask faces evaluate` on real photos."""

import json

import numpy as np

from facelogin.engine import evaluate, faces


def test_error_rates_and_eer():
    genuine, impostor = np.array([0.2, 0.3, 0.5]), np.array([0.45, 0.8, 0.9, 1.0])
    assert evaluate.error_rates(genuine, impostor, 0.4) == (0.0, 1 / 3)
    assert evaluate.error_rates(genuine, impostor, 0.5) == (0.25, 0.0)
    eer, at = evaluate.equal_error_rate(genuine, impostor)
    assert (eer, at) == (0.25, 0.5)  # FRR falls from 1/3 to 0 across FAR's 1/4: the curves cross at 1/4


def test_eer_agrees_with_the_table():
    # FAR 1/8, FRR 1/3 at 0.59, then FAR 1/4, FRR 0 at 0.6: the old average where they were closest
    # said 22.9 % at 0.59, below the larger rate at every tolerance (the "EER 0.14 %" line).
    genuine, impostor = np.array([0.2, 0.3, 0.6]), np.array([0.59, 0.6, 0.8, 0.85, 0.9, 1.0, 1.1, 1.2])
    eer, at = evaluate.equal_error_rate(genuine, impostor)
    assert (eer, at) == (0.25, 0.6)
    assert max(evaluate.error_rates(genuine, impostor, at)) == eer
    assert all(max(evaluate.error_rates(genuine, impostor, t)) >= eer for t in np.linspace(0, 1.5, 1501))


def test_largest_tolerance_stays_under_target():
    impostor = np.linspace(0.5, 1.0, 1000)
    t = evaluate.largest_tolerance(np.array([0.3]), impostor, target_far=0.01)
    assert evaluate.error_rates(np.array([]), impostor, t)[0] <= 0.01
    assert evaluate.error_rates(np.array([]), impostor, t + 0.001)[0] > 0.01
    assert evaluate.largest_tolerance(np.array([0.3]), impostor, 1e-4) < 0.5


def test_simulation_counts_wrong_user():
    a, b = np.zeros(128), np.full(128, 0.03)  # two people 0.34 apart
    people = {"a": [a, a + 0.001], "b": [b, a + 0.002]}  # b's second photo looks like a
    counts = evaluate.simulate_logins(people, tolerance=0.45, margin=0.0)
    assert counts == {"correct": 1, "wrong_user": 1, "refused": 0}
    assert evaluate.simulate_logins(people, tolerance=0.45, margin=0.5)["wrong_user"] == 0


def test_strangers_left_out_of_the_gallery():
    a, b = np.zeros(128), np.full(128, 0.1)  # 1.13 apart
    people = {"a": [a, a + 0.001], "b": [b], "c": [a + 0.02]}  # c is 0.23 from a: each passes as the other
    assert evaluate.simulate_strangers(people, tolerance=0.45, margin=0.0) == {"probes": 4, "accepted": 3}
    assert evaluate.simulate_strangers(people, tolerance=0.1, margin=0.0) == {"probes": 4, "accepted": 0}


def test_evaluate_command_on_real_photos(runner, people_dir):
    result = runner.invoke(args=["faces", "evaluate", people_dir, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["people"] == 3 and report["photos"] == 12 and report["refused_photos"] == []
    assert report["genuine"]["pairs"] == 18 and report["impostor"]["pairs"] == 48
    assert report["genuine"]["max"] < 0.45 < report["impostor"]["min"]
    sim = report["simulation"]
    assert sim["correct"] == 9 and sim["wrong_user"] == 0
    assert report["strangers"] == {"probes": 12, "accepted": 0}
    assert report["far_resolution"] == 1 / 48


def test_evaluate_text_report(runner, people_dir):
    result = runner.invoke(args=["faces", "evaluate", people_dir])
    assert result.exit_code == 0
    assert "EER 0.0000% at tolerance" in result.stdout and "(FAR 0.0000%, FRR 0.00% there)" in result.stdout
    assert "1:N logins" in result.stdout and "0 of 12 photos let in" in result.stdout
    assert "only 48 impostor pairs" in result.stdout


def test_check_command_lists_distances(kiosk, runner, photos, media):
    kiosk.register("grace", photos["grace"])
    kiosk.register("luis", photos["luis"])
    result = runner.invoke(args=["faces", "check", media["grace_altered"]])
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and lines[0].endswith("grace  (within tolerance)")
    assert lines[1].endswith("luis") and float(lines[1].split()[0]) > 0.6
    assert lines[-1].startswith(f"face engine: {faces.engine_build()}; one face encoded in ")


def test_evaluate_encodes_a_well_lit_portrait_between_black_bars(photos, tmp_path):
    import cv2

    from media import letterbox, load_bgr

    path = str(tmp_path / "portrait.jpg")
    cv2.imwrite(path, letterbox(load_bgr(photos["grace"])))
    encoding, problem = evaluate.encode_photo(path)
    assert problem is None and encoding.shape == (128,)


def test_evaluate_plot_writes_an_svg(runner, people_dir, tmp_path):
    import xml.etree.ElementTree as ET

    out = tmp_path / "distances.svg"
    result = runner.invoke(args=["faces", "evaluate", people_dir, "--plot", str(out)])
    assert result.exit_code == 0, result.output
    root = ET.parse(out).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("role") == "img"
    assert "18 genuine pairs and 48 impostor pairs of 3 people" in root.find("s:desc", ns).text
    assert len(root.findall("s:rect", ns)) > 3 and root.find("s:line", ns) is not None
