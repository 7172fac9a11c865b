"""What the bundled demo models' attention does, measured on held-out synthetic clips.

Prints, for each demo model in assets/models (one per pairwise function, plus the baseline
without non-local blocks): test accuracy against the baseline's (the paper's claim, on our toy
task), and per non-local block the object-tracking score (share of other-frame attention mass
on the query's own object) against chance (the object's area share), as a ratio, next to the
same ratio for the block's query-independent mean row (the control: see nlviz.tracking).
With --update-cards the figures are written into each model card (assets/models/*.json).

Run: python bench/demo_attention.py [--clips 200] [--update-cards] [--models DIR] [--only NAME ...]
(--models: measure models trained into a scratch directory, e.g. ``nlviz train --out /tmp/nl``,
without touching the shipped ones; --only: just these pairwise names, e.g. ``--only embedded_gaussian``.)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from nlviz import synthetic
from nlviz.tracking import tracking_scores
from nlviz.train import TrainConfig, evaluate
from nlviz.weights import load_weights

MODELS = Path(__file__).resolve().parent.parent / "assets" / "models"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200, help="held-out clips for the tracking score")
    ap.add_argument("--update-cards", action="store_true")
    ap.add_argument("--models", type=Path, default=MODELS, help="directory of demo_*.json cards and their weights")
    ap.add_argument("--only", nargs="+", default=None, help="pairwise names to measure (default: all)")
    args = ap.parse_args()
    cfg = TrainConfig()
    test_seed = cfg.data_seed + 10_000_000
    datasets: dict[str, tuple] = {}

    def data_for(card: dict) -> tuple:
        """(test clips, labels, tracking clips, masks) of the task the card's model was trained on."""
        syn = synthetic.SyntheticConfig(**card.get("synthetic_config", {}))
        key = json.dumps(asdict(syn), sort_keys=True)
        if key not in datasets:
            xte, yte, _ = synthetic.make_dataset(cfg.n_test, test_seed, syn)
            xtr, _, mtr = synthetic.make_dataset(args.clips, test_seed + 5_000_000, syn)  # disjoint from train and test
            datasets[key] = xte, yte, xtr, mtr
        return datasets[key]

    cards = sorted(args.models.glob("demo_*.json"))
    if args.only:
        cards = [p for p in cards if p.stem.removeprefix("demo_") in args.only]
    if not cards:
        raise SystemExit(f"no demo models in {args.models}: run `nlviz train --pairwise all` first")
    chance_acc = 1 / len(synthetic.CLASSES)
    rows = []
    for card_path in cards:
        card = json.loads(card_path.read_text())
        model = load_weights(card_path.with_suffix(".safetensors"))
        xte, yte, xtr, mtr = data_for(card)
        t0 = time.perf_counter()
        acc = evaluate(model, xte, yte)
        scores = tracking_scores(model, xtr, mtr) if card.get("pairwise") else []
        rows.append((card["name"], acc, scores, time.perf_counter() - t0))
        if args.update_cards:
            card["measured"] = {
                "test_accuracy": round(acc, 4),
                "test_clips": cfg.n_test,
                "tracking_clips": args.clips,
                "tracking": {s.block: {"score": round(s.score, 4), "chance": round(s.chance, 4),
                                       "ratio": round(s.ratio, 2), "queries": s.queries,
                                       "control_ratio": round(s.control_ratio, 2)} for s in scores},
                "note": "tracking score: share of attention mass on other frames' keys that lies on the query's "
                        "object, against chance (its area share); |f|/N for dot_product and concatenation. "
                        "control_ratio: the same for the block's mean row over all queries (one map for every "
                        "query): a ratio near it means the block attends to objects in general, not to the "
                        "query's own",
            }
            card_path.write_text(json.dumps(card, indent=2) + "\n")
    base = {name: acc for name, acc, *_ in rows}.get("demo.none")
    print(f"test accuracy on {cfg.n_test} held-out clips (chance {chance_acc:.2f})"
          + (f", baseline without NL {base:.3f}" if base is not None else ""))
    for name, acc, scores, secs in rows:
        vs = f" ({acc / base:.2f}x baseline)" if base else ""
        print(f"  {name:24s} acc {acc:.3f}{vs}  [{secs:.0f}s]")
        for s in scores:
            print(f"      {s.block}: tracking {s.score:.3f} vs chance {s.chance:.3f} = {s.ratio:.1f}x; "
                  f"the query-independent mean row {s.control_ratio:.1f}x ({s.queries} queries)")


if __name__ == "__main__":
    main()
