"""`nlviz train`: train the bundled demo models (:mod:`nlviz.train` owns the trainer).

The flags and their defaults come from :mod:`nlviz.names` (the trainer's own defaults live
there too), so ``nlviz train --help`` answers without importing torch.
"""

from __future__ import annotations

import argparse

from ..names import TRAIN_BASELINE, TRAIN_DEFAULTS, TRAIN_VARIANTS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairwise", default=["embedded_gaussian"], nargs="+",
                        choices=(*TRAIN_VARIANTS, TRAIN_BASELINE, "all"),
                        help="pairwise function(s) to train, one model each ('none': baseline without NL blocks; "
                             "'all': all five)")
    parser.add_argument("--out", default="assets/models", help="directory for the weights and model cards")
    parser.add_argument("--steps", type=int, default=TRAIN_DEFAULTS["steps"])
    parser.add_argument("--n-train", type=int, default=TRAIN_DEFAULTS["n_train"])
    parser.add_argument("--n-test", type=int, default=TRAIN_DEFAULTS["n_test"])
    parser.add_argument("--seed", type=int, default=TRAIN_DEFAULTS["seed"])
    parser.add_argument("--budget", type=float, default=TRAIN_DEFAULTS["time_budget_s"],
                        help="time budget per model (s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS["batch_size"])


def main(args: argparse.Namespace) -> int:
    from ..train import main as train

    return train(args)
