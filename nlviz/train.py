"""Train the bundled demo models: tiny I3D non-local networks on synthetic clips, on CPU.

No non-local checkpoint can be downloaded on the build machines and none exists anywhere for
the concatenation variant, so nlviz trains its own: one model per pairwise function, identical
in everything else, plus a baseline without non-local blocks. They learn the task of
:mod:`nlviz.synthetic` from the label alone (no loss term on the attention), with fixed seeds
and a held-out test set; each run fits in 15 minutes on 2 CPU cores.

    nlviz train --pairwise embedded_gaussian --out assets/models
    nlviz train --pairwise none --out assets/models          # the baseline

Each run writes ``demo_<pairwise>.safetensors`` (see :mod:`nlviz.weights`) and a model card
``demo_<pairwise>.json``: task, architecture, pairwise function, test accuracy, the command,
seed, time taken (the attention figures are added by ``bench/demo_attention.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import synthetic
from .models import build
from .weights import save_weights

Progress = Callable[[int, int, dict], None]  # (step, total_steps, metrics)

BASELINE = "none"
CHECK_CLIPS = 200  # test clips whose accuracy the card records for the test suite to reproduce
VARIANTS = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. The defaults are those of the shipped demo models."""

    pairwise: str = "embedded_gaussian"  # a pairwise function, or "none" for the baseline without NL blocks
    arch: str = "tiny_i3d_nl2"  # registry name; the baseline uses its nl0 twin
    n_train: int = 6000  # training clips, generated once (fixed set: reproducible)
    n_test: int = 1000  # held-out clips from a disjoint seed range
    steps: int = 600  # optimizer steps (batch_size clips each)
    batch_size: int = 16
    lr: float = 2e-3  # AdamW peak learning rate, cosine decay to 0 after a short warm-up
    weight_decay: float = 1e-4
    warmup: int = 30
    seed: int = 0  # model init and batch order
    data_seed: int = 1_000_000  # first clip seed of the training set; test uses data_seed + 10_000_000
    time_budget_s: float = 15 * 60  # stop early (and say so) if the run exceeds this
    synthetic: synthetic.SyntheticConfig = field(default_factory=synthetic.SyntheticConfig)

    @property
    def model_arch(self) -> str:
        return self.arch.replace("_nl2", "_nl0") if self.pairwise == BASELINE else self.arch

    def build_overrides(self) -> dict:
        over = {"num_classes": len(synthetic.CLASSES)}
        if self.pairwise != BASELINE:
            over["pairwise"] = self.pairwise
        return over


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    test_accuracy: float
    train_accuracy: float
    seconds: float
    steps_done: int
    history: list[dict]
    stopped_early: bool
    check_accuracy: float  # on the first CHECK_CLIPS test clips: what the test suite re-measures


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless shuffled index batches over n items."""
    while True:
        order = rng.permutation(n)
        for i in range(0, n - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


@torch.no_grad()
def evaluate(model: nn.Module, clips: np.ndarray, labels: np.ndarray, batch_size: int = 64) -> float:
    """Accuracy of ``model`` on uint8 clips (N, T, H, W, 3) with integer labels (N,)."""
    model.eval()
    correct = 0
    for i in range(0, len(clips), batch_size):
        logits = model(synthetic.to_tensor(clips[i : i + batch_size]))
        correct += int((logits.argmax(1).numpy() == labels[i : i + batch_size]).sum())
    return correct / max(len(clips), 1)


def make_data(config: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train clips, train labels, test clips, test labels), deterministic given the config."""
    xtr, ytr, _ = synthetic.make_dataset(config.n_train, config.data_seed, config.synthetic)
    xte, yte, _ = synthetic.make_dataset(config.n_test, config.data_seed + 10_000_000, config.synthetic)
    return xtr, ytr, xte, yte


def train(config: TrainConfig, progress: Progress | None = None, data=None) -> TrainResult:
    """Train one demo model per ``config``; returns the model (eval mode) and its figures."""
    if config.pairwise not in (*VARIANTS, BASELINE):
        raise ValueError(f"pairwise must be one of {VARIANTS + (BASELINE,)}, got {config.pairwise!r}")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    xtr, ytr, xte, yte = data if data is not None else make_data(config)
    model = build(config.model_arch, **config.build_overrides()).train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        frac = (step - config.warmup) / max(config.steps - config.warmup, 1)
        return config.lr * 0.5 * (1 + math.cos(math.pi * frac))

    rng = np.random.default_rng(config.seed)
    batches = _batches(len(xtr), config.batch_size, rng)
    history, running, stopped_early, step = [], [], False, 0
    for step in range(config.steps):
        if time.perf_counter() - start > config.time_budget_s:
            stopped_early = True
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        idx = next(batches)
        x, y = synthetic.to_tensor(xtr[idx]), torch.as_tensor(ytr[idx], dtype=torch.long)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append((loss.item(), (logits.argmax(1) == y).float().mean().item()))
        if (step + 1) % 25 == 0 or step + 1 == config.steps:
            loss_avg, acc_avg = np.mean(running, axis=0)
            running.clear()
            entry = {"step": step + 1, "loss": round(float(loss_avg), 4), "train_acc": round(float(acc_avg), 4),
                     "seconds": round(time.perf_counter() - start, 1)}
            history.append(entry)
            if progress:
                progress(step + 1, config.steps, entry)
    steps_done = step + 1 if not stopped_early else step
    model.eval()
    test_acc = evaluate(model, xte, yte)
    train_acc = evaluate(model, xtr[:1000], ytr[:1000])
    check = evaluate(model, xte[:CHECK_CLIPS], yte[:CHECK_CLIPS])
    return TrainResult(model, config, test_acc, train_acc, time.perf_counter() - start, steps_done, history,
                       stopped_early, check)


