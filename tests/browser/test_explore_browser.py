"""The Explore page in a real browser: load, click the frame, upload a video, four sessions at once.

What is compared is what a person sees. Each overlay of the 'every frame' strip is an <img>
whose src is a media url derived from a hash of the picture's bytes, so a changed src is a
changed picture and equal srcs are equal pictures.

Timings (cold start to the first attention view, click to redrawn overlays) are printed
(`pytest -s` shows them) and bounded only generously: CI boxes are slow and shared.

The README's picture and GIF show the hover view: test_hover_browser.py writes them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from nlviz import samples

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
STRIP_TITLE = "Where it attends:"
UPLOAD = "Upload a video..."
FRAME_IFRAME = "iframe[title*='streamlit_image_coordinates']"
SERVER_VIEW = "?view=server"  # these tests read the server-drawn strip; the hover view: test_hover_browser.py
COLD_LIMIT_S = 60  # launch -> first attention view
CLICK_LIMIT_S = 10  # click -> redrawn overlays

# (src of each overlay in the strip), found by their captions 'frame k (src s)'
STRIP_JS = r"""() => Array.from(document.querySelectorAll('[data-testid="stImageContainer"]'))
    .filter(c => /^frame \d+/.test((c.querySelector('[data-testid="stImageCaption"]')?.innerText || '').trim()))
    .map(c => c.querySelector('img')?.src || '')"""

# everything needed to decide that the page is done: no script run, every image decoded
STATE_JS = STRIP_JS.join(["() => { const strip = (", """)();
    return {
        running: !!document.querySelector('[data-testid="stStatusWidgetRunningIcon"]'),
        imagesDone: Array.from(document.images).every(i => i.complete && i.naturalWidth > 0),
        strip: strip,
        x: document.querySelector('input[aria-label="x (pixels)"]')?.value ?? null,
        y: document.querySelector('input[aria-label="y (pixels)"]')?.value ?? null,
    }; }"""])

# true once a strip is shown that differs from `before` and every image has been decoded
CHANGED_JS = STRIP_JS.join(["(before) => { const s = (", """)();
    return s.length > 0 && (s.length != before.length || s.some((v, i) => v != before[i]))
        && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0); }"""])


# ----------------------------------------------------------------------------- helpers


def strip(page) -> list[str]:
    return page.evaluate(STRIP_JS)


def xy(page) -> tuple[float, float]:
    return (float(page.get_by_label("x (pixels)").input_value()),
            float(page.get_by_label("y (pixels)").input_value()))


def metric(page, label: str) -> str:
    box = page.locator("[data-testid='stMetric']").filter(has_text=label)
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def check(page, step: str, artifacts: Path, *, allow_error: bool = False) -> None:
    """Fail (with a screenshot) on a Streamlit exception box, a traceback, or an unexpected error box."""
    problems = []
    for box in page.locator("[data-testid='stException']").all():
        problems.append("exception: " + box.inner_text()[:2000])
    for box in page.locator("[data-testid='stAlert']").all():
        text = box.inner_text()
        is_error = box.locator("[data-testid='stAlertContentError']").count() > 0
        if "Traceback" in text or "Something went wrong" in text or (is_error and not allow_error):
            problems.append("alert: " + text[:2000])
    if problems:
        page.screenshot(path=str(artifacts / f"FAILED_{step}.png"))
        pytest.fail(f"at step {step!r}:\n" + "\n".join(problems))


def settle(page, timeout: float = 60.0, quiet: float = 0.6) -> dict:
    """Wait until no script runs, every image is decoded and the strip and x/y stay put for `quiet` s."""
    deadline = time.monotonic() + timeout
    last, since = None, None
    while True:
        state = page.evaluate(STATE_JS)
        ok = not state["running"] and state["imagesDone"]
        key = (tuple(state["strip"]), state["x"], state["y"])
        now = time.monotonic()
        if ok and key == last:
            if now - since >= quiet:
                return state
        else:
            last, since = (key if ok else None), now
        if now > deadline:
            raise AssertionError(f"page did not settle in {timeout} s: {state}")
        page.wait_for_timeout(150)


def wait_view(page, timeout: float = 60.0) -> None:
    """Wait for the strip's subheader, then for the page to settle with the strip shown."""
    page.get_by_role("heading", name=re.compile(f"^{STRIP_TITLE}")).wait_for(timeout=timeout * 1000)
    page.frame_locator(FRAME_IFRAME).locator("img").wait_for(timeout=timeout * 1000)
    state = settle(page, timeout)
    assert state["strip"], "the strip of overlays is missing"


