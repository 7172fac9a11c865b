"""The family's zoo entries: public checkpoints on the Hugging Face hub (file format ``hf_hub``).

An entry's ``url`` is the hub repository's page and its ``filename`` the snapshot directory in
nlviz's cache (``owner--name``); :func:`nlviz.models.hf_video.fetch_snapshot` fetches it. The
entry's clip spec is what the checkpoint's own files say (frames, size, the processor's resize,
crop and normalization; checked again when the snapshot is loaded) plus the paper's temporal
stride, which neither file stores. Accuracy is the publisher's where its card or paper gives it.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

from .archs import ARCHS
from .hub import HUB, snapshot_dirname

VIDEOMAE = ("Zhan Tong, Yibing Song, Jue Wang, Limin Wang. VideoMAE: Masked Autoencoders are Data-Efficient "
            "Learners for Self-Supervised Video Pre-Training. NeurIPS 2022. arXiv:2203.12602")
TIMESFORMER = ("Gedas Bertasius, Heng Wang, Lorenzo Torresani. Is Space-Time Attention All You Need for Video "
               "Understanding? ICML 2021. arXiv:2102.05095")
VIVIT = ("Anurag Arnab, Mostafa Dehghani, Georg Heigold, Chen Sun, Mario Lucic, Cordelia Schmid. ViViT: A Video "
         "Vision Transformer. ICCV 2021. arXiv:2103.15691")
VJEPA2 = ("Mido Assran et al. V-JEPA 2: Self-Supervised Video Models Enable Understanding, Prediction and "
          "Planning. 2025. arXiv:2506.09985")
KINETICS = "; trained on Kinetics-400, whose videos keep their own terms"

# (arch, tag, repo, classes, top1, top5, eval set, licence, citation, notes)
_TABLE = (
    ("videomae_base", "kinetics400_mcg_nju", "MCG-NJU/videomae-base-finetuned-kinetics", 400, 80.9, 94.7,
     "Kinetics-400 test set, as the model card reports it",
     "CC-BY-NC 4.0 (the model card's licence): non-commercial use only" + KINETICS, VIDEOMAE,
     "ViT-B/16 pre-trained with VideoMAE on Kinetics-400, then fine-tuned on it; 16 frames every 4 "
     "(the paper's Kinetics sampling), 2x16x16 tubelets, no class token (mean-pooled head)."),
    ("timesformer_base", "kinetics400_facebook", "facebook/timesformer-base-finetuned-k400", 400, 78.0, 93.7,
     "Kinetics-400 val, 3 spatial crops x 1 clip (the paper's Table 2)",
     "CC-BY-NC 4.0 (the model card's licence): non-commercial use only" + KINETICS, TIMESFORMER,
     "TimeSformer-B with divided space-time attention: each layer attends over time at the same patch, "
     "then within the frame (two maps per layer); 8 frames every 32 (the paper's 8x32 sampling). Weights "
     "are a pytorch_model.bin (read with weights_only)."),
    ("vivit_base", "kinetics400_google", "google/vivit-b-16x2-kinetics400", 400, None, None, "",
     "MIT (the model card's licence)" + KINETICS, VIVIT,
     "ViViT-B with joint space-time attention (the paper's model 1), 32 frames every 2, 2x16x16 tubelets "
     "and a class token; its processor maps pixels to x / 127.5 - 1, then normalizes with mean and std 0.5."),
    ("vjepa2_large", "ssv2_facebook", "facebook/vjepa2-vitl-fpc16-256-ssv2", 174, None, None, "",
     "Apache-2.0 (the V-JEPA 2 model cards' licence); trained on Something-Something v2, whose videos keep "
     "their own terms", VJEPA2,
     "V-JEPA 2 ViT-L/16 (self-supervised) with an attentive-probe classifier trained on Something-Something "
     "v2; 16 frames of 256x256 (the stride of 4 is nlviz's choice: the checkpoint does not store one); 3-D "
     "rotary position embeddings in every layer. The pooler's self-attention layers are captured too."),
)


def entries() -> list:
    """The family's ZooEntry rows ([] with a warning when this nlviz's zoo lacks the hub format)."""
    try:
        from ...entry import FILE_FORMATS, ZooEntry
    except ImportError:  # the zoo before its row type had a module of its own
        from ...zoo import FILE_FORMATS, ZooEntry
    from ...names import SOURCES

    if "hf_hub" not in FILE_FORMATS or "huggingface" not in SOURCES:
        warnings.warn("this nlviz's zoo has no 'hf_hub' file format or 'huggingface' source: the Hugging Face "
                      "entries are left out", stacklevel=2)
        return []
    rows = []
    for arch, tag, repo, classes, top1, top5, eval_set, licence, citation, notes in _TABLE:
        spec = replace(ARCHS[arch].spec, extra={"hf_repo": repo})
        rows.append(ZooEntry(
            name=f"{arch}.{tag}", source="huggingface", arch=arch,
            pairwise="embedded_gaussian",  # softmax of scaled q.k: the paper's embedded Gaussian, per head
            dims="spacetime", spec=spec,
            url=f"{HUB}/{repo}", filename=snapshot_dirname(repo), file_format="hf_hub", num_classes=classes,
            top1=top1, top5=top5, eval_set=eval_set, license=licence, citation=citation, page=f"{HUB}/{repo}",
            notes=notes,
        ))
    return rows


__all__ = ["entries"]