def model_card(result: TrainResult, command: str) -> dict:
    """The JSON model card shipped next to the weights."""
    cfg = result.config
    return {
        "name": f"demo.{cfg.pairwise}",
        "task": synthetic.TASK_DESCRIPTION,
        "classes": list(synthetic.CLASSES),
        "chance_accuracy": 1 / len(synthetic.CLASSES),
        "architecture": cfg.model_arch,
        "build_overrides": cfg.build_overrides(),
        "pairwise": None if cfg.pairwise == BASELINE else cfg.pairwise,
        "test_accuracy": round(result.test_accuracy, 4),
        "train_accuracy_first_1000": round(result.train_accuracy, 4),
        "n_test": cfg.n_test,
        "check": {"clips": CHECK_CLIPS, "first_seed": cfg.data_seed + 10_000_000,
                  "accuracy": round(result.check_accuracy, 4)},
        "test_seeds": [cfg.data_seed + 10_000_000, cfg.data_seed + 10_000_000 + cfg.n_test],
        "training_command": command,
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "synthetic"},
        "synthetic_config": asdict(cfg.synthetic),
        "seed": cfg.seed,
        "seconds": round(result.seconds, 1),
        "steps_done": result.steps_done,
        "stopped_early": result.stopped_early,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "history": result.history,
    }


def save_demo(result: TrainResult, out_dir: str | Path, command: str) -> tuple[Path, Path]:
    """Write demo_<pairwise>.safetensors and its card demo_<pairwise>.json into out_dir."""
    out_dir = Path(out_dir)
    stem = f"demo_{result.config.pairwise}"
    weights = save_weights(result.model, out_dir / f"{stem}.safetensors", result.config.build_overrides())
    card_path = out_dir / f"{stem}.json"
    card_path.write_text(json.dumps(model_card(result, command), indent=2) + "\n")
    return weights, card_path


# --- command line ------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairwise", default="embedded_gaussian", choices=(*VARIANTS, BASELINE, "all"),
                        help="pairwise function to train ('none': baseline without NL blocks; 'all': all five)")
    parser.add_argument("--out", default="assets/models", help="directory for the weights and model cards")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--n-train", type=int, default=TrainConfig.n_train)
    parser.add_argument("--n-test", type=int, default=TrainConfig.n_test)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--budget", type=float, default=TrainConfig.time_budget_s, help="time budget per model (s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def _bar(step: int, total: int, metrics: dict) -> None:
    width = 30
    done = int(width * step / total)
    print(f"\r  [{'#' * done}{'.' * (width - done)}] {step}/{total} loss {metrics['loss']:.3f} "
          f"acc {metrics['train_acc']:.2f} {metrics['seconds']:.0f}s", end="", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = (*VARIANTS, BASELINE) if args.pairwise == "all" else (args.pairwise,)
    data = None
    for pairwise in variants:
        cfg = TrainConfig(pairwise=pairwise, steps=args.steps, n_train=args.n_train, n_test=args.n_test,
                          seed=args.seed, time_budget_s=args.budget)
        if data is None:
            print(f"generating {cfg.n_train} training and {cfg.n_test} test clips...", file=sys.stderr)
            data = make_data(cfg)
        print(f"training demo.{pairwise} ({cfg.model_arch})", file=sys.stderr)
        result = train(cfg, progress=_bar, data=data)
        print(file=sys.stderr)
        command = (f"nlviz train --pairwise {pairwise} --steps {args.steps} --n-train {args.n_train} "
                   f"--n-test {args.n_test} --seed {args.seed}")
        weights, card = save_demo(result, args.out, command)
        note = " (stopped at the time budget)" if result.stopped_early else ""
        print(f"demo.{pairwise}: test accuracy {result.test_accuracy:.3f} in {result.seconds:.0f}s{note} -> {weights}")
    return 0
