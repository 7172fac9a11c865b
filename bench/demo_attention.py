"""What the bundled demo models' attention does, measured on held-out clips of their task.

The demo models label every cell of the last frames of an identity-propagation clip
(:func:`nlviz.synthetic.make_track_clip`) with the shade its object showed in the first four
frames; no convolution reaches back that far, so only attention can carry the shade. Prints,
for each demo model in assets/models (one per pairwise function, plus the baseline without
non-local blocks):

- dense accuracy on the object cells of the labelled frames (chance 1/4), and on all labelled
  cells, against the baseline's;
- per non-local block, GCNet's query dependence (Cao et al. 2019: mean pairwise cosine distance
  between the rows of different queries; 0: every query sees the same map) for random query
  cells and for query cells on objects, and the share of all-zero rows;
- per block, the object-tracking score (share of other-frame attention mass on the query's own
  object) against chance (its area share), and the same for the block's query-independent mean
  row (the control, see nlviz.tracking), for queries on objects in the labelled frames and in
  any frame; for dot product and concatenation also the score of the rows' positive part.

With --update-cards the figures are written into each model card (assets/models/*.json).

Run: python bench/demo_attention.py [--clips 50] [--update-cards] [--models DIR] [--only NAME ...] [--summary]
(--summary: print the figures stored in the cards by earlier --update-cards runs, computing nothing.)
(--models: measure models trained into a scratch directory, e.g. ``nlviz train --out /tmp/nl``,
without touching the shipped ones; --only: just these pairwise names, e.g. ``--only embedded_gaussian``.)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch

from nlviz import synthetic
from nlviz.tracking import query_dependence_scores, tracking_scores
from nlviz.train import TEST_OFFSET, TrainConfig, evaluate
from nlviz.weights import load_weights

MODELS = Path(__file__).resolve().parent.parent / "assets" / "models"
BENCH_OFFSET = 5_000_000  # attention clips: data_seed + TEST_OFFSET + this, disjoint from train and test


def _r(v: float, nd: int = 4) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, nd)


def _tracking(scores) -> dict:
    """Tracking scores as stored in a card, per block (positive_ratio only where rows can be negative)."""
    out = {}
    for s in scores:
        out[s.block] = {"score": _r(s.score), "chance": _r(s.chance), "ratio": _r(s.ratio, 2),
                        "control_ratio": _r(s.control_ratio, 2), "ratio_over_control": _r(s.ratio / s.control_ratio, 2),
                        "queries": s.queries}
        if not math.isclose(s.positive, s.score, rel_tol=1e-9):
            out[s.block]["positive_ratio"] = _r(s.positive_ratio, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=50, help="held-out clips for the attention figures")
    ap.add_argument("--queries", type=int, default=64, help="query cells per clip for the query dependence")
    ap.add_argument("--update-cards", action="store_true")
    ap.add_argument("--models", type=Path, default=MODELS, help="directory of demo_*.json cards and their weights")
    ap.add_argument("--only", nargs="+", default=None, help="pairwise names to measure (default: all)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--summary", action="store_true", help="print the figures stored in the cards, compute nothing")
    args = ap.parse_args()
    if args.summary:
        summary(args.models)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    datasets: dict[str, tuple] = {}

    def data_for(card: dict) -> tuple:
        """(test clips, classes, attention clips, masks, task config) of the card's task."""
        syn = synthetic.TrackConfig(**card.get("synthetic_config", {}))
        data_seed = card.get("train_config", {}).get("data_seed", TrainConfig.data_seed)
        n_test = card.get("n_test", TrainConfig.n_test)
        key = json.dumps([asdict(syn), data_seed, n_test], sort_keys=True)
        if key not in datasets:
            xte, cte, _ = synthetic.make_track_dataset(n_test, data_seed + TEST_OFFSET, syn)
            xa, _, ma = synthetic.make_track_dataset(args.clips, data_seed + TEST_OFFSET + BENCH_OFFSET, syn)
            datasets[key] = xte, cte, xa, ma, syn
        return datasets[key]

    cards = sorted(args.models.glob("demo_*.json"))
    if args.only:
        cards = [p for p in cards if p.stem.removeprefix("demo_") in args.only]
    if not cards:
        raise SystemExit(f"no demo models in {args.models}: run `nlviz train --pairwise all` first")
    rows = []
    for card_path in cards:
        card = json.loads(card_path.read_text())
        model = load_weights(card_path.with_suffix(".safetensors"))
        xte, cte, xa, ma, syn = data_for(card)
        t0 = time.perf_counter()
        acc = evaluate(model, xte, cte, syn)
        labelled = range(syn.label_from, syn.frames)
        track_lab = track_any = deps = []
        if card.get("pairwise"):
            track_lab = tracking_scores(model, xa, ma, queries_per_clip=8, frames=labelled)
            track_any = tracking_scores(model, xa, ma, queries_per_clip=8)
            deps = query_dependence_scores(model, xa, ma, queries=args.queries)
        rows.append((card["name"], acc, track_lab, track_any, deps, time.perf_counter() - t0))
        if args.update_cards:
            card["measured"] = {
                "dense_accuracy": acc.as_dict(),
                "test_clips": len(xte),
                "attention_clips": args.clips,
                "query_dependence": {d.block: {"random_queries": _r(d.random), "queries_on_objects": _r(d.on_objects),
                                               "all_zero_row_share": _r(d.zero_rows), "queries_per_clip": args.queries}
                                     for d in deps},
                "tracking_labelled_frames": _tracking(track_lab),
                "tracking_any_frame": _tracking(track_any),
                "note": "dense accuracy: object cells of the labelled frames (chance 1/4) and all labelled cells. "
                        "query dependence: GCNet's mean pairwise cosine distance between the rows of different "
                        "query cells of a clip (|f| for dot_product and concatenation), 0 = one map for every "
                        "query, 1 = disjoint maps; random cells and cells on objects. tracking: share of "
                        "attention mass on other frames' keys that lies on the query's object, against chance "
                        "(its area share); control_ratio: the same for the block's mean row over all queries "
                        "(one map for every query); positive_ratio: the score of the rows' positive part max(f, 0) "
                        "against chance (dot_product and concatenation; a dot product can tell the query's object "
                        "by sign, f > 0 on it and < 0 on the others, which |f| counts as mass elsewhere). "
                        "Measured by bench/demo_attention.py.",
            }
            card_path.write_text(json.dumps(card, indent=2) + "\n")
    base = {name: acc for name, acc, *_ in rows}.get("demo.none")
    chance = 1 / (len(synthetic.TRACK_CLASSES) - 1)
    n_test = len(next(iter(datasets.values()))[0])
    print(f"dense accuracy on the object cells of the labelled frames, {n_test} held-out clips (chance {chance:.3f})"
          + (f"; baseline without NL {base.objects:.3f}" if base is not None else ""))
    for name, acc, track_lab, track_any, deps, secs in rows:
        vs = f" ({100 * (acc.objects - base.objects):+.1f} points vs baseline)" if base and name != "demo.none" else ""
        print(f"  {name:24s} objects {acc.objects:.3f}{vs}; all labelled cells {acc.cells:.3f}; "
              f"last frames {acc.last:.3f}  [{secs:.0f}s]")
        for d in deps:
            print(f"      {d.block}: query dependence (GCNet cosine) random {d.random:.3f}, on objects "
                  f"{d.on_objects:.3f}; all-zero rows {100 * d.zero_rows:.1f}%")
        for label, scores in (("labelled frames", track_lab), ("any frame", track_any)):
            stored = _tracking(scores)
            for s in scores:
                print(f"      {s.block} tracking ({label}): {s.score:.3f} vs chance {s.chance:.3f} = {s.ratio:.1f}x; "
                      f"mean row {s.control_ratio:.1f}x; ratio/control {s.ratio / s.control_ratio:.2f} "
                      f"({s.queries} queries)" + _positive(stored[s.block]))


