"""nlviz.survey: the statistics on hand-built rows, and the local engine end to end (schema,
resumption, error rows, summary), on the bundled synthetic clips with the demo models."""

from __future__ import annotations

import json
import math
import shutil

import pyarrow.parquet as pq
import pytest
import torch

from nlviz.survey import SCHEMA, SurveyConfig, SurveyError, load_results, read_rows, read_summary, run_survey
from nlviz.survey.inputs import clip_seed, list_clips
from nlviz.survey.stats import block_geometry, block_statistics, row_statistics, sampled_cells
from nlviz.survey.store import done_units, part_files

MODELS = ("demo.embedded_gaussian", "demo.dot_product")


def _line_keys(n: int, spacing: float = 1.0):
    """n keys on a line along x at t = 0, one time slice."""
    k = torch.zeros(n, 3, dtype=torch.float64)
    k[:, 2] = torch.arange(n) * spacing
    return k, torch.zeros(n, dtype=torch.long)


@pytest.mark.parametrize("d", [0.0, 1.0, 3.0, 7.5])
def test_a_one_hot_row_at_distance_d_gives_distance_d_and_entropy_0(d):
    keys = torch.tensor([[0.0, 0.0, 0.0], [2.0, 3.0, 4.0], [5.0, 0.6 * d, 0.8 * d]], dtype=torch.float64)
    k_slice = torch.tensor([0, 1, 2])
    rows = torch.tensor([[0.0, 0.0, 1.0]])
    q = torch.zeros(1, 3, dtype=torch.float64)
    s = row_statistics(rows, q, keys, torch.tensor([0]), k_slice, 3)
    assert s["dist_space_px"] == pytest.approx(d, abs=1e-12)
    assert s["dist_time_frames"] == pytest.approx(5.0)
    assert s["entropy_norm"] == pytest.approx(0.0, abs=1e-12)
    assert s["offset_min"] == -2 and s["offset_mass"] == pytest.approx([0, 0, 0, 0, 1])
    assert s["own_slice_share"] == 0.0


def test_a_uniform_row_has_normalised_entropy_1_and_the_mean_distance():
    keys, k_slice = _line_keys(8)
    rows = torch.full((3, 8), 1 / 8)
    q = torch.zeros(3, 3, dtype=torch.float64)
    s = row_statistics(rows, q, keys, torch.zeros(3, dtype=torch.long), k_slice, 1)
    assert s["entropy_norm"] == pytest.approx(1.0, abs=1e-12)
    assert s["dist_space_px"] == pytest.approx(3.5)
    assert s["own_slice_share"] == pytest.approx(1.0) and s["offset_mass"] == pytest.approx([1.0])
    assert s["query_dependence"] == pytest.approx(0.0, abs=1e-12)  # every query sees the same map


def test_signed_rows_use_absolute_mass_and_empty_rows_are_left_out():
    keys, k_slice = _line_keys(4, spacing=2.0)
    rows = torch.tensor([[0.0, -3.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])  # |w| shares 3/4 at x=2, 1/4 at x=6
    s = row_statistics(rows, torch.zeros(2, 3, dtype=torch.float64), keys, torch.zeros(2, dtype=torch.long),
                       k_slice, 1)
    assert s["queries"] == 1 and s["empty_rows"] == 1
    assert s["dist_space_px"] == pytest.approx(0.75 * 2 + 0.25 * 6)


def test_mass_by_temporal_offset_is_relative_to_the_query_slice():
    # 3 slices, one key each at t = 0, 2, 4; query 0 in slice 1 puts 0.2 / 0.5 / 0.3 on them, query 1
    # in slice 2 puts everything on slice 0 (offset -2)
    keys = torch.tensor([[0.0, 0, 0], [2.0, 0, 0], [4.0, 0, 0]], dtype=torch.float64)
    rows = torch.tensor([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0]])
    q = torch.tensor([[2.0, 0, 0], [4.0, 0, 0]], dtype=torch.float64)
    s = row_statistics(rows, q, keys, torch.tensor([1, 2]), torch.tensor([0, 1, 2]), 3)
    # offsets -2..2: query 0 -> (-1: .2, 0: .5, 1: .3); query 1 -> (-2: 1)
    assert s["offset_mass"] == pytest.approx([0.5, 0.1, 0.25, 0.15, 0.0])
    assert s["own_slice_share"] == pytest.approx(0.25)
    assert s["dist_time_frames"] == pytest.approx(((0.2 * 2 + 0.3 * 2) + 4.0) / 2)
    assert sum(s["offset_mass"]) == pytest.approx(1.0)


