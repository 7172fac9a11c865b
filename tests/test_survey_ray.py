"""The Ray engine for real (a local Ray with 2 CPUs, no mocks): the same numbers as the local engine,
the same Parquet schema, resumption after an interrupted run, and a corrupt clip among the others."""

from __future__ import annotations

import math
import shutil

import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="the ray engine needs the [ray] extra (make test installs it)")

from nlviz.survey import SCHEMA, SurveyConfig, load_results, read_rows, read_summary, run_survey  # noqa: E402
from nlviz.survey.store import done_units, part_files  # noqa: E402

MODELS = ("demo.embedded_gaussian", "demo.dot_product")
NUMBERS = ["dist_space_px", "dist_time_frames", "entropy_norm", "own_slice_share", "query_dependence"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Six short clips (the bundled synthetic samples, 16 frames at 64 px) and a corrupt one."""
    from nlviz.samples import bundled_samples

    d = tmp_path_factory.mktemp("clips")
    names = [n for n in bundled_samples() if n.startswith("synthetic")][:6]
    assert len(names) == 6
    for n in names:
        shutil.copy(bundled_samples()[n], d / f"{n}.mp4")
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(range(256)) * 8)
    return d


def _sorted(out):
    df = load_results(out, errors=True)
    return df.sort_values(["clip", "model", "block"], na_position="first").reset_index(drop=True)


def test_ray_engine_matches_the_local_engine_and_resumes_after_an_interruption(local_ray, clips, tmp_path):
    cfg = SurveyConfig(MODELS, queries=32, seed=7)
    local = tmp_path / "local"
    run_survey([clips], cfg, local)

    class Interrupted(Exception):
        pass

    def stop_after_two(p):
        if p.done == 2:
            raise Interrupted

    out = tmp_path / "ray"
    with pytest.raises(Interrupted):
        run_survey([clips], cfg, out, engine="ray", progress=stop_after_two, flush_every=1)
    first = {c for c, _ in done_units(out)}
    assert len(first) >= 2 and read_summary(out)["status"] == "running"

    seen = []
    result = run_survey([clips], cfg, out, engine="ray", progress=seen.append)
    assert result.skipped == len(first) and result.surveyed == 7 - len(first)
    assert [p.done for p in seen] == list(range(1, result.surveyed + 1))
    summary = read_summary(out)
    assert summary["status"] == "complete" and summary["engine"] == "ray" and "ray" in summary["versions"]

    for p in part_files(out):
        assert pq.read_schema(p).equals(SCHEMA, check_metadata=False)
    a, b = _sorted(local), _sorted(out)
    assert len(a) == len(b) == 6 * 2 * 2 + 2  # six clips x two models x two blocks, an error row per model
    assert a[["clip", "model", "block", "head", "depth", "seed", "queries"]].equals(
        b[["clip", "model", "block", "head", "depth", "seed", "queries"]])
    worst = 0.0
    for col in NUMBERS:
        for x, y in zip(a[col], b[col]):
            assert (x is None or math.isnan(x)) == (y is None or math.isnan(y))
            if x == x and x is not None:
                worst = max(worst, abs(x - y))
    for x, y in zip(a["offset_mass"], b["offset_mass"]):
        if x is not None:
            worst = max(worst, max(abs(u - v) for u, v in zip(x, y)))
    assert worst <= 1e-6, worst

    errors = [r for r in read_rows(out).to_pylist() if r["error"]]
    assert sorted(r["model"] for r in errors) == sorted(MODELS)
    assert all(r["clip_name"] == "corrupt.mp4" and r["block"] is None for r in errors)
    ok = b[b["error"].isna()]
    assert set(ok["clip_name"]) == {p.name for p in clips.iterdir() if p.name != "corrupt.mp4"}