def _positive(t: dict) -> str:
    return f"; positive part max(f, 0) {t['positive_ratio']}x chance" if "positive_ratio" in t else ""


def summary(models: Path) -> None:
    """Print what earlier ``--update-cards`` runs stored in the cards (one table, the baseline included)."""
    cards = [json.loads(p.read_text()) for p in sorted(models.glob("demo_*.json"))]
    cards = [c for c in cards if "measured" in c]
    base = next((c["measured"]["dense_accuracy"]["object_cells"] for c in cards if c["name"] == "demo.none"), None)
    print(f"from the cards in {models}; dense accuracy on the object cells of the labelled frames (chance "
          f"{1 / (len(synthetic.TRACK_CLASSES) - 1):.3f})" + (f"; baseline without NL {base:.3f}" if base else ""))
    for c in cards:
        m = c["measured"]
        acc = m["dense_accuracy"]
        vs = f" ({100 * (acc['object_cells'] - base):+.1f} points vs baseline)" if base and c["name"] != "demo.none" else ""
        print(f"  {c['name']:24s} objects {acc['object_cells']:.3f}{vs}; all labelled cells {acc['all_cells']:.3f}; "
              f"trained {c['steps_done']} steps in {c['seconds']:.0f}s on {c['machine']}")
        for block, d in m.get("query_dependence", {}).items():
            print(f"      {block}: query dependence (GCNet cosine) random {d['random_queries']}, on objects "
                  f"{d['queries_on_objects']}; all-zero rows {d['all_zero_row_share']}")
        for label, key in (("labelled frames", "tracking_labelled_frames"), ("any frame", "tracking_any_frame")):
            for block, t in m.get(key, {}).items():
                print(f"      {block} tracking ({label}): {t['ratio']}x chance; mean row {t['control_ratio']}x; "
                      f"ratio/control {t['ratio_over_control']} ({t['queries']} queries)" + _positive(t))


if __name__ == "__main__":
    main()
