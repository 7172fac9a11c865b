"""The Survey page, run headless with AppTest: a small survey of the bundled samples with progress,
a survey folder written by nlviz.survey, and the messages for a folder without rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from nlviz import zoo
from nlviz.survey import SurveyConfig, run_survey
from nlviz.ui import survey as ui_survey

ROOT = Path(__file__).resolve().parent.parent
APP, PAGE = str(ROOT / "app.py"), "pages/3_Survey.py"
TIMEOUT = 180


def _page() -> AppTest:
    if not ui_survey.demo_models():
        pytest.skip("no bundled demo model")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)  # as a browser opens a page: the entry point, then it
    at.switch_page(PAGE)
    return at


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_the_page_runs_a_small_survey_of_the_bundled_samples_and_plots_it(monkeypatch, tmp_path):
    monkeypatch.setattr(ui_survey.tempfile, "gettempdir", lambda: str(tmp_path))
    at = _page()
    at.run()
    _assert_clean(at)
    at.multiselect(key="survey_models").set_value(["demo.embedded_gaussian", "demo.dot_product"])
    at.number_input(key="survey_queries").set_value(16)
    at.run()
    _assert_clean(at)
    assert any("clips** × **2 models**" in c.value for c in at.caption), [c.value for c in at.caption]
    charts = _charts(at)
    assert len(charts) == 4
    for spec in charts:  # no blank chart: every one has traces with numbers
        data = [t for t in spec["data"] if t.get("y") and any(v is not None for v in t["y"])]
        assert data, spec["layout"].get("title")
    space = charts[0]
    assert {t["name"] for t in space["data"]} == {"demo.embedded_gaussian", "demo.dot_product"}
    assert all(len(t["y"]) == 2 for t in space["data"])  # the demo models' two blocks
    out = ui_survey.bundled_dir(["demo.embedded_gaussian", "demo.dot_product"], 16, 0)
    assert (out / "summary.json").is_file()
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 4  # 2 models x 2 blocks


def test_the_page_opens_a_survey_folder_and_says_when_it_holds_no_rows(tmp_path):
    from nlviz.samples import bundled_samples

    clips = [p for n, p in bundled_samples().items() if n.startswith("synthetic")][:2]
    out = tmp_path / "survey"
    run_survey(clips, SurveyConfig(("demo.gaussian",), queries=8), out)
    at = _page()
    at.run()
    at.radio(key="survey_mode").set_value(ui_survey.FOLDER).run()
    _assert_clean(at)
    assert any("Pick at least one model" in i.value for i in at.info)
    at.text_input(key="survey_folder").input(str(out)).run()
    _assert_clean(at)
    assert any("**2 clips** × **1 models**" in c.value for c in at.caption)
    assert len(_charts(at)) == 4
    at.text_input(key="survey_folder").input(str(tmp_path / "empty")).run()
    assert not at.exception and any("No survey rows" in w.value for w in at.warning)
