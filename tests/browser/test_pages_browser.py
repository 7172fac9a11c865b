"""The Compare page, the Explore page's exports and shared links, in a real browser.

As in test_explore_browser.py, a picture is compared through its <img> src, a media url
derived from a hash of the picture's bytes.
"""

from __future__ import annotations

import json
import time
import urllib.parse

import numpy as np
import pytest

from test_explore_browser import (SERVER_VIEW, CLICK_LIMIT_S, check, click_frame, first_view, frame_img, settle, shot, strip, wait_view,
                                  xy)

pytestmark = pytest.mark.browser

# the Compare grid's pictures: single images without a caption, in the main area
CELLS_JS = r"""() => Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stImageContainer"]'))
    .filter(c => !c.querySelector('[data-testid="stImageCaption"]'))
    .map(c => c.querySelector('img')?.src || '')"""

CELLS_CHANGED_JS = CELLS_JS.join(["(before) => { const s = (", """)();
    return s.length == before.length && s.every((v, i) => v != before[i])
        && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0); }"""])


def cells(page) -> list[str]:
    return page.evaluate(CELLS_JS)


def wait_cells(page, timeout: float = 90.0) -> list[str]:
    page.get_by_text("How alike are they?").wait_for(timeout=timeout * 1000)
    frame_img(page).wait_for(timeout=timeout * 1000)
    settle(page, timeout)
    return cells(page)


def test_compare_one_click_updates_every_column(app_server, new_page, artifacts):
    page = new_page()
    t0 = time.monotonic()
    page.goto(f"{app_server.url}/Compare{SERVER_VIEW}")
    before = wait_cells(page)
    print(f"\n[browser] Compare page to its first view: {time.monotonic() - t0:.1f} s")
    check(page, "compare_default", artifacts)
    columns = len(urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["models"][0].split(","))
    assert columns >= 2 and len(before) >= columns and len(before) % columns == 0, (columns, len(before))
    shot(page, artifacts, "30_compare_default")

    img = frame_img(page)
    box = img.bounding_box()
    t0 = time.monotonic()
    img.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.3})
    page.wait_for_function(CELLS_CHANGED_JS, arg=before, timeout=CLICK_LIMIT_S * 3 * 1000)
    print(f"[browser] Compare: click -> {len(before)} redrawn cells in {time.monotonic() - t0:.2f} s")
    settle(page)
    check(page, "compare_click", artifacts)
    after = cells(page)
    assert len(after) == len(before) and all(a != b for a, b in zip(after, before)), "a column did not follow the click"
    shot(page, artifacts, "31_compare_click")
    params = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    assert len(params["models"][0].split(",")) == columns


def _download(page, label: str):
    """Press a deferred download button once the page is idle; one more press if nothing comes.

    Streamlit gives a deferred download a new id on every script run and forgets the old one at
    the end of the run, so a press that lands while a run replaces the buttons is lost (the
    server logs "Deferred file ... not found" and the browser gets nothing); a user presses
    again, and so does this test, once, after the page has settled again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in (1, 2):
        settle(page)
        try:
            with page.expect_download(timeout=30_000 * attempt) as d:
                page.get_by_role("button", name=label).click()
            return d.value
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def test_exports_download_what_they_claim(app_server, new_page, artifacts, tmp_path):
    from PIL import Image

    from nlviz.export import ViewSpec, reproduce

    page = new_page()
    first_view(page, app_server)
    frame_img(page).click(position={"x": 200, "y": 180})
    settle(page)
    page.locator("[data-testid='stExpander'] summary", has_text="Export this view").click()
    x, y = xy(page)
    got = {}
    for label in ("PNG montage", "GIF", "MP4", "Row (.npy)", "View spec (JSON)"):
        download = _download(page, label)
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        got[label] = path
    check(page, "exports", artifacts)
    frames = len(strip(page))

    spec = ViewSpec.from_json(got["View spec (JSON)"].read_text())
    assert (spec.x, spec.y) == pytest.approx((x, y), abs=0.051)
    view, _ = reproduce(spec)
    assert np.array_equal(np.load(got["Row (.npy)"]), view.row), "the .npy is not the row of the view spec"
    assert Image.open(got["PNG montage"]).size[0] > 0
    gif = Image.open(got["GIF"])
    assert gif.n_frames == frames
    import av

    with av.open(str(got["MP4"])) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and sum(1 for _ in c.decode(s)) == frames
    assert all(p.name.startswith(spec.block) for p in got.values()), [p.name for p in got.values()]


def test_a_shared_link_opens_the_same_view(app_server, new_page, artifacts):
    page = new_page()
    first_view(page, app_server)
    click_frame(page, 0.3, 0.6, artifacts, "link_click")  # inside the crop of any sample (square or 16:9)
    state = settle(page)
    link = page.url
    assert "x=" in link and "frame=" in link, link

    other = new_page()  # another browser context: a new session that only has the link
    other.goto(link)
    wait_view(other)
    check(other, "shared_link", artifacts)
    assert xy(other) == pytest.approx(xy(page), abs=0.051)
    assert strip(other) == state["strip"], "the link opened another view"
    # the reverse view's toggle travels in the link too
    other.get_by_text("Reverse: who attends here").click()
    other.get_by_role("heading", name="Who attends here", exact=False).wait_for()
    settle(other)
    check(other, "reverse", artifacts)
    assert "reverse=1" in other.url
    shot(other, artifacts, "32_reverse")