def test_disjoint_one_hot_rows_have_query_dependence_1():
    keys, k_slice = _line_keys(4)
    rows = torch.eye(4)
    s = row_statistics(rows, torch.zeros(4, 3, dtype=torch.float64), keys, torch.zeros(4, dtype=torch.long),
                       k_slice, 1)
    assert s["query_dependence"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def demo_capture():
    from nlviz.capture import record
    from nlviz.samples import sample_path
    from nlviz.video import load_clip
    from nlviz.zoo import load

    model = load("demo.embedded_gaussian")
    clip = load_clip(sample_path("synthetic_tracks_1"), spec=model.spec, on_short="reduce_stride")
    return record(model, clip.input)[1]


def test_block_statistics_agree_with_nlviz_stats_on_the_same_queries(demo_capture):
    from nlviz.stats import block_stats

    for b in demo_capture:
        cells = sampled_cells(b, 40, seed=5)
        assert len(set(cells)) == 40
        ours = block_statistics(b, cells)[0]
        theirs = block_stats(b, queries=40, seed=5)
        assert ours["head"] is None and ours["heads"] == 1 and ours["queries"] == 40
        assert ours["dist_space_px"] == pytest.approx(theirs.mean_distance_px, rel=1e-9)
        assert ours["dist_time_frames"] == pytest.approx(theirs.mean_distance_frames, rel=1e-9)
        assert ours["entropy_norm"] == pytest.approx(theirs.entropy / theirs.max_entropy, rel=1e-9)
        assert ours["own_slice_share"] == pytest.approx(theirs.own_slice_share, rel=1e-9)
        assert ours["query_dependence"] == pytest.approx(theirs.query_dependence_cos, rel=1e-9)
        assert sum(ours["offset_mass"]) == pytest.approx(1.0)


def test_blocks_with_heads_get_one_row_per_head(demo_capture):
    from dataclasses import fields

    from nlviz.capture import BlockCapture

    class TwoHeads(BlockCapture):
        num_heads = 2

        def rows(self, cells, batch=0, head=None):
            rows = super().rows(cells, batch)
            return rows if head == 0 else torch.full_like(rows, 1.0 / rows[0].numel())

    b = demo_capture[demo_capture.blocks[0]]
    two = TwoHeads(**{f.name: getattr(b, f.name) for f in fields(BlockCapture) if f.init})
    cells = sampled_cells(two, 16, seed=0)
    s0, s1 = block_statistics(two, cells, block_geometry(two))
    assert (s0["head"], s1["head"], s0["heads"]) == (0, 1, 2)
    assert s0["entropy_norm"] == pytest.approx(block_statistics(b, cells)[0]["entropy_norm"])
    assert s1["entropy_norm"] == pytest.approx(1.0)


def test_clip_seeds_depend_on_the_run_seed_and_the_file_name_only():
    assert clip_seed(0, "a.mp4") == clip_seed(0, "a.mp4") != clip_seed(1, "a.mp4")
    assert clip_seed(0, "a.mp4") != clip_seed(0, "b.mp4")


@pytest.fixture()
def clips(tmp_path):
    """Four bundled synthetic clips copied into a folder, plus a list file naming them and a corrupt one."""
    from nlviz.samples import bundled_samples

    d = tmp_path / "clips"
    d.mkdir()
    names = [n for n in bundled_samples() if n.startswith("synthetic")][:4]
    for n in names:
        shutil.copy(bundled_samples()[n], d / f"{n}.mp4")
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    (tmp_path / "list.txt").write_text("# the survey's clips\n" + "\n".join(f"clips/{n}.mp4" for n in names)
                                       + "\nclips/broken.mp4\n")
    return d


def test_list_files_and_directories_name_the_same_clips(clips):
    from_dir = list_clips([clips])
    from_list = list_clips([clips.parent / "list.txt"])
    assert sorted(c.clip for c in from_dir) == sorted(c.clip for c in from_list)
    assert len(from_dir) == 5 and len(list_clips([clips], limit=2)) == 2
    (clips.parent / "empty").mkdir()
    with pytest.raises(ValueError, match="no video files"):
        list_clips([clips.parent / "empty"])


def test_local_survey_writes_the_schema_error_rows_and_a_summary(clips, tmp_path):
    out = tmp_path / "out"
    seen = []
    result = run_survey([clips], SurveyConfig(MODELS, queries=24, seed=3), out, progress=seen.append)
    assert (result.surveyed, result.errors, result.skipped) == (5, 1, 0)
    assert [p.done for p in seen] == [1, 2, 3, 4, 5] and seen[-1].left == 0 and "5/5 clips" in seen[-1].line()
    for p in part_files(out):
        assert pq.read_schema(p).equals(SCHEMA, check_metadata=False)
    table = read_rows(out)
    assert table.num_rows == 4 * 2 * 2 + 2  # 4 clips x 2 models x 2 blocks, and one error row per model
    errors = [r for r in table.to_pylist() if r["error"]]
    assert {r["model"] for r in errors} == set(MODELS) and all(r["clip_name"] == "broken.mp4" for r in errors)
    assert all(r["block"] is None and r["dist_space_px"] is None for r in errors)
    df = load_results(out)
    assert len(df) == 16 and not df["probe"].any() and set(df["kind"]) == {"nonlocal"}
    assert ((df["entropy_norm"] > 0) & (df["entropy_norm"] <= 1)).all()
    assert df["offset_mass"].map(sum).sub(1).abs().max() < 1e-9
    assert (df["own_slice_share"] == df.apply(lambda r: r["offset_mass"][-int(r["offset_min"])], axis=1)).all()
    summary = read_summary(out)
    assert summary["status"] == "complete" and summary["config"]["seed"] == 3 and summary["errors"] == 1
    assert [m["name"] for m in summary["models"]] == list(MODELS) and "torch" in summary["versions"]
    assert {(b["model"], b["block"]) for b in summary["blocks"]} == set(zip(df["model"], df["block"]))
    assert all(b["clips"] == 4 for b in summary["blocks"])
    json.dumps(summary)


def test_a_killed_run_keeps_what_it_wrote_and_the_next_run_does_only_the_rest(clips, tmp_path):
    out, cfg = tmp_path / "out", SurveyConfig(MODELS, queries=16)

    class Killed(Exception):
        pass

    def kill_after_two(p):
        if p.done == 2:
            raise Killed

    with pytest.raises(Killed):
        run_survey([clips], cfg, out, progress=kill_after_two, flush_every=1)
    assert len({c for c, _ in done_units(out)}) == 2
    assert not list((out / "rows").glob(".*.tmp"))
    result = run_survey([clips], cfg, out)
    assert (result.surveyed, result.skipped) == (3, 2)
    again = run_survey([clips], cfg, out)
    assert (again.surveyed, again.skipped) == (0, 5)
    whole = tmp_path / "whole"
    run_survey([clips], cfg, whole)
    a = load_results(out).sort_values(["clip", "model", "block"]).reset_index(drop=True)
    b = load_results(whole).sort_values(["clip", "model", "block"]).reset_index(drop=True)
    cols = ["clip", "model", "block", "dist_space_px", "dist_time_frames", "entropy_norm", "query_dependence"]
    assert a[cols].equals(b[cols])
    # a model added later runs only for itself; other settings in the same folder are refused
    more = run_survey([clips], SurveyConfig((*MODELS, "demo.gaussian"), queries=16), out)
    assert more.surveyed == 5 and set(load_results(out)["model"]) == {*MODELS, "demo.gaussian"}
    with pytest.raises(SurveyError, match="other settings"):
        run_survey([clips], SurveyConfig(MODELS, queries=32), out)


def test_the_command_line_runs_a_survey_and_says_what_went_wrong(clips, tmp_path, capsys):
    from nlviz import cli

    out = tmp_path / "cli"
    assert cli.main(["survey", str(clips), "--models", "demo.gaussian", "--queries", "8", "--out", str(out),
                     "--quiet", "--limit", "2"]) == 0
    assert "2 clip(s) surveyed" in capsys.readouterr().out
    assert cli.main(["survey", str(clips), "--models", "demo.gaussian", "--out", str(out)]) == 2
    assert "other settings (queries: 8 there, 64 asked)" in capsys.readouterr().err
    assert cli.main(["survey", str(clips), "--models", "demo.nope", "--out", str(tmp_path / "o1")]) == 2
    assert "cannot load model 'demo.nope'" in capsys.readouterr().err
    assert cli.main(["survey", str(tmp_path / "missing_dir_or_file.txt"), "--models", "demo.gaussian",
                     "--out", str(tmp_path / "o2"), "--engine", "local", "--quiet"]) == 0  # an error row, not a crash
    assert read_rows(tmp_path / "o2").to_pylist()[0]["error"]


def test_device_choice(monkeypatch):
    from nlviz.device import DeviceError, choose, on_device

    monkeypatch.setenv("NLVIZ_DEVICE", "cpu")
    assert choose() == torch.device("cpu") and choose("auto").type in ("cpu", "cuda")
    monkeypatch.setenv("NLVIZ_DEVICE", "tpu")
    with pytest.raises(DeviceError, match="NLVIZ_DEVICE"):
        choose()
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            choose("cuda")
    m = torch.nn.Linear(2, 2)
    assert on_device(m, "cpu") is m


def test_probe_blocks_are_labelled_as_probes(tmp_path):
    from nlviz.models import build
    from nlviz.survey.models import load
    from nlviz.survey.work import model_rows
    from nlviz.weights import save_weights

    path = save_weights(build("i3d_inception", base_channels=8, num_classes=5, stages=("Mixed_3c", "Mixed_4f")),
                        tmp_path / "probe.safetensors")
    sm = load(str(path))
    torch.manual_seed(0)
    rows = model_rows(sm, torch.randn(1, 3, 8, 64, 64), "clip.mp4", "clip.mp4", SurveyConfig((str(path),), queries=8))
    assert [r["block"] for r in rows] == ["Mixed_3c.nl", "Mixed_4f.nl"]
    assert all(r["probe"] and r["kind"] == "probe" for r in rows)
    assert [r["stage"] for r in rows] == ["Mixed_3c", "Mixed_4f"]


def test_a_multi_head_model_gets_a_row_per_head():
    small_mvit = pytest.importorskip("test_torchvision_video").small_mvit
    from nlviz.spec import ClipSpec
    from nlviz.survey.models import SurveyModel
    from nlviz.survey.work import model_rows

    sm = SurveyModel("tiny_mvit", small_mvit(True).eval(), ClipSpec(num_frames=8, stride=1, short_side=32, crop_size=32))
    torch.manual_seed(0)
    rows = model_rows(sm, torch.randn(1, 3, 8, 32, 32), "c.mp4", "c.mp4", SurveyConfig(("tiny_mvit",), queries=8))
    by_block: dict[str, list] = {}
    for r in rows:
        by_block.setdefault(r["block"], []).append(r)
    for block, rs in by_block.items():
        heads = rs[0]["heads"]
        assert [r["head"] for r in rs] == (list(range(heads)) if heads > 1 else [None]), block
        assert all(sum(r["offset_mass"]) == pytest.approx(1.0) and 0 < r["entropy_norm"] <= 1 for r in rs)
    assert any(rs[0]["heads"] > 1 for rs in by_block.values())
