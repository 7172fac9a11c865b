"""Train the bundled demo models: tiny I3D non-local networks on synthetic clips, on CPU.

No non-local checkpoint can be downloaded on the build machines and none exists anywhere for
the concatenation variant, so nlviz trains its own: one model per pairwise function, identical
in everything else, plus a baseline without non-local blocks (``tiny_i3d_nl2_dense`` and its
``nl0`` twin). They learn the identity-propagation task of :mod:`nlviz.synthetic`
(:func:`~nlviz.synthetic.make_track_clip`) from per-cell labels alone: a cross-entropy on the
dense head's logits, no loss term on the attention; fixed seeds, a held-out test set, each run
within 15 minutes on 2 CPU cores.

    nlviz train --pairwise embedded_gaussian --out assets/models
    nlviz train --pairwise none --out assets/models          # the baseline
    nlviz train --pairwise all --threads 2 --out assets/models   # the five shipped models

Each run writes ``demo_<pairwise>.safetensors`` (see :mod:`nlviz.weights`) and a model card
``demo_<pairwise>.json``: task, architecture, pairwise function, dense test accuracy, the
command, seed, time taken, machine (the attention figures are added by
``bench/demo_attention.py --update-cards``).

Departures from the paper's recipe, in :func:`init_nonlocal` / :class:`TrainConfig` and the
same for every pairwise function and the baseline:

- the NL blocks start with fan-in-scaled projections and a non-zero output gamma, and learn at
  ``nl_lr_mult`` times the learning rate. With the paper's initialisation (meant for
  fine-tuning a pretrained backbone) the attention stayed uniform through our whole CPU budget;
- phi starts as a copy of theta (``tied_init``, where the kernel is theta . phi);
- an auxiliary identity loss (:class:`IdentityReadout`, ``identity_weight``): a linear read-out
  of the features the NL blocks take learns each cell's colour, in training only. The paper's
  blocks sit in an ImageNet-pretrained backbone whose features already tell things apart; ours
  starts from scratch, and the shade labels never ask it to tell the colours apart. In pilots
  of the dot-product model (1000 clips) it was still at chance at step 350 of 400 without it,
  35% at step 400 with it, and 92% after 1000 steps with it (the jump came around step 450).
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
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import synthetic
from .models import build
from .names import TRAIN_BASELINE, TRAIN_DEFAULTS, TRAIN_VARIANTS
from .weights import save_weights

Progress = Callable[[int, int, dict], None]  # (step, total_steps, metrics)

BASELINE = TRAIN_BASELINE
CHECK_CLIPS = 64  # test clips whose dense accuracy the card records for the test suite to reproduce
VARIANTS = TRAIN_VARIANTS  # the order of --pairwise all
TEST_OFFSET = 10_000_000  # test clips start at data_seed + TEST_OFFSET: disjoint from the training clips


@dataclass(frozen=True)
class TrainConfig:
    """One training run. The defaults are those of the shipped demo models."""

    pairwise: str = "embedded_gaussian"  # a pairwise function, or "none" for the baseline without NL blocks
    arch: str = "tiny_i3d_nl2_dense"  # registry name; the baseline uses its nl0 twin
    n_train: int = TRAIN_DEFAULTS["n_train"]  # training clips, generated once (fixed set: reproducible)
    n_test: int = TRAIN_DEFAULTS["n_test"]  # held-out clips from a disjoint seed range
    steps: int = TRAIN_DEFAULTS["steps"]  # optimizer steps (batch_size clips each): learning is limited by steps more than clips
    batch_size: int = TRAIN_DEFAULTS["batch_size"]
    lr: float = 3e-3  # AdamW peak learning rate, cosine decay to 0 after a short warm-up
    weight_decay: float = 1e-4
    warmup: int = 20
    background_weight: float = 0.25  # loss weight of background cells (about 70% of the cells, and easy)
    # initial gamma of the BatchNorm after each NL block's W (the paper: 0, the block starts as the identity).
    # At 0 no gradient reaches theta/phi until gamma has drifted away from 0, and the attention stays
    # uniform for hundreds of steps; a small gamma lets the attention learn from the first step.
    nl_gamma_init: float = 0.5
    # the loss covers the cells of frames supervise_from.. (0: every frame; the colour frames teach the
    # head which colour is which class, the next ones are within the convolutions' reach); accuracy is
    # measured on the labelled frames (synthetic.label_from..) only, which no convolution reaches
    supervise_from: int = 0
    # learning-rate multiplier of the NL blocks' parameters: Adam moves every weight by about lr per step,
    # and the attention sharpens only once theta and phi have grown to O(1); at lr alone that took most
    # of the budget
    nl_lr_mult: float = 5.0
    # weight of an auxiliary per-cell loss on the features each NL block takes (the output of res3.0 and
    # res4.0, in the baseline too): a 1x1x1 linear read-out of them, used in training only and not shipped,
    # learns each cell's identity (background or its object's colour, visible in every frame). It never
    # sees the attention or the label; 0 turns it off
    identity_weight: float = 1.0
    # embedded Gaussian and dot product: phi starts as a copy of theta, so f = theta(x_i) . theta(x_j) starts
    # as a similarity of the projected features (a positive semi-definite kernel), as the Gaussian's x_i . x_j
    # is; independent random theta and phi start as a random bilinear form instead (the others: no effect)
    tied_init: bool = True
    concat_query_offset: float = 2.0  # concatenation only: initial lift of every query term (see init_nonlocal)
    seed: int = TRAIN_DEFAULTS["seed"]  # model init and batch order
    data_seed: int = 2_000_000  # first clip seed of the training set; test uses data_seed + TEST_OFFSET
    time_budget_s: float = TRAIN_DEFAULTS["time_budget_s"]  # stop early (and say so) if the run exceeds this
    synthetic: synthetic.TrackConfig = field(default_factory=synthetic.TrackConfig)

    @property
    def model_arch(self) -> str:
        return self.arch.replace("_nl2", "_nl0") if self.pairwise == BASELINE else self.arch

    @property
    def test_seed(self) -> int:
        return self.data_seed + TEST_OFFSET

    def build_overrides(self) -> dict:
        over = {"num_classes": len(synthetic.TRACK_CLASSES)}
        if self.pairwise != BASELINE:
            over["pairwise"] = self.pairwise
        return over


@dataclass
class DenseAccuracy:
    """Accuracy of the per-cell labels in the labelled frames (see :func:`evaluate`)."""

    objects: float  # on cells whose label is a shade: THE figure (chance 1 / shades)
    cells: float  # on every labelled cell, background included
    object_cells: int
    last: float  # on the object cells of the last time cell only (the clip's last frames)

    def as_dict(self) -> dict:
        return {"object_cells": round(self.objects, 4), "all_cells": round(self.cells, 4),
                "last_frames_object_cells": round(self.last, 4), "n_object_cells": self.object_cells}


@dataclass
class TrainResult:
    model: nn.Module
    config: TrainConfig
    test: DenseAccuracy
    train_acc: DenseAccuracy
    seconds: float
    steps_done: int
    history: list[dict]
    stopped_early: bool
    check: DenseAccuracy  # on the first CHECK_CLIPS test clips: what the test suite re-measures


def init_nonlocal(model: nn.Module, config: TrainConfig) -> None:
    """Re-initialise the NL blocks for training from scratch (the same recipe for every pairwise function).

    The block's own initialisation (Caffe2's: theta/phi/g weights of std 0.01, the output BN's
    gamma 0) suits fine-tuning a pretrained network; trained from scratch on our task its
    attention stays uniform for hundreds of steps: theta . phi is a product of two tiny factors
    (a saddle at 0), and with gamma 0 no gradient reaches either until gamma has drifted. So:
    theta, phi, g (and the concatenation's w_f) get PyTorch's default fan-in scale, std
    1/sqrt(fan_in), and gamma ``config.nl_gamma_init``.

    Embedded Gaussian and dot product (``tied_init``): phi starts equal to theta, so the kernel
    theta(x_i) . phi(x_j) starts as a similarity of projected features, large for alike cells,
    as the Gaussian's x_i . x_j is from the first step. Two independent random projections make
    a random bilinear form, which has to be unlearned first: on the demo task the embedded
    Gaussian reached 56% in the budget without it and 97% by step 450 with it.

    Concatenation: f = ReLU(w_q . theta_i + w_k . phi_j) is 0 for every key of a query whose
    query term is below minus the largest key term, and a zero row passes no gradient: such rows
    stay dead (the previous demo model's res3 block had only zero rows). So theta's bias starts
    along w_q, lifting every query term by ``concat_query_offset``: every row starts alive.
    """
    from .capture import attention_blocks

    with torch.no_grad():
        for block in attention_blocks(model).values():
            for proj in (block.theta, block.phi, block.g):
                if proj.conv is not None:
                    nn.init.normal_(proj.conv.weight, std=proj.conv.weight[0].numel() ** -0.5)
            if config.tied_init and block.pairwise in ("embedded_gaussian", "dot_product"):
                block.phi.conv.weight.copy_(block.theta.conv.weight)
                if block.phi.conv.bias is not None and block.theta.conv.bias is not None:
                    block.phi.conv.bias.copy_(block.theta.conv.bias)
            if getattr(block, "concat_project", None) is not None:
                w = block.concat_project.weight
                nn.init.normal_(w, std=w[0].numel() ** -0.5)
                w_q = w.reshape(-1)[: block.theta.conv.out_channels]
                if block.theta.conv.bias is not None:
                    block.theta.conv.bias.copy_(config.concat_query_offset * w_q / w_q.square().sum())
            if getattr(block, "bn", None) is not None:
                block.bn.weight.fill_(config.nl_gamma_init)


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless shuffled index batches over n items."""
    while True:
        order = rng.permutation(n)
        for i in range(0, n - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


def dense_targets(classes: np.ndarray, config: synthetic.TrackConfig, first_frame: int | None = None) -> torch.Tensor:
    """(N, T', H', W') cell labels on the tiny network's res3 grid (2 frames x 4 x 4 pixels per cell),
    -100 (ignored) in the cells before ``first_frame`` (default: the labelled frames, ``label_from``)."""
    t, h = config.frames // 2, config.size // 4
    target = synthetic.cell_labels(classes, (t, h, h))
    first = config.label_from if first_frame is None else first_frame
    target[:, : -(-first // 2)] = -100
    return target


@torch.no_grad()
def evaluate(model: nn.Module, clips: np.ndarray, classes: np.ndarray,
             config: synthetic.TrackConfig = synthetic.TrackConfig(), batch_size: int = 32) -> DenseAccuracy:
    """Dense accuracy of ``model`` on uint8 clips (N, T, H, W, 3) with per-pixel classes (N, T, H, W)."""
    model.eval()
    hit = n_obj = hit_all = n_all = hit_last = n_last = 0
    for i in range(0, len(clips), batch_size):
        logits = model.dense_logits(synthetic.to_tensor(clips[i : i + batch_size]))
        target = dense_targets(classes[i : i + batch_size], config)
        pred = logits.argmax(1)
        lab = target >= 0
        obj = target > 0
        hit += int((pred == target)[obj].sum())
        n_obj += int(obj.sum())
        hit_all += int((pred == target)[lab].sum())
        n_all += int(lab.sum())
        hit_last += int((pred == target)[:, -1][obj[:, -1]].sum())
        n_last += int(obj[:, -1].sum())
    return DenseAccuracy(hit / max(n_obj, 1), hit_all / max(n_all, 1), n_obj, hit_last / max(n_last, 1))


def make_data(config: TrainConfig) -> tuple[np.ndarray, ...]:
    """(train clips, train classes, test clips, test classes, train identities), deterministic given
    the config; the identities (for the read-out of ``identity_weight``) are None when it is 0."""
    xtr, ctr, _, *itr = synthetic.make_track_dataset(config.n_train, config.data_seed, config.synthetic,
                                                     identities=bool(config.identity_weight))
    xte, cte, _ = synthetic.make_track_dataset(config.n_test, config.test_seed, config.synthetic)
    return xtr, ctr, xte, cte, (itr[0] if itr else None)


def class_weights(num_classes: int, background_weight: float) -> torch.Tensor:
    """Cross-entropy class weights: 1 for every class but the background (class 0)."""
    weight = torch.ones(num_classes)
    weight[0] = background_weight
    return weight


FEATURE_BLOCKS = ("res3.0", "res4.0")  # whose output the NL blocks take (stage s's block 0, before its .nl)


class IdentityReadout(nn.Module):
    """The auxiliary identity loss of :attr:`TrainConfig.identity_weight`: a 1x1x1 convolution on
    the output of each of FEATURE_BLOCKS (before the NL block where there is one), read by forward
    hooks during training; :meth:`loss` is the cross-entropy against the cells' identity classes."""

    def __init__(self, model: nn.Module, background_weight: float):
        super().__init__()
        self.features: dict[str, torch.Tensor] = {}
        self.heads = nn.ModuleDict()
        self.handles = []
        for name in FEATURE_BLOCKS:
            block = model.get_submodule(name)
            channels = block.conv_c.out_channels
            self.heads[name.replace(".", "_")] = nn.Conv3d(channels, len(synthetic.IDENTITY_CLASSES), 1)
            if block.nl is not None:
                hook = block.nl.register_forward_pre_hook(partial(self._keep_input, name))
            else:
                hook = block.register_forward_hook(partial(self._keep_output, name))
            self.handles.append(hook)
        self.weight = class_weights(len(synthetic.IDENTITY_CLASSES), background_weight)

    def _keep_input(self, name, module, args):
        self.features[name] = args[0]

    def _keep_output(self, name, module, args, out):
        self.features[name] = out

    def loss(self, identities: np.ndarray) -> torch.Tensor:
        total = 0.0
        for name, x in self.features.items():
            target = synthetic.cell_labels(identities, tuple(x.shape[2:]), len(synthetic.IDENTITY_CLASSES))
            logits = self.heads[name.replace(".", "_")](x)
            total = total + F.cross_entropy(logits, target, weight=self.weight)
        self.features.clear()
        return total / len(FEATURE_BLOCKS)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def train(config: TrainConfig, progress: Progress | None = None, data=None) -> TrainResult:
    """Train one demo model per ``config``; returns the model (eval mode) and its figures.

    The loss is a per-cell cross-entropy on the labelled frames only (background cells weighted
    ``background_weight``); nothing in it looks at the attention.
    """
    if config.pairwise not in (*VARIANTS, BASELINE):
        raise ValueError(f"pairwise must be one of {VARIANTS + (BASELINE,)}, got {config.pairwise!r}")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    xtr, ctr, xte, cte, itr = data if data is not None else make_data(config)
    model = build(config.model_arch, **config.build_overrides()).train()
    init_nonlocal(model, config)
    readout = IdentityReadout(model, config.background_weight) if config.identity_weight else None
    from .capture import attention_blocks

    nl_params = {id(p) for block in attention_blocks(model).values() for p in block.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in nl_params], "mult": 1.0},
              {"params": [p for p in model.parameters() if id(p) in nl_params], "mult": config.nl_lr_mult}]
    if readout is not None:
        groups.append({"params": list(readout.parameters()), "mult": 1.0})
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, weight_decay=config.weight_decay)
    weight = class_weights(len(synthetic.TRACK_CLASSES), config.background_weight)

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
            group["lr"] = lr_at(step) * group["mult"]
        idx = np.sort(next(batches))
        x = synthetic.to_tensor(xtr[idx])
        target = dense_targets(ctr[idx], config.synthetic, config.supervise_from)
        logits = model.dense_logits(x)
        loss = F.cross_entropy(logits, target, weight=weight, ignore_index=-100)
        total = loss if readout is None else loss + config.identity_weight * readout.loss(itr[idx])
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            obj = (target > 0)
            obj[:, : -(-config.synthetic.label_from // 2)] = False  # train accuracy on the labelled frames
            acc = (logits.argmax(1) == target)[obj].float().mean().item() if obj.any() else 0.0
        running.append((loss.item(), acc))
        if (step + 1) % 25 == 0 or step + 1 == config.steps:
            loss_avg, acc_avg = np.mean(running, axis=0)
            running.clear()
            entry = {"step": step + 1, "loss": round(float(loss_avg), 4), "train_acc": round(float(acc_avg), 4),
                     "seconds": round(time.perf_counter() - start, 1)}
            history.append(entry)
            if progress:
                progress(step + 1, config.steps, entry)
    steps_done = step + 1 if not stopped_early else step
    seconds = time.perf_counter() - start
    if readout is not None:
        readout.remove()  # training only: the shipped model is the network alone
    model.eval()
    test_acc = evaluate(model, xte, cte, config.synthetic)
    train_acc = evaluate(model, xtr[:300], ctr[:300], config.synthetic)
    check = evaluate(model, xte[:CHECK_CLIPS], cte[:CHECK_CLIPS], config.synthetic)
    return TrainResult(model, config, test_acc, train_acc, seconds, steps_done, history, stopped_early, check)


def training_note(cfg: TrainConfig) -> str:
    """What the card says of the recipe beyond the task: the loss and its auxiliary term."""
    note = ("loss: per-cell cross-entropy on the shade labels of every frame (background cells weighted "
            f"{cfg.background_weight}); nothing in it looks at the attention")
    if cfg.identity_weight:
        note += (f"; plus {cfg.identity_weight} x an auxiliary per-cell cross-entropy of a linear read-out "
                 f"(training only, not shipped) of the features each NL block takes ({', '.join(FEATURE_BLOCKS)} "
                 "outputs, the same in the baseline) against the cells' identity (background or the object's "
                 "colour, visible in every frame): it teaches the backbone to tell the colours apart, which "
                 "the shade labels alone do not ask for")
    return note


def model_card(result: TrainResult, command: str) -> dict:
    """The JSON model card shipped next to the weights."""
    cfg = result.config
    shades = len(synthetic.TRACK_CLASSES) - 1
    return {
        "name": f"demo.{cfg.pairwise}",
        "task": synthetic.TRACK_TASK_DESCRIPTION,
        "classes": list(synthetic.TRACK_CLASSES),
        "chance_accuracy": round(1 / shades, 4),  # on object cells: a shade at random
        "accuracy_note": "dense accuracy: share of the labelled cells (res3 grid, 2 frames x 4 x 4 pixels; "
                         f"frames {cfg.synthetic.label_from}-{cfg.synthetic.frames - 1}) whose object's starting "
                         "shade is predicted; test_accuracy is on the object cells (background cells are easy "
                         "and reported apart as all_cells)",
        "training_note": training_note(cfg),
        "architecture": cfg.model_arch,
        "build_overrides": cfg.build_overrides(),
        "pairwise": None if cfg.pairwise == BASELINE else cfg.pairwise,
        "test_accuracy": round(result.test.objects, 4),
        "test": result.test.as_dict(),
        "train_first_300": result.train_acc.as_dict(),
        "n_test": cfg.n_test,
        "check": {"clips": CHECK_CLIPS, "first_seed": cfg.test_seed, "accuracy": round(result.check.objects, 4),
                  "object_cells": result.check.object_cells},
        "test_seeds": [cfg.test_seed, cfg.test_seed + cfg.n_test],
        "training_command": command,
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "synthetic"},
        "synthetic_config": asdict(cfg.synthetic),
        "seed": cfg.seed,
        "seconds": round(result.seconds, 1),
        "steps_done": result.steps_done,
        "stopped_early": result.stopped_early,
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__} "
                   f"(no GPU)",
        "history": result.history,
    }


def save_demo(result: TrainResult, out_dir: str | Path, command: str, *, data_seconds: float | None = None
              ) -> tuple[Path, Path]:
    """Write demo_<pairwise>.safetensors and its card demo_<pairwise>.json into out_dir."""
    out_dir = Path(out_dir)
    stem = f"demo_{result.config.pairwise}"
    weights = save_weights(result.model, out_dir / f"{stem}.safetensors", result.config.build_overrides())
    card_path = out_dir / f"{stem}.json"
    card = model_card(result, command)
    if data_seconds is not None:  # generating the clips (once per `nlviz train` run), not in "seconds"
        card["data_seconds"] = round(data_seconds, 1)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return weights, card_path


# --- command line ------------------------------------------------------------------------------


def _bar(step: int, total: int, metrics: dict) -> None:
    width = 30
    done = int(width * step / total)
    print(f"\r  [{'#' * done}{'.' * (width - done)}] {step}/{total} loss {metrics['loss']:.3f} "
          f"acc {metrics['train_acc']:.2f} {metrics['seconds']:.0f}s", end="", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = (*VARIANTS, BASELINE) if "all" in args.pairwise else tuple(args.pairwise)
    data = None
    for pairwise in variants:
        cfg = TrainConfig(pairwise=pairwise, steps=args.steps, n_train=args.n_train, n_test=args.n_test,
                          seed=args.seed, time_budget_s=args.budget, batch_size=args.batch_size)
        if data is None:
            print(f"generating {cfg.n_train} training and {cfg.n_test} test clips...", file=sys.stderr)
            t0 = time.perf_counter()
            data = make_data(cfg)
            data_seconds = time.perf_counter() - t0
        print(f"training demo.{pairwise} ({cfg.model_arch})", file=sys.stderr)
        result = train(cfg, progress=_bar, data=data)
        print(file=sys.stderr)
        command = (f"nlviz train --pairwise {pairwise} --steps {args.steps} --batch-size {args.batch_size} "
                   f"--n-train {args.n_train} --n-test {args.n_test} --seed {args.seed}"
                   + (f" --threads {args.threads}" if args.threads else ""))
        weights, card = save_demo(result, args.out, command, data_seconds=data_seconds)
        note = " (stopped at the time budget)" if result.stopped_early else ""
        print(f"demo.{pairwise}: dense accuracy on object cells {result.test.objects:.3f} (all cells "
              f"{result.test.cells:.3f}) in {result.seconds:.0f}s, {result.steps_done} steps{note} -> {weights}")
    return 0
