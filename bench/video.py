"""Benchmark of nlviz.video.load_clip against a plain OpenCV sequential read (prints figures).

Generates, once, into a cache folder (default /tmp/nlviz-bench, or $NLVIZ_BENCH_DIR):
60 s of 1080p30 H.264 (libx264 ultrafast, a panning textured scene) with a 250-frame GOP and
with a 30-frame GOP, plus 10 s with a 250-frame GOP (for the memory comparison). Then, for
each file and sampling, it times in a fresh subprocess each:

- load_clip (decode, sample, downscale to the 1280 display cap, preprocess to the model input);
- OpenCV: cv2.VideoCapture read sequentially up to the last needed frame, keeping copies
  of the needed frames (what a simple loader does);

and reports the time ratio load_clip / OpenCV and the peak resident memory of each process
above its baseline after imports (resource.getrusage maxrss; tracemalloc cannot see the
decoders' native buffers). Samplings: 32 frames spread uniformly, and 32 x 2 from 30 s.
Goals: ratio <= 0.6 on the 250-frame GOP file, <= 0.3 on the 30-frame GOP file, and memory
that does not grow with the video's length.

    python bench/video.py             # everything, 3 interleaved runs per measurement
    python bench/video.py --repeat 5  # more runs (the machine may be shared: look at the median)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("NLVIZ_BENCH_DIR", "/tmp/nlviz-bench"))
FPS, W, H = 30, 1920, 1080
FILES = {  # name: (seconds, GOP)
    "60s_gop250": (60, 250),
    "60s_gop30": (60, 30),
    "10s_gop250": (10, 250),
}
START_S = 30.0  # start of the 32 x 2 clip in the 60 s files (2 s into the 10 s file)


def _scene(seconds: int, gop: int, path: Path) -> None:
    """A panning camera over a large textured picture with a moving bright disc (H.264 ultrafast)."""
    import av
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    big = cv2.resize(rng.integers(0, 256, (270, 480, 3), dtype=np.uint8), (2 * W, 2 * H), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), 3)
    grid = np.indices((2 * H, 2 * W)).sum(0) % 64 < 32
    big[grid] = (big[grid] * 0.7).astype(np.uint8)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "23", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        n = seconds * FPS
        for i in range(n):
            x = int((W - 1) * (0.5 + 0.5 * np.sin(i / 90)))
            y = int((H - 1) * (0.5 + 0.5 * np.cos(i / 130)))
            f = np.ascontiguousarray(big[y : y + H, x : x + W])
            cv2.circle(f, (int(W / 2 + 600 * np.sin(i / 20)), H // 2), 80, (255, 240, 200), -1)
            cv2.putText(f, str(i), (50, 120), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 6)
            out.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(s.encode(None))
    tmp.rename(path)


def ensure_files() -> dict[str, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (seconds, gop) in FILES.items():
        p = CACHE / f"{name}.mp4"
        if not p.exists():
            print(f"generating {p} ({seconds} s 1080p{FPS}, GOP {gop}) ...", flush=True)
            t0 = time.perf_counter()
            _scene(seconds, gop, p)
            print(f"  done in {time.perf_counter() - t0:.0f} s, {p.stat().st_size / 2**20:.0f} MiB", flush=True)
        paths[name] = p
    return paths


def _indices(total: int, sampling: str, fps: float) -> list[int]:
    """The source frames load_clip takes for this sampling (same arithmetic)."""
    if sampling == "uniform":
        return [(2 * i + 1) * total // 64 for i in range(32)]
    start = round(min(START_S, total / fps / 5) * fps)
    return [start + 2 * i for i in range(32)]


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(kind: str, path: str, sampling: str) -> dict:
    """One measurement in this process: {'seconds', 'cpu', 'base_mib', 'peak_mib', 'frames'}."""
    import numpy as np

    if kind == "nlviz":
        sys.path.insert(0, str(ROOT))
        from nlviz.spec import ClipSpec
        from nlviz.video import load_clip, probe

        spec = ClipSpec(num_frames=32, stride=2)
        info = probe(path)
        base = _maxrss_mib()
        t0, c0 = time.perf_counter(), _cpu_seconds()
        if sampling == "uniform":
            clip = load_clip(path, spec=spec, uniform=True)
        else:
            clip = load_clip(path, spec=spec, start=min(START_S, info.duration / 5))
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        return {"seconds": seconds, "cpu": cpu, "base_mib": base, "peak_mib": _maxrss_mib(), "frames": clip.indices}
    import cv2

    cap = cv2.VideoCapture(path)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = cap.get(cv2.CAP_PROP_FPS)
    wanted = _indices(total, sampling, fps)
    base = _maxrss_mib()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    keep, need = {}, set(wanted)
    for i in range(max(wanted) + 1):
        ok, frame = cap.read()
        if not ok:
            break
        if i in need:
            keep[i] = frame.copy()
    frames = np.stack([keep[i] for i in wanted])
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    cap.release()
    del frames
    return {"seconds": seconds, "cpu": cpu, "base_mib": base, "peak_mib": _maxrss_mib(), "frames": wanted}


def run_child(kind: str, path: Path, sampling: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), sampling], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement, load_clip and OpenCV interleaved")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "PATH", "SAMPLING"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    import cv2

    paths = ensure_files()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cores: {os.cpu_count()}, load average before: {load:.1f},"
          f" OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)")
    print("times: best of", args.repeat, "interleaved runs; ratio = load_clip / OpenCV (best times, median of pairs);")
    print("cpu = ratio of CPU seconds (all threads); memory = peak RSS above the process's baseline after imports\n")
    print(f"{'file':<11} {'sampling':<11} {'load_clip':>9} {'OpenCV':>7} {'ratio':>6} {'median':>6} {'cpu':>5}"
          f" {'goal':>5} {'load_clip MiB':>13} {'OpenCV MiB':>10}")
    for name, path in paths.items():
        gop = FILES[name][1]
        for sampling in ("uniform", "32x2@start"):
            runs: dict[str, list[dict]] = {"nlviz": [], "opencv": []}
            for _ in range(args.repeat):
                for kind in runs:
                    runs[kind].append(run_child(kind, path, sampling))
            best = {k: min(r, key=lambda m: m["seconds"]) for k, r in runs.items()}
            pairs = sorted(a["seconds"] / b["seconds"] for a, b in zip(runs["nlviz"], runs["opencv"]))
            cpu = min(r["cpu"] for r in runs["nlviz"]) / min(r["cpu"] for r in runs["opencv"])
            same = best["nlviz"]["frames"] == best["opencv"]["frames"]
            goal = "-" if FILES[name][0] < 60 else ("0.6" if gop >= 250 else "0.3")
            mem = {k: max(m["peak_mib"] - m["base_mib"] for m in r) for k, r in runs.items()}
            print(
                f"{name:<11} {sampling:<11} {best['nlviz']['seconds']:>8.2f}s {best['opencv']['seconds']:>6.2f}s"
                f" {best['nlviz']['seconds'] / best['opencv']['seconds']:>6.2f} {pairs[len(pairs) // 2]:>6.2f}"
                f" {cpu:>5.2f} {goal:>5} {mem['nlviz']:>13.0f} {mem['opencv']:>10.0f}"
                + ("" if same else "  (frame numbers differ!)"),
                flush=True,
            )


if __name__ == "__main__":
    main()
