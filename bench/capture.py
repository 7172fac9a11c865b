"""Benchmark: cost of attention capture on I3D-R50 NL (5 blocks) at 32x224x224, random weights.

Prints, each as a ratio against a baseline measured in the same process:
  - forward time without vs with capture (the hooks' overhead),
  - memory held by a capture (theta/phi per block) vs the naive full N_q x N_k matrices,
  - one click (one row in each of the 5 blocks) vs the naive path (materialize, then index).
Run: python bench/capture.py [--frames 32] [--size 224] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from nlviz.models import build

from _timing import captured_forward, forward, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build("i3d_nl5_r50")
    clip = torch.randn(1, 3, args.frames, args.size, args.size)
    print(f"I3D-R50 NL5, clip 1x3x{args.frames}x{args.size}x{args.size}, {torch.get_num_threads()} threads")

    plain = forward(model, clip)
    captured, caps = captured_forward(model, clip)
    plain()  # warm-up
    # interleave so that drift in machine load hits both sides alike
    t_plain, t_cap = [], []
    for _ in range(args.repeats):
        t_plain.append(timed(plain, 1))
        t_cap.append(timed(captured, 1))
    tp, tc = statistics.median(t_plain), statistics.median(t_cap)
    print(f"forward: plain {tp:.3f} s, with capture {tc:.3f} s, overhead {100 * (tc / tp - 1):+.1f}% (goal <= 5%)")

    cap = caps[0]
    naive_bytes = sum(
        4 * (b.query_shape[0] * b.query_shape[1] * b.query_shape[2]) * (b.key_shape[0] * b.key_shape[1] * b.key_shape[2])
        for b in cap
    )
    print(
        f"memory: capture holds {cap.nbytes / 2**20:.1f} MiB, full matrices would be {naive_bytes / 2**20:.1f} MiB "
        f"(capture = {cap.nbytes / naive_bytes:.3f}x naive)"
    )
    for b in cap:
        print(f"  {b.name}: queries {b.query_shape}, keys {b.key_shape}, C={b.theta.shape[1]}")

    t_in, h_in, w_in = args.frames, args.size, args.size
    query = (t_in // 2, h_in * 0.4, w_in * 0.6)

    def click():
        return cap.rows_at(*query)

    def naive():
        out = {}
        for b in cap:
            cell = b.query_at(*query)
            out[b.name] = b.matrix()[b.flat_query(cell)].reshape(b.key_shape)
        return out

    for name, row in click().items():  # same numbers both ways
        torch.testing.assert_close(row, naive()[name], rtol=1e-5, atol=1e-7)
        break
    click()
    t_click = timed(click, 50)
    t_naive = timed(naive, args.repeats)
    print(
        f"one click (rows in all {len(cap)} blocks): {1000 * t_click:.2f} ms (goal <= 20 ms); "
        f"naive materialize-then-index {1000 * t_naive:.0f} ms; speed-up {t_naive / t_click:.0f}x (goal >= 50x)"
    )


if __name__ == "__main__":
    main()
