"""Benchmark: the survey's engines on this machine, and what a Kinetics-400 val survey would take.

Prints:
  1. clips/s and total wall time of `nlviz survey` with --engine local and --engine ray (a local Ray
     it starts itself) on the same clips, each in a fresh process (imports, model loads and Ray's start
     included), and the largest difference between their numbers;
  2. the driver's peak memory (max RSS of the `nlviz survey` process; Ray's workers are other
     processes) at --clips and at --memory-clips clips, for both engines;
  3. the cost of one clip split into decode, forward pass with capture, and statistics, and from it the
     expected time for Kinetics-400 val (20,000 clips) on N workers.

Workloads: "i3d" (default): I3D ResNet-50 with 5 non-local blocks (random weights: the cost does not
depend on them) at 8 x 224 x 224 on copies of the bundled 1280x720 Big Buck Bunny clip; "demo": the
two demo models on the 64 px synthetic samples (tiny: Ray's fixed start-up cost dominates).

Run: python bench/survey.py [--workload i3d|demo] [--clips 12] [--memory-clips 48] [--gpu-forward-ms 25]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
K400_VAL = 20_000

DRIVER = """
import json, resource, sys, time
t0 = time.perf_counter()
from nlviz.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t0,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def survey(clips_dir: Path, models: list[str], out: Path, engine: str, extra: list[str]) -> dict:
    """One `nlviz survey` in a fresh process: wall time, peak RSS of that process, clips/s."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", DRIVER, "survey", str(clips_dir), "--models", *models, "--out", str(out),
           "--engine", engine, "--quiet", *extra]
    if engine == "ray":
        cmd += ["--num-cpus", "2"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{engine} survey failed:\n{done.stderr[-3000:]}")
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    clips = len(list(clips_dir.iterdir()))
    return {"engine": engine, "wall": wall, "clips": clips, "clips_per_s": clips / wall, **stats}


def max_difference(a: Path, b: Path) -> float:
    from nlviz.survey import load_results
    from nlviz.survey.stats import STAT_FIELDS

    keys = ["clip", "model", "block"]
    x = load_results(a).sort_values(keys).reset_index(drop=True)
    y = load_results(b).sort_values(keys).reset_index(drop=True)
    assert x[keys].equals(y[keys]), "the engines surveyed different rows"
    worst = max(float((x[f] - y[f]).abs().max()) for f in STAT_FIELDS)
    for u, v in zip(x["offset_mass"], y["offset_mass"]):
        worst = max(worst, max(abs(p - q) for p, q in zip(u, v)))
    return worst


def copies(src: Path, n: int, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copy(src[i % len(src)] if isinstance(src, list) else src, into / f"clip_{i:03d}.mp4")
    return into


def i3d_checkpoint(tmp: Path, frames: int) -> str:
    """I3D-R50 NL5 with random weights as an nlviz checkpoint (the cost does not depend on the weights)."""
    import torch

    from nlviz.models import build
    from nlviz.weights import save_weights

    torch.manual_seed(0)
    return str(save_weights(build("i3d_nl5_r50"), tmp / "i3d_nl5_r50_random.safetensors"))


def per_clip_cost(model_name: str, clip: Path, frames: int, stride: int, queries: int, repeats: int = 2) -> dict:
    """Median seconds of one clip's decode, forward pass with capture, and statistics, in this process."""
    import torch

    from nlviz.capture import record
    from nlviz.survey.models import load
    from nlviz.survey.stats import block_geometry, block_statistics, sampled_cells
    from nlviz.survey.work import SurveyConfig, decode

    sm = load(model_name)
    cfg = SurveyConfig((model_name,), queries=queries, num_frames=frames, stride=stride)
    t = {"decode": [], "forward": [], "stats": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        x = torch.as_tensor(decode(str(clip), sm.spec, cfg))
        t1 = time.perf_counter()
        with torch.no_grad():
            _, cap = record(sm.model, x)
        t2 = time.perf_counter()
        for b in cap:
            block_statistics(b, sampled_cells(b, queries, 0), block_geometry(b))
        t3 = time.perf_counter()
        for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2)):
            t[k].append(v)
    return {k: statistics.median(v) for k, v in t.items()} | {"threads": torch.get_num_threads(),
                                                              "shape": list(x.shape)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=("i3d", "demo"), default="i3d")
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--memory-clips", type=int, default=48, help="second clip count for the memory check")
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--gpu-forward-ms", type=float, default=25.0,
                    help="ASSUMED forward pass of one 32x224 clip on one GPU, for the projection (not measured here)")
    ap.add_argument("--skip-k400", action="store_true", help="skip the 32-frame cost measurement")
    ap.add_argument("--cost-only", action="store_true", help="only the one-clip cost and the projection")
    args = ap.parse_args()
    from nlviz.samples import bundled_samples

    tmp = Path(tempfile.mkdtemp(prefix="nlviz-bench-survey-"))
    try:
        found = bundled_samples()
        if args.workload == "i3d":
            models, extra = [i3d_checkpoint(tmp, 8)], ["--frames", "8", "--stride", "8", "--queries", str(args.queries)]
            src = found["bigbuckbunny"]
            what = "I3D-R50 NL5 (random weights), 8x224x224, Big Buck Bunny 1280x720"
        else:
            models, extra = ["demo.embedded_gaussian", "demo.dot_product"], ["--queries", str(args.queries)]
            src = [p for n, p in found.items() if n.startswith("synthetic")]
            what = "demo.embedded_gaussian + demo.dot_product, 16x64x64 synthetic clips"
        print(f"workload: {what}; {args.queries} queries per clip and block; 2-core machine")
        if args.cost_only:
            args.memory_clips, args.clips = 0, 0
        small = None if args.cost_only else copies(src, args.clips, tmp / f"clips{args.clips}")
        runs = {}
        for engine in ("local", "ray") if small else ():
            runs[engine] = survey(small, models, tmp / f"out_{engine}", engine, extra)
            r = runs[engine]
            print(f"  {engine:5s} {r['clips']} clips: wall {r['wall']:.1f} s, {r['clips_per_s']:.3f} clips/s, "
                  f"driver peak RSS {r['maxrss_mb']:.0f} MB")
        if runs:
            ratio = runs["ray"]["wall"] / runs["local"]["wall"]
            print(f"  ray / local wall time: {ratio:.2f}x (goal <= 1.25x)")
            worst = max_difference(tmp / "out_local", tmp / "out_ray")
            print(f"  largest difference between the engines' numbers: {worst:.2e}")

        if args.memory_clips:
            mem_models = ["demo.embedded_gaussian", "demo.dot_product"]
            mem_src = [p for n, p in found.items() if n.startswith("synthetic")]
            print("driver peak memory (demo models, synthetic clips):")
            for n in (args.clips, args.memory_clips):
                d = copies(mem_src, n, tmp / f"mem{n}")
                for engine in ("local", "ray"):
                    r = survey(d, mem_models, tmp / f"mem_out_{engine}_{n}", engine, ["--queries", str(args.queries)])
                    print(f"  {engine:5s} {n:3d} clips: driver peak RSS {r['maxrss_mb']:.0f} MB "
                          f"(wall {r['wall']:.1f} s)")

        if not args.skip_k400:
            model = models[0] if args.workload == "i3d" else i3d_checkpoint(tmp, 32)
            c = per_clip_cost(model, found["bigbuckbunny"], 32, 2, args.queries)
            cpu = c["decode"] + c["forward"] + c["stats"]
            print(f"one Kinetics-style clip, I3D-R50 NL5 at 32x2 ({c['shape']}), {c['threads']} threads: "
                  f"decode {c['decode']:.2f} s, forward with capture {c['forward']:.2f} s, "
                  f"statistics {c['stats']:.3f} s")
            gpu = args.gpu_forward_ms / 1000 + c["stats"]
            print(f"Kinetics-400 val, {K400_VAL} clips (Ray start and model loads, ~20-30 s, not included):")
            print(f"  on 2-core CPU workers like this one: {K400_VAL * cpu / 3600:.1f} h / N "
                  f"(N=1: {K400_VAL * cpu / 3600:.1f} h, N=16: {K400_VAL * cpu / 16 / 60:.0f} min)")
            for cores in (4, 8):
                per = max(c["decode"] / cores, gpu)
                bound = "decoding" if c["decode"] / cores > gpu else "forward + statistics"
                print(f"  on N GPU workers, {cores} decode cores each, forward ASSUMED {args.gpu_forward_ms:.0f} ms, "
                      f"statistics as measured here: {K400_VAL * per / 60:.0f} min / N "
                      f"(N=8: {K400_VAL * per / 8 / 60:.1f} min; bound by {bound})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
