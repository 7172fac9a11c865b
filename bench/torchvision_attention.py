"""Benchmark: torchvision's MViT v2 S and Swin3D T (random weights, 1x3x16x224x224) through capture.

Prints, per model:
1. forward with capture vs torchvision's own forward (same weights, same clip): medians and minima
   of interleaved runs, and the time spent inside the capture hooks of one captured forward
   (cProfile), which a busy shared machine disturbs least;
2. capture memory: every block's TokenCapture.nbytes over its captured q/k tensors;
3. rows of one query (fastest of N calls): all heads at once (token_probs(per_head=True)), the
   head mean (row) and one head, for the first block (MViT-v2-S block 0: 25,089 queries x 393 keys)
   and the default block;
4. the hover view's bytes per block (nlviz.viewdata.factor_bytes) against its budget, and the
   mode each block gets (browser, or server rows on click).

Run: python bench/torchvision_attention.py [--models mvit_v2_s swin3d_t] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import captured_forward, forward, timed  # noqa: E402

from nlviz import viewdata  # noqa: E402
from nlviz.models import torchvision_video as tvv  # noqa: E402


def _mib(n: float) -> str:
    return f"{n / 2 ** 20:.1f} MiB"


def best(fn, repeats: int) -> float:
    """The fastest of ``repeats`` calls (a busy machine only ever adds time)."""
    return min(timed(fn, 1) for _ in range(repeats))


def bench(arch: str, repeats: int, row_repeats: int) -> None:
    torch.manual_seed(0)
    model = tvv.build(arch)
    clip = torch.randn(1, 3, 16, 224, 224)
    plain = forward(model, clip)
    cap_run, caps = captured_forward(model, clip)
    plain()  # warm up both paths once
    cap_run()
    # interleave the two so drift on a shared machine hits both alike; wall and CPU time
    t_plain, t_cap, c_plain, c_cap = [], [], [], []
    for _ in range(repeats):
        for fn, wall, cpu in ((plain, t_plain, c_plain), (cap_run, t_cap, c_cap)):
            c0 = time.process_time()
            wall.append(timed(fn, 1))
            cpu.append(time.process_time() - c0)
    t_plain.sort()
    t_cap.sort()
    tp, tc = t_plain[len(t_plain) // 2], t_cap[len(t_cap) // 2]
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    cap_run()
    prof.disable()
    stats = pstats.Stats(prof).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    total = max(ct for (f, _, fn), (_, _, _, ct, _) in stats.items() if fn == "run" and f.endswith("_timing.py"))
    hooks = sum(ct for (f, _, fn), (_, _, _, ct, _) in stats.items()
                if f.endswith("torchvision_video.py") and fn in ("on_input", "on_output", "hook", "on_qkv"))
    cap = caps[0]
    print(f"\n== {arch}: {len(cap)} attention blocks, clip 1x3x16x224x224, {torch.get_num_threads()} threads")
    print(f"forward: plain {tp * 1e3:.0f} ms, with capture {tc * 1e3:.0f} ms  -> {tc / tp:.3f}x "
          f"(minima {min(t_plain) * 1e3:.0f} / {min(t_cap) * 1e3:.0f} ms -> {min(t_cap) / min(t_plain):.3f}x); "
          f"capture hooks {hooks * 1e3:.0f} ms of a {total * 1e3:.0f} ms captured forward ({100 * hooks / total:.1f}%)")
    print(f"forward CPU time: plain {min(c_plain):.2f} s, with capture {min(c_cap):.2f} s (minima) -> "
          f"{min(c_cap) / min(c_plain):.3f}x; sums -> {sum(c_cap) / sum(c_plain):.3f}x")
    qk = sum(b.q.nbytes + b.k.nbytes for b in cap)
    print(f"capture memory: {_mib(cap.nbytes)} held for {_mib(qk)} of q/k  -> {cap.nbytes / qk:.3f}x")
    names = [cap.blocks[0], tvv.default_block(model)]
    for name in dict.fromkeys(names):
        b = cap[name]
        cell = tuple(s // 2 for s in b.query_shape)
        tok = [b.query_extra + b.flat_query(cell)]
        b.token_probs(tok, per_head=True)
        t_all = best(lambda: b.token_probs(tok, per_head=True), row_repeats)
        t_mean = best(lambda: b.row(cell), row_repeats)
        t_one = best(lambda: b.row(cell, head=b.num_heads - 1), row_repeats)
        print(f"{name}: {b.num_heads} heads, queries {'x'.join(map(str, b.query_shape))} (+{b.query_extra}), "
              f"keys {'x'.join(map(str, b.key_shape))} (+{b.key_extra}): one query, all heads {t_all * 1e3:.2f} ms; "
              f"head mean (row) {t_mean * 1e3:.2f} ms; one head {t_one * 1e3:.2f} ms")
    print(f"hover view, budget {_mib(viewdata.BUDGET_BYTES)} per block:")
    for b in cap:
        fb = viewdata.factor_bytes(b)
        mode = "browser" if viewdata.fits_budget(b) and viewdata.browser_supported(b) else "server"
        print(f"  {b.name:22s} {_mib(fb):>9s}  {mode}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mvit_v2_s", "swin3d_t"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--row-repeats", type=int, default=50)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for arch in args.models:
        bench(arch, args.repeats, args.row_repeats)


if __name__ == "__main__":
    main()
