"""`nlviz attend` and `nlviz compare`, run in process on a bundled synthetic sample with the demo models."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from nlviz import cli, zoo
from nlviz.compare import GAP, LABEL_WIDTH, tile_columns
from nlviz.explore import analyze, query_view
from nlviz.export import ViewSpec, reproduce
from nlviz.samples import bundled_samples

SAMPLE = next(n for n in bundled_samples() if n.startswith("synthetic_"))
VIDEO = f"sample:{SAMPLE}"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_attend_writes_five_files_that_hold_what_they_claim(tmp_path, capsys):
    code, out, _ = run(capsys, "attend", VIDEO, "--model", "demo.gaussian", "--block", "res3.0.nl",
                       "--frame", "8", "--xy", "32.5", "20.5", "--out", str(tmp_path))
    assert code == 0
    paths = [Path(line) for line in out.split()]
    assert sorted(p.suffix for p in paths) == [".gif", ".json", ".mp4", ".npy", ".png"]
    assert all(p.parent == tmp_path and p.stem == "res3.0.nl_f8_x32.5_y20.5" for p in paths)
    files = {p.suffix[1:]: p for p in paths}

    analysis = analyze(zoo.load("demo.gaussian"), bundled_samples()[SAMPLE])
    view = query_view(analysis.capture, analysis.clip, "res3.0.nl", 8, 32.5, 20.5, thumbs=analysis.thumbs)
    t, h, w = view.overlays.shape[:3]
    assert np.array_equal(np.load(files["npy"]), view.row)
    spec = ViewSpec.from_json(files["json"].read_text())
    assert (spec.model, spec.video, spec.block, spec.frame, spec.x, spec.y) == (
        "demo.gaussian", VIDEO, "res3.0.nl", 8, 32.5, 20.5)
    assert np.array_equal(reproduce(spec)[0].row, view.row)
    png = cv2.imread(str(files["png"]))
    assert png.shape[1] == 8 * w + 7 * 2 and png.shape[0] > 2 * h
    with Image.open(files["gif"]) as gif:
        assert gif.n_frames == t
    with av.open(str(files["mp4"])) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == t


def test_attend_defaults_write_every_block_at_the_middle_frame_and_crop_centre(tmp_path, capsys):
    code, out, err = run(capsys, "attend", VIDEO, "--out", str(tmp_path), "--formats", "npy,json")
    assert code == 0 and "demo.embedded_gaussian" in err
    names = sorted(Path(line).name for line in out.split())
    assert names == [f"res{s}.0.nl_f8_x32_y32.{ext}" for s in (3, 4) for ext in ("json", "npy")]


def test_compare_writes_a_png_with_a_column_per_model_and_a_metrics_json(tmp_path, capsys):
    models = ["demo.gaussian", "demo.dot_product"]
    code, out, _ = run(capsys, "compare", VIDEO, "--models", *models, "--frame", "8", "--xy", "32.5", "20.5",
                       "--out", str(tmp_path), "--per-model-scale")
    assert code == 0
    png, report = (Path(line) for line in out.split())
    data = json.loads(report.read_text())
    assert data["models"] == models and data["shared_scale"] is False and data["video"] == VIDEO
    assert [r["label"] for r in data["rows"]] == ["res3.0.nl", "res4.0.nl"]
    for row in data["rows"]:
        assert set(row["models"]) == set(models)
        (pair,) = row["pairs"]
        assert 0 < pair["jsd"] <= 1 and -1 <= pair["correlation"] <= 1 and pair["shared_frames"] == 16
        assert 0 <= row["models"]["demo.gaussian"]["own_frame_mass"] <= 1
    cols = tile_columns(16)
    cell = max(160, cols * 96 + (cols - 1) * 2)
    img = cv2.imread(str(png))
    assert img.shape[1] == LABEL_WIDTH + len(models) * (cell + GAP) + GAP


def test_compare_defaults_to_the_demo_models_with_attention(tmp_path, capsys):
    code, out, _ = run(capsys, "compare", VIDEO, "--out", str(tmp_path))
    assert code == 0
    data = json.loads(Path(out.split()[1]).read_text())
    assert sorted(data["models"]) == ["demo.concatenation", "demo.dot_product", "demo.embedded_gaussian",
                                      "demo.gaussian"]
    assert data["shared_scale"] is True and all(r["scale"] for r in data["rows"])


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["attend", "no/such/video.mp4"], "sample:" + SAMPLE),
        (["attend", "sample:no_such_sample"], SAMPLE),
        (["attend", VIDEO, "--model", "demo.gausian"], "demo.gaussian"),
        (["attend", VIDEO, "--frame", "16"], "0..15"),
        (["attend", "sample:bigbuckbunny", "--xy", "20", "20"], "crop"),
        (["attend", VIDEO, "--block", "res5.0.nl"], "res3.0.nl, res4.0.nl"),
        (["attend", VIDEO, "--formats", "png,bmp"], "png,gif,mp4,npy,json"),
        (["attend", VIDEO, "--model", "demo.none"], "no non-local"),
        (["compare", "no/such/video.mp4"], "sample:" + SAMPLE),
        (["compare", VIDEO, "--models", "demo.gaussian"], "at least two"),
        (["compare", VIDEO, "--models", "demo.gaussian", "demo.nope"], "demo.gaussian"),
        (["compare", VIDEO, "--frame", "-1"], "0..15"),
        (["compare", "sample:bigbuckbunny", "--models", "demo.gaussian", "demo.dot_product", "--xy", "5", "5"],
         "crop"),
    ],
)
def test_bad_input_exits_2_with_a_helpful_message(tmp_path, capsys, argv, hint):
    code, out, err = run(capsys, *argv, "--out", str(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith(f"nlviz {argv[0]}: error: ") and hint in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["attend", "compare"])
def test_help_exits_0_with_examples(capsys, command):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"nlviz {command} sample:" in text and VIDEO in text
