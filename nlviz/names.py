"""Names shown by ``nlviz --help`` and checked by the library, in one module that imports nothing.

The command line builds its parsers from these without importing torch, OpenCV or the zoo, so
``nlviz COMMAND --help`` answers at once; the library modules that own each meaning import the
same tuple from here (one definition, no hand-kept copies).
"""

from __future__ import annotations

PAIRWISE: tuple[str, ...] = ("gaussian", "embedded_gaussian", "dot_product", "concatenation")
"""The paper's four pairwise functions f(x_i, x_j) (:mod:`nlviz.nonlocal_block`)."""

DIMS: tuple[str, ...] = ("spacetime", "space", "time")
"""The positions a non-local block's queries attend over."""

SOURCES: tuple[str, ...] = ("mmaction2", "caffe2", "pyslowfast", "demo", "deepmind", "torchvision", "huggingface")
"""Who published a zoo checkpoint, and in which code base (:mod:`nlviz.zoo`)."""

EXPORT_FORMATS: tuple[str, ...] = ("png", "gif", "mp4", "npy", "json")
"""Files one attention view exports to (:mod:`nlviz.export`)."""

DEFAULT_MODEL = "demo.embedded_gaussian"
"""The model shown when none is named: the paper's default instantiation, always bundled."""

TRAIN_VARIANTS: tuple[str, ...] = ("embedded_gaussian", "dot_product", "gaussian", "concatenation")
"""The demo models' pairwise functions, in the order ``nlviz train --pairwise all`` trains them."""

TRAIN_BASELINE = "none"
"""``nlviz train --pairwise none``: the baseline without non-local blocks."""

TRAIN_DEFAULTS: dict[str, float] = {"n_train": 4000, "n_test": 300, "steps": 1200, "batch_size": 8, "seed": 0,
                                    "time_budget_s": 15 * 60}
"""The shipped demo models' training run (:class:`nlviz.train.TrainConfig`), the flags' defaults."""


def closest(name: str, known: list[str], n: int = 3) -> list[str]:
    """Up to ``n`` known names a mistyped ``name`` probably meant: the most similar ones (difflib),
    then those that contain it, for error messages."""
    import difflib

    close = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    return close + [k for k in known if name and name in k and k not in close][: n - len(close)]