def frame_img(page):
    return page.frame_locator(FRAME_IFRAME).locator("img")


def click_frame(page, fx: float, fy: float, artifacts: Path, step: str) -> float:
    """Click the frame at (fx, fy) of its displayed size; wait for new overlays; return the latency (s)."""
    img = frame_img(page)
    box = img.bounding_box()
    assert box and box["width"] > 50, f"the clickable frame is not shown: {box}"
    before_strip, before_xy = strip(page), xy(page)
    t0 = time.monotonic()
    img.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
    page.wait_for_function(CHANGED_JS, arg=before_strip, timeout=CLICK_LIMIT_S * 3 * 1000)
    latency = time.monotonic() - t0
    settle(page)
    check(page, step, artifacts)
    after = xy(page)
    assert after != before_xy, f"x/y did not follow the click: {before_xy} -> {after}"
    # the click lands where it was made: x/y are image pixels, proportional to the displayed position
    w, h = frame_size(page)
    assert after[0] == pytest.approx(fx * w, abs=max(1.0, 0.02 * w)), (after, w, h)
    assert after[1] == pytest.approx(fy * h, abs=max(1.0, 0.02 * h)), (after, w, h)
    return latency


def query_frame(page) -> tuple[int, int]:
    """(the Query frame slider's value, the frame the strip marks '◀ query'): the widget and the view."""
    slider = page.locator("[data-testid='stSlider']").filter(
        has=page.locator("[data-testid='stWidgetLabel']", has_text="Query frame"))
    shown = int(slider.locator("[data-testid='stSliderThumbValue']").inner_text())
    marked = page.locator("[data-testid='stImageCaption']", has_text="query").inner_text()
    m = re.match(r"\s*frame (\d+)", marked)
    assert m, marked
    return shown, int(m.group(1))


