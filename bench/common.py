"""Shared by the benchmarks: the project on sys.path, the machine, real photos, timing and tables."""

import contextlib
import importlib.metadata
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import warnings  # noqa: E402

warnings.filterwarnings("ignore", "pkg_resources is deprecated")  # face_recognition_models' import

import cv2  # noqa: E402
import numpy as np  # noqa: E402

LIBRARIES = (
    "face-recognition",
    "dlib",
    "dlib-bin",
    "numpy",
    "opencv-python-headless",
    "SQLAlchemy",
    "Flask",
    "waitress",
    "psycopg",
    "threadpoolctl",
)


# The venv of each dlib build: dlib-bin in .venv (make install), the BLAS build in .venv-blas
# (make test-fast-dlib). A benchmark or test runs the other build in that venv's python.
BUILD_VENVS = {False: ".venv", True: ".venv-blas"}


def other_build_python():
    """Return the python of the venv holding the other dlib build than this process's, or None.

    FACELOGIN_OTHER_PYTHON names it explicitly; otherwise .venv-blas when this is dlib-bin and
    .venv when this is the BLAS build, if it exists and really holds the other build.
    """
    from facelogin.engine import faces

    blas = faces.engine_build().blas
    python = os.environ.get("FACELOGIN_OTHER_PYTHON") or os.path.join(ROOT, BUILD_VENVS[not blas], "bin", "python")
    if not os.path.exists(python) or os.path.samefile(os.path.dirname(os.path.dirname(python)), sys.prefix):
        return None
    asked = subprocess.run(
        [python, "-c", "from facelogin.engine import faces; print(faces.engine_build().blas)"],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
    )
    return python if asked.returncode == 0 and asked.stdout.strip() == str(not blas) else None


def cpu_model():
    """Return the processor's model name."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine():
    """Return one line describing the machine, Python, BLAS and the library versions."""
    from threadpoolctl import threadpool_info

    versions = []
    for name in LIBRARIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{name} {importlib.metadata.version(name)}")
    blas = ", ".join(
        f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, {i['num_threads']} threads)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )
    from facelogin.engine import faces

    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}\nBLAS: {blas or 'none found'}\nlibraries: {', '.join(versions)}\n"
        f"face engine: {faces.engine_build()}"
    )


def build_name(blas):
    """Return the short name of a dlib build for table headings."""
    return "BLAS" if blas else "dlib-bin"


def both_builds(script, result, argv, run_other=True):
    """Return [(build, result)] for dlib-bin then the BLAS build: `result` measured here, the other's by
    running `script` with `argv` and --json in the other build's venv (one after the other, not at once)."""
    from facelogin.engine import faces

    here = str(faces.engine_build()), faces.engine_build().blas, result
    python = other_build_python() if run_other else None
    if python is None:
        if run_other:
            print("(the other dlib build is absent: `make test-fast-dlib` builds the BLAS one; this build only)\n")
        return [here]
    print(f"  running the other build: {python}", file=sys.stderr)
    done = subprocess.run([python, script, *argv, "--json"], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    other = json.loads(done.stdout)
    print(f"other run: face engine: {other['build']}\n")
    return sorted([here, (other["build"], other["blas"], other["result"])], key=lambda run: run[1])


def child_output(result):
    """Print `result` as the JSON a parent run of both_builds reads."""
    from facelogin.engine import faces

    build = faces.engine_build()
    print(json.dumps({"build": str(build), "blas": build.blas, "result": result}))


def header(title):
    """Print the benchmark's title, the date and the machine."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# {title}\n{time.strftime('%Y-%m-%d %H:%M %Z')}, load average before the run: {load}\n{machine()}\n")


def photo(name):
    """Return the path of a real face photo shipped in an installed package."""
    paths = {
        "grace": ("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
        "luis": ("mahotas", "demos", "data", "luispedro.jpg"),
        "astronaut": ("skimage", "data", "astronaut.png"),
    }
    package, *parts = paths[name]
    return os.path.join(os.path.dirname(__import__(package).__file__), *parts)


def camera_frame(name="grace", size=(640, 480), height=420):
    """Return a camera-sized BGR frame with the photo's face in the middle of a plain room."""
    image = cv2.imread(photo(name), cv2.IMREAD_COLOR)
    scale = height / image.shape[0]
    image = cv2.resize(image, (round(image.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    w, h = size
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = (90, 110, 120)
    y, x = (h - image.shape[0]) // 2, (w - image.shape[1]) // 2
    canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
    return canvas


def write_video(path, frame, count=60, fps=30):
    """Write a Motion-JPEG clip of a frame with small changes of light, as a 30 fps camera would."""
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for i in range(count):
        writer.write(np.clip(frame.astype(np.float32) * (0.9 + 0.02 * (i % 6)), 0, 255).astype(np.uint8))
    writer.release()
    return path


def timed(fn, repeats, warmup=1):
    """Run fn() `warmup` then `repeats` times; return the list of durations in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_ms(times):
    """Return the median of durations in seconds, in milliseconds."""
    return statistics.median(times) * 1000


def percentile(values, p):
    """Return the p-th percentile (0-100) of values, interpolated."""
    return float(np.percentile(values, p))


def table(rows, headings):
    """Print rows as a Markdown table."""
    cells = [[str(c) for c in row] for row in [headings, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headings))]
    line = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    print()


def _burn(stop):
    """Keep a core busy until `stop` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


@contextlib.contextmanager
def busy_cores(count):
    """Keep `count` cores busy with other processes meanwhile, as face encodings do on a kiosk."""
    stop = multiprocessing.Event()
    procs = [multiprocessing.Process(target=_burn, args=(stop,), daemon=True) for _ in range(count)]
    for proc in procs:
        proc.start()
    try:
        time.sleep(0.2)
        yield
    finally:
        stop.set()
        for proc in procs:
            proc.join(5)
