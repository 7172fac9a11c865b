"""The Explore page on DeepMind's I3D with the feature-similarity probe, run headless with AppTest.

The weights are a random full-size InceptionI3d written as the converted file into a fresh
cache (what `nlviz download` leaves there), so these tests need no network and pass whatever
the machine's own cache holds; tests/test_inception_i3d.py checks the real weights.
"""

from __future__ import annotations

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from nlviz import zoo
from nlviz.checkpoints import deepmind_i3d
from nlviz.models import PROBE_LABEL, build
from nlviz.ui import models as ui_models

from test_app import APP, TIMEOUT, assert_view, strip

NAME = "i3d_inception.kinetics400_probe"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cache") / "checkpoints" / deepmind_i3d.CONVERTED
    deepmind_i3d.write_converted(build("i3d_inception").state_dict(), path)
    return path


@pytest.fixture
def probe_cache(weights, monkeypatch):
    """A cache holding the converted weights; models cached by earlier tests are dropped before and after."""
    monkeypatch.setenv("NLVIZ_CACHE", str(weights.parent.parent))
    st.cache_resource.clear()
    yield weights
    st.cache_resource.clear()


def url_model(at: AppTest) -> str:
    value = at.query_params["model"]
    return value[0] if isinstance(value, list) else value


def test_opens_on_the_probe_with_real_footage_and_says_what_it_is(probe_cache):
    assert ui_models.default_model() == NAME
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert_view(at)
    assert at.selectbox(key="model").value == NAME
    assert not at.selectbox(key="video").value.startswith("synthetic")  # the bundled real clip
    assert any(PROBE_LABEL in i.value for i in at.info), [i.value for i in at.info]
    assert at.selectbox(key="block").value == "Mixed_4f.nl"
    assert at.toggle(key="hide_own").value  # self-similarity would dominate every map
    assert url_model(at) == NAME


def test_probe_settings_change_the_model_name_and_the_maps(probe_cache):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    before = strip(at)
    at.number_input(key="model_probe_tau").set_value(0.5)
    at.toggle(key="model_probe_centre").set_value(False).run()
    assert_view(at)
    expected = zoo.variant_name(NAME, tau=0.5, centre=False)
    assert url_model(at) == expected == f"{NAME}@centre=0,tau=0.5"
    assert strip(at) != before

    link = AppTest.from_file(str(APP), default_timeout=TIMEOUT)  # the link, in a new session
    for k, v in at.query_params.items():
        link.query_params[k] = v[0] if isinstance(v, list) else v
    link.run()
    assert_view(link)
    assert link.number_input(key="model_probe_tau").value == 0.5
    assert link.toggle(key="model_probe_centre").value is False
    assert strip(link) == strip(at)

    at.multiselect(key="model_probe_stages").set_value([]).run()  # none: a warning, the defaults meanwhile
    assert any("at least one stage" in w.value for w in at.warning)
    assert url_model(at) == expected


def test_demo_model_says_how_to_get_the_real_one(monkeypatch, tmp_path):
    monkeypatch.setenv("NLVIZ_CACHE", str(tmp_path / "empty"))
    assert ui_models.default_model() == ui_models.DEFAULT_MODEL
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert_view(at)
    assert any(f"nlviz download {NAME}" in c.value for c in at.caption)