def frame_size(page) -> tuple[int, int]:
    """(width, height) of the displayed frame in image pixels, from the caption under it."""
    text = page.get_by_text("Click the frame to choose the query pixel").inner_text()
    m = re.search(r"(\d+)x(\d+) px", text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def select(page, label: str, option: str) -> None:
    box = page.locator("[data-testid='stSelectbox']").filter(
        has=page.locator("[data-testid='stWidgetLabel']", has_text=label))
    box.click()
    page.get_by_role("option", name=option, exact=True).click()


def set_number(page, label: str, value: float) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(f"{value:.1f}")
    field.press("Enter")


def upload(page, name: str, data: bytes | Path) -> None:
    """Pick 'Upload a video...' (if not already) and give the video file input `data`.

    The sidebar has a second uploader (for checkpoints, inside 'Local checkpoint'): the video's is
    found by its label.
    """
    inp = page.locator("[data-testid='stFileUploader']").filter(
        has=page.locator("[data-testid='stWidgetLabel']", has_text="Video file")).locator(
        "[data-testid='stFileUploaderDropzoneInput']")
    if inp.count() == 0:
        select(page, "Video", UPLOAD)
        inp.wait_for(state="attached")
    if isinstance(data, Path):
        inp.set_input_files(str(data))
    else:
        inp.set_input_files(files=[{"name": name, "mimeType": "video/mp4", "buffer": data}])


def shot(page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def make_upload(tmp_path: Path, seed: int = 5) -> Path:
    """A small synthetic clip written as a real H.264 MP4, as a user would upload it."""
    from nlviz.synthetic import make_clip
    from nlviz.video import write_mp4

    return write_mp4(make_clip(seed).frames, tmp_path / f"my_clip_{seed}.mp4")


def first_view(page, app_server) -> float:
    """Open the page; return the seconds to its first settled attention view (and note a cold start)."""
    t0 = time.monotonic()
    page.goto(app_server.url + "/" + SERVER_VIEW)
    wait_view(page)
    now = time.monotonic()
    if app_server.first_view_s is None:
        app_server.first_view_s = now - app_server.launched
    return now - t0


# ----------------------------------------------------------------------------- tests


def test_click_and_upload(app_server, new_page, artifacts, tmp_path):
    page = new_page()
    open_s = first_view(page, app_server)
    check(page, "default", artifacts)
    shot(page, artifacts, "01_default")
    cold = app_server.first_view_s
    print(f"\n[browser] cold start to first attention view: {cold:.1f} s "
          f"(server healthy after {app_server.healthy_after_s:.1f} s, page open to view {open_s:.1f} s)")

    first = strip(page)
    assert len(first) >= 2
    latencies = [click_frame(page, 0.3, 0.3, artifacts, "click_1")]
    after_one = strip(page)
    assert after_one != first
    shot(page, artifacts, "02_click_1")

    latencies.append(click_frame(page, 0.7, 0.7, artifacts, "click_2"))
    after_two = strip(page)
    assert after_two != after_one
    shot(page, artifacts, "03_click_2")

    # below the strip: the numbers, the bar charts (not blank), and the two expanders, opened
    for chart in page.locator("[data-testid='stPlotlyChart']").all():
        assert chart.locator("g.point path").count() > 0, "a bar chart is drawn without bars"
    for title in ("Top-k arrows", "All blocks"):
        page.locator("[data-testid='stExpander'] summary", has_text=title).click()
    page.locator("[data-testid='stExpander']", has_text="All blocks").scroll_into_view_if_needed()
    settle(page)
    check(page, "expanders", artifacts)
    shot(page, artifacts, "04_expanders")

    # a corrupt upload: a clear error, no traceback, no strip
    upload(page, "broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x13garbage" * 500)
    page.locator("[data-testid='stAlertContentError']").first.wait_for()
    settle(page)
    check(page, "corrupt_upload", artifacts, allow_error=True)
    assert "video" in page.locator("[data-testid='stAlertContentError']").first.inner_text().lower()
    assert not strip(page)
    shot(page, artifacts, "05_corrupt_upload")

    # a real upload replaces it: the view comes back, on the uploaded clip, and answers clicks
    clip = make_upload(tmp_path)
    upload(page, clip.name, clip)
    wait_view(page)
    check(page, "upload", artifacts)
    assert page.get_by_text(clip.name).count() > 0, "the caption does not name the uploaded clip"
    shot(page, artifacts, "06_upload")
    latencies.append(click_frame(page, 0.6, 0.4, artifacts, "click_upload"))
    shot(page, artifacts, "07_click_upload")

    print("[browser] click -> redrawn overlays: " + ", ".join(f"{s:.2f} s" for s in latencies))
    assert cold < COLD_LIMIT_S, f"cold start {cold:.1f} s"
    assert max(latencies) < CLICK_LIMIT_S, latencies


def test_four_sessions_at_once(app_server, new_page, artifacts, tmp_path):
    """Four sessions share the server's cached model; each sees the results of its own inputs."""
    real = [n for n in samples.bundled_samples() if not n.startswith("synthetic")]
    if not real:
        pytest.skip("needs a bundled real-footage sample in assets/samples/")
    clip = make_upload(tmp_path, seed=7)
    pages = [new_page() for _ in range(4)]
    t0 = time.monotonic()
    for page in pages:  # all four script runs start before any is waited for
        page.goto(app_server.url + "/" + SERVER_VIEW, wait_until="commit")
    for page in pages:
        wait_view(page)
    print(f"\n[browser] 4 sessions opened in {time.monotonic() - t0:.1f} s")
    a, b, c, d = pages
    default_video = a.locator("[data-testid='stSelectbox']").filter(
        has=a.locator("[data-testid='stWidgetLabel']", has_text="Video")).inner_text().splitlines()[-1].strip()
    x0, y0 = xy(a)
    off = 0.6 * min(x0, y0)  # both inside what the model sees: the crop is a square around (x0, y0)
    targets = {0: (round(x0 - off, 1), round(y0 - off, 1)), 1: (round(x0 + off, 1), round(y0 + off, 1))}

    # fire everything, then wait: A and B move their queries, C switches to real footage on the
    # full frame (another forward pass, another cache key), D uploads a clip (a third one)
    t0 = time.monotonic()
    c.locator("[data-testid='stSidebar'] summary", has_text="Sampling").click()
    c.get_by_text("Full frame (fully convolutional)").click()
    select(c, "Video", real[0])
    upload(d, clip.name, clip)
    for page, (x, y) in zip((a, b), targets.values()):
        set_number(page, "x (pixels)", x)
    for page, (x, y) in zip((a, b), targets.values()):
        set_number(page, "y (pixels)", y)
    for k, page in enumerate(pages):
        page.get_by_text(real[0] if k == 2 else clip.name if k == 3 else default_video).first.wait_for()
        wait_view(page)
        check(page, f"session_{k}", artifacts)
    xd, yd = xy(d)
    targets[3] = (round(xd * 0.7, 1), round(yd * 1.3, 1))
    set_number(d, "x (pixels)", targets[3][0])
    set_number(d, "y (pixels)", targets[3][1])
    for k, page in enumerate(pages):
        settle(page)
        check(page, f"session_{k}_settled", artifacts)
        shot(page, artifacts, f"10_session_{k}")
    print(f"[browser] 4 concurrent updates settled in {time.monotonic() - t0:.1f} s")

    for k, (x, y) in targets.items():
        assert xy(pages[k]) == pytest.approx((x, y), abs=0.051), f"session {k} shows another query"
    strips = [strip(p) for p in pages]
    assert all(strips)
    for i in range(4):
        for j in range(i + 1, 4):
            assert strips[i] != strips[j], f"sessions {i} and {j} show the same overlays for different inputs"
    assert c.get_by_text(real[0]).count() > 0 and d.get_by_text(clip.name).count() > 0

    # what A saw while the others ran is what a lone session computes for the same inputs
    a_metric = metric(a, "Largest weight")
    before = strip(b)
    set_number(b, "x (pixels)", targets[0][0])
    set_number(b, "y (pixels)", targets[0][1])
    b.wait_for_function(CHANGED_JS, arg=before)
    settle(b)
    check(b, "session_1_as_0", artifacts)
    assert xy(b) == pytest.approx(targets[0], abs=0.051)
    assert strip(b) == strips[0], "the same video and query gave different overlays in two sessions"
    assert metric(b, "Largest weight") == a_metric
    assert strip(a) == strips[0], "session A changed when session B did"


def test_query_widgets_survive_an_upload(app_server, new_page, artifacts, tmp_path):
    """After an upload the widgets show the query the view uses, and a plain rerun changes nothing."""
    page = new_page()
    first_view(page, app_server)
    clip = make_upload(tmp_path, seed=9)
    upload(page, clip.name, clip)
    wait_view(page)
    check(page, "upload_widgets", artifacts)
    shown, marked = query_frame(page)
    before_xy, before = xy(page), strip(page)
    page.evaluate("() => document.activeElement?.blur()")  # keys to the page, not to an input
    page.keyboard.press("r")  # Streamlit's rerun shortcut: the page sends its widgets' values as they are
    page.wait_for_timeout(500)
    settle(page)
    check(page, "upload_rerun", artifacts)
    shot(page, artifacts, "20_upload_rerun")
    assert (xy(page), strip(page)) == (before_xy, before), "a plain rerun moved the query"
    assert shown == marked, f"the Query frame slider shows {shown}, the view is for frame {marked}"
