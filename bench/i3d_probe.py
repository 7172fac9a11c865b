"""Benchmark: DeepMind's I3D with the feature-similarity probe at 224, 32 and 64 frames, on 2 threads.

Prints, per clip length, each against a baseline measured in the same process:
  - forward time: the released network without probes, with probes, with probes + capture;
  - memory held by a capture (unit features per probe) vs the full N x N matrices;
  - one click (one row at each of Mixed_3c, Mixed_4f, Mixed_5c) vs computing the full matrices,
    per block; a matrix whose computation would need more than --max-gb (the product and the
    softmax output exist at once: 2 x N_q x N_k floats) is skipped, and that is printed.
Uses the converted weights when cached (`nlviz download i3d_inception.kinetics400_probe`), else
random weights (the times do not depend on the values).
Run: python bench/i3d_probe.py [--frames 32 64] [--threads 2] [--repeats 3] [--max-gb 3]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from nlviz import sdist
from nlviz.checkpoints import deepmind_i3d
from nlviz.models import PROBE_STAGES, build

from _timing import captured_forward, forward, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-gb", type=float, default=3.0, help="skip a full matrix needing more than this")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if sdist.converted_path().is_file():
        probed = deepmind_i3d.load_converted(sdist.converted_path(), stages=PROBE_STAGES, tau=0.1, centre=True)
        weights = "DeepMind's weights"
    else:
        probed = build("i3d_inception", stages=PROBE_STAGES)
        weights = "random weights (not cached)"
    plain_model = probed.with_probe(stages=())
    print(f"InceptionI3d + probes at {', '.join(PROBE_STAGES)} ({weights}), {torch.get_num_threads()} threads")

    for frames in args.frames:
        clip = torch.rand(1, 3, frames, args.size, args.size) * 2 - 1
        print(f"\nclip 1x3x{frames}x{args.size}x{args.size}")

        plain, probes = forward(plain_model, clip), forward(probed, clip)
        captured, caps = captured_forward(probed, clip)
        plain()  # warm-up
        t_plain, t_probe, t_cap = [], [], []
        for _ in range(args.repeats):  # interleaved: drift in machine load hits all three alike
            t_plain.append(timed(plain, 1))
            t_probe.append(timed(probes, 1))
            t_cap.append(timed(captured, 1))
        tp, tr, tc = (statistics.median(t) for t in (t_plain, t_probe, t_cap))
        print(
            f"forward: released network {tp:.3f} s; with probes {tr:.3f} s ({100 * (tr / tp - 1):+.1f}%); "
            f"with probes + capture {tc:.3f} s ({100 * (tc / tp - 1):+.1f}%)"
        )

        cap = caps[0]
        full = {b.name: 4 * b.theta[0, 0].numel() * b.phi[0, 0].numel() for b in cap}
        print(
            f"memory: capture holds {cap.nbytes / 2**20:.1f} MiB; the full matrices would be "
            f"{sum(full.values()) / 2**30:.2f} GiB (capture = {cap.nbytes / sum(full.values()):.4f}x)"
        )
        query = (frames / 2, args.size * 0.4, args.size * 0.6)

        def click():
            return cap.rows_at(*query)

        click()
        t_click = timed(click, 50)
        print(f"one click (a row in each of the {len(cap)} probes): {1000 * t_click:.2f} ms")
        for b in cap:
            nq, nk = b.theta[0, 0].numel(), b.phi[0, 0].numel()
            t_row = timed(lambda: b.row(b.query_at(*query)), 50)
            line = f"  {b.name}: {nq} queries x {nk} keys, C={b.theta.shape[1]}; row {1000 * t_row:.2f} ms"
            need = 2 * full[b.name]
            if need > args.max_gb * 1e9:
                print(f"{line}; full matrix SKIPPED: {full[b.name] / 1e9:.2f} GB, ~{need / 1e9:.1f} GB to compute "
                      f"(> --max-gb {args.max_gb:g})")
                continue
            t_matrix = timed(b.matrix, 1 if nq > 10_000 else args.repeats)
            print(f"{line}; full matrix {1000 * t_matrix:.0f} ms ({full[b.name] / 1e6:.0f} MB), "
                  f"{t_matrix / t_row:.0f}x a row")


if __name__ == "__main__":
    main()
