"""Synthetic clips: determinism, masks that match the pixels, the label rule, balance, tensors, mp4s."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from nlviz import synthetic as S
from nlviz.spec import ClipSpec

CFG = S.SyntheticConfig()


def test_same_seed_same_clip_other_seed_other_clip():
    a, b, c = S.make_clip(7), S.make_clip(7), S.make_clip(8)
    for field in ("frames", "masks", "tracks", "boxes", "colours", "radii"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert (a.label, a.target, a.object_classes, a.shapes, a.draw_order) == (
        b.label, b.target, b.object_classes, b.shapes, b.draw_order)
    assert not np.array_equal(a.frames, c.frames)
    assert not np.array_equal(a.tracks, c.tracks)


def test_shapes_and_dtypes():
    clip = S.make_clip(3)
    T, n, K = CFG.frames, CFG.size, CFG.num_objects
    assert clip.frames.shape == (T, n, n, 3) and clip.frames.dtype == np.uint8
    assert clip.masks.shape == (T, n, n) and clip.masks.dtype == np.int8
    assert clip.tracks.shape == (T, K, 2) and clip.boxes.shape == (T, K, 4)
    assert sorted(clip.object_classes) == list(range(len(S.CLASSES)))  # one object of each colour
    assert clip.object_classes[clip.target] == clip.label
    assert set(np.unique(clip.masks)) <= set(range(-1, K))
    # every shape lies inside the frame
    assert clip.boxes[..., :2].min() >= 0 and clip.boxes[..., 2:].max() <= n - 1


def test_make_dataset_is_make_clip_per_seed():
    clips, labels, masks = S.make_dataset(5, seed=100)
    assert clips.shape == (5, CFG.frames, CFG.size, CFG.size, 3) and masks.shape == (5, CFG.frames, CFG.size, CFG.size)
    assert labels.dtype == np.int64
    for i in range(5):
        clip = S.make_clip(100 + i)
        np.testing.assert_array_equal(clips[i], clip.frames)
        np.testing.assert_array_equal(masks[i], clip.masks)
        assert labels[i] == clip.label


@pytest.mark.parametrize("seed", range(6))
def test_masks_match_the_drawn_pixels(seed):
    clip = S.make_clip(seed)
    colours = clip.colours
    np.testing.assert_array_equal(colours, S.COLOURS[clip.object_classes])
    for k in range(CFG.num_objects):
        on = clip.masks == k
        assert on.any(), "every object shows somewhere in the clip"
        assert (clip.frames[on] == colours[k]).all()  # a mask pixel carries its object's colour
    background = clip.frames[clip.masks < 0]
    assert background.min() >= S.BG_LO and background.max() <= S.BG_HI
    for colour in colours:  # ... and no background pixel does
        assert not (background == colour).all(axis=-1).any()


def _signed_distance(shape: str, cx: float, cy: float, r: float, n: int) -> np.ndarray:
    """(n, n) distance of each pixel centre to the shape's outline, > 0 inside (geometry written out anew)."""
    if shape == "circle":
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
        return r - np.hypot(xx - cx, yy - cy)
    if shape == "square":
        s = 0.88 * r
        pts = [(-s, -s), (s, -s), (s, s), (-s, s)]
    elif shape == "triangle":
        pts = [(0, -r), (r, r), (-r, r)]
    else:  # cross: two bars of half-width 0.4 r
        w = 0.4 * r
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w),
               (-w, -w)]
    poly = (np.array(pts, np.float32) + np.float32([cx, cy])).reshape(-1, 1, 2)
    return np.array([[cv2.pointPolygonTest(poly, (float(x), float(y)), True) for x in range(n)] for y in range(n)])


@pytest.mark.parametrize("seed", range(3))
def test_masks_follow_the_geometry_of_tracks(seed):
    """Each mask is its object's shape placed at its track, up to a pixel along the outline."""
    clip = S.make_clip(seed)
    top = clip.draw_order[-1]  # never occluded: its mask is its whole shape
    for t in range(0, CFG.frames, 3):
        for k in range(CFG.num_objects):
            cx, cy = (float(v) for v in clip.tracks[t, k])
            shape = S.SHAPES[clip.shapes[k]]
            dist = _signed_distance(shape, cx, cy, float(clip.radii[k]), CFG.size)
            m = clip.masks[t] == k
            assert (dist[m] >= -1.0).all(), f"frame {t} object {k} ({shape}) has pixels outside its shape"
            if k == top:
                assert m[dist >= 1.0].all(), f"frame {t} top object {k} ({shape}) misses pixels of its shape"
            x0, y0, x1, y1 = clip.boxes[t, k]
            ys, xs = np.nonzero(m)
            if len(xs):
                assert xs.min() >= x0 - 1 and xs.max() <= x1 + 1 and ys.min() >= y0 - 1 and ys.max() <= y1 + 1


def test_label_is_the_colour_of_the_object_that_ends_farthest_from_its_start():
    for seed in range(200):
        clip = S.make_clip(seed)
        start, end = clip.tracks[0], clip.tracks[-1]
        dist = [float(np.hypot(*(end[k] - start[k]))) for k in range(len(start))]
        farthest = int(np.argmax(dist))
        assert farthest == clip.target
        assert clip.object_classes[farthest] == clip.label
        # the target moves in a straight line at constant speed ...
        steps = np.diff(clip.tracks[:, farthest], axis=0)
        np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-3)
        # ... while the others move as far per frame on average: only the sum over frames tells them apart
        step_len = np.linalg.norm(np.diff(clip.tracks, axis=0), axis=-1).mean(axis=0)
        others = np.delete(step_len, farthest)
        assert others.max() > 0.5 * step_len[farthest]


def test_per_frame_step_lengths_do_not_give_the_label_away():
    """Over many clips, the target's frame-to-frame step is no longer than a jittering object's."""
    target, others = [], []
    for seed in range(300):
        clip = S.make_clip(seed)
        step_len = np.linalg.norm(np.diff(clip.tracks, axis=0), axis=-1).mean(axis=0)
        target.append(step_len[clip.target])
        others.extend(np.delete(step_len, clip.target))
    assert abs(np.mean(target) - np.mean(others)) < 0.15 * np.mean(target)


def test_classes_are_balanced():
    labels = np.array([S.make_clip(seed).label for seed in range(1000)])
    counts = np.bincount(labels, minlength=len(S.CLASSES))
    assert len(counts) == len(S.CLASSES)
    assert counts.min() >= 200 and counts.max() <= 300, counts  # 250 each expected, sd about 14


def test_orbit_and_fewer_objects_keep_the_rule():
    cfg = S.SyntheticConfig(wander="orbit", wander_radius=0.125, num_objects=3)
    for seed in range(50):
        clip = S.make_clip(seed, cfg)
        assert clip.masks.max() <= 2 and len(clip.object_classes) == 3
        assert int(np.argmax(S.displacements(clip.tracks))) == clip.target
        assert clip.object_classes[clip.target] == clip.label


@pytest.mark.parametrize(
    "bad",
    [dict(frames=1), dict(size=63), dict(num_objects=5), dict(num_objects=1), dict(radius=(0.1, 0.05)),
     dict(travel_speed=(0.01, 0.02)), dict(travel_speed=(0.05, 0.09)), dict(wander="spin"), dict(noise=-1)],
)
def test_bad_configs_are_refused(bad):
    with pytest.raises(ValueError):
        S.SyntheticConfig(**bad)


def test_to_tensor_shapes_and_normalisation():
    clips, _, _ = S.make_dataset(2, seed=5)
    x = S.to_tensor(clips)
    assert x.shape == (2, 3, CFG.frames, CFG.size, CFG.size) and x.dtype == torch.float32
    assert x.is_contiguous()
    one = S.to_tensor(clips[1])
    assert one.shape == (1, 3, CFG.frames, CFG.size, CFG.size)
    torch.testing.assert_close(one[0], x[1])
    # channel c of frame t is clip[t, :, :, c], scaled as (x / 255 - 0.5) / 0.25
    torch.testing.assert_close(x[0, 2, 4], (torch.from_numpy(clips[0, 4, :, :, 2]).float() / 255 - 0.5) / 0.25)
    ends = S.to_tensor(np.stack([np.zeros((1, 1, 3)), np.full((1, 1, 3), 255)]).astype(np.uint8))
    assert ends.min() == -2 and ends.max() == 2
    with pytest.raises(ValueError):
        S.to_tensor(np.zeros((2, 3, 4), np.uint8))


def test_mean_std_reproduce_to_tensor_through_a_clip_spec():
    spec = ClipSpec(num_frames=CFG.frames, stride=1, short_side=CFG.size, crop_size=CFG.size, mean=S.MEAN, std=S.STD)
    frames = S.make_clip(9).frames
    x = torch.from_numpy(frames).float()
    expected = ((x - torch.tensor(spec.mean)) / torch.tensor(spec.std)).permute(3, 0, 1, 2)[None]
    torch.testing.assert_close(S.to_tensor(frames), expected, rtol=0, atol=0)


def test_the_demo_model_spec_uses_these_statistics():
    from nlviz.models import build

    spec = build("tiny_i3d_nl0").spec
    assert spec.mean == S.MEAN and spec.std == S.STD
    assert (spec.num_frames, spec.short_side, spec.crop_size) == (CFG.frames, CFG.size, CFG.size)


def test_write_samples_writes_decodable_small_mp4s_with_ground_truth(tmp_path):
    av = pytest.importorskip("av")
    paths = S.write_samples(tmp_path, seeds=(0, 5))
    assert [p.name for p in paths] == ["synthetic_0.mp4", "synthetic_5.mp4"]
    for path, seed in zip(paths, (0, 5)):
        assert path.stat().st_size <= 200_000
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert len(frames) == CFG.frames
        clip = S.make_clip(seed)
        decoded = np.stack(frames).astype(np.int16)
        assert decoded.shape == clip.frames.shape
        err = np.abs(decoded - clip.frames.astype(np.int16))
        assert err.mean() < 8, "H.264 (4:2:0) keeps the clip within a few grey levels on average"
        # inside each object the decoded colour is still nearest to its own class colour
        for k, cls in enumerate(clip.object_classes):
            core = np.stack([cv2.erode((m == k).astype(np.uint8), np.ones((3, 3), np.uint8)) for m in clip.masks]) > 0
            if core.any():
                d = np.linalg.norm(decoded[core][:, None, :] - S.COLOURS[None].astype(np.int16), axis=-1)
                assert (d.argmin(axis=1) == cls).mean() > 0.95
        gt = json.loads(path.with_suffix(".json").read_text())
        assert gt["seed"] == seed and gt["label"] == clip.label and gt["classes"] == list(S.CLASSES)
        assert gt["label_name"] == S.CLASSES[clip.label]
        np.testing.assert_allclose(np.array(gt["tracks"]), clip.tracks, atol=1e-3)
        config = S.SyntheticConfig(**gt["config"])
        assert config == CFG
        again = S.make_clip(gt["seed"], config)
        np.testing.assert_array_equal(again.masks, clip.masks)


def test_sample_seeds_cover_the_classes_in_order():
    seeds = S.sample_seeds(5)
    assert [S.make_clip(s).label for s in seeds] == [0, 1, 2, 3, 0]


# --- the identity-propagation task (the demo models' task) --------------------------------------

TCFG = S.TrackConfig()


def test_track_clips_are_deterministic_and_well_formed():
    a, b, c = S.make_track_clip(7), S.make_track_clip(7), S.make_track_clip(8)
    for field in ("frames", "masks", "classes", "tracks", "radii"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.frames, c.frames)
    T, n, K = TCFG.frames, TCFG.size, TCFG.num_objects
    assert a.frames.shape == (T, n, n, 3) and a.frames.dtype == np.uint8
    assert a.masks.shape == a.classes.shape == (T, n, n)
    assert set(a.object_classes) <= set(range(1, len(S.TRACK_CLASSES)))
    assert len(set(a.hues)) == K and set(a.hues) <= set(range(len(S.HUES)))


@pytest.mark.parametrize("seed", range(4))
def test_track_masks_match_the_drawn_pixels(seed):
    """Object k's mask pixels are its brightness (its shade in the colour frames, the common
    brightness after) plus its colour's tint, +- noise; classes are its shade; background pixels are
    darker than any object."""
    clip = S.make_track_clip(seed)
    f = clip.frames.astype(np.int16)
    noise = TCFG.noise
    for k, (cls, hue) in enumerate(zip(clip.object_classes, clip.hues)):
        on = clip.masks == k
        assert on[0].sum() > 50, "every object shows its shade in the first frame"
        assert (clip.classes[on] == cls).all()
        for t in range(TCFG.frames):
            level = TCFG.shades[cls - 1] if t < TCFG.colour_frames else TCFG.brightness
            expected = level + TCFG.chroma * S.CHROMA[hue]
            assert (np.abs(f[t][on[t]] - expected) <= noise).all(), (k, t)
    bg = f[clip.masks < 0]
    assert (clip.classes[clip.masks < 0] == 0).all()
    assert bg.max() <= TCFG.background[1] + noise
    assert (f[clip.masks >= 0].mean(axis=-1) > TCFG.background[1] + noise).all()


def test_only_the_colour_frames_depend_on_the_shades():
    """The generator's argument that the task needs the first frames: the same clip with every
    object's shade changed has identical pixels from frame colour_frames on (and identical masks),
    so nothing a network sees there says which shade an object had; the first frames differ."""
    n = len(S.TRACK_CLASSES) - 1
    for seed in range(5):
        clip = S.make_track_clip(seed)
        other = [c % n + 1 for c in clip.object_classes]  # every object another shade
        moved = S.make_track_clip(seed, shades=other)
        c = TCFG.colour_frames
        np.testing.assert_array_equal(moved.frames[c:], clip.frames[c:])
        np.testing.assert_array_equal(moved.masks, clip.masks)
        assert not np.array_equal(moved.frames[:c], clip.frames[:c])
        on = clip.masks >= 0
        assert (moved.classes[on] != clip.classes[on]).all()


def test_palette_and_distinct_shades_options():
    """The task's variants for pilots: colours drawn from a palette, shades without repetition
    (a clip then shows each shade once at most, so pooling the whole clip says nothing about one
    object's shade, the default). With six objects and shades drawn with repetition it draws the
    clips of the task's first version (its sample synthetic_tracks_1 showed these hues and shades)."""
    old = S.make_track_clip(1, S.TrackConfig(num_objects=6, distinct_shades=False))
    assert [S.HUES[h] for h in old.hues] == ["magenta", "blue", "cyan", "red", "yellow", "green"]
    assert old.object_classes == [2, 3, 4, 4, 1, 1]
    cfg = S.TrackConfig(num_objects=3, palette=(0, 2, 4))
    for seed in range(6):
        clip = S.make_track_clip(seed, cfg)
        assert sorted(clip.hues) == [0, 2, 4]
    cfg = S.TrackConfig(num_objects=4, distinct_shades=True)
    for seed in range(6):
        assert sorted(S.make_track_clip(seed, cfg).object_classes) == [1, 2, 3, 4]
    for bad in (dict(num_objects=5, distinct_shades=True), dict(num_objects=4, palette=(0, 1, 2)),
                dict(palette=(0, 0, 1, 2, 3, 4)), dict(palette=(0, 1, 2, 3, 4, 6))):
        with pytest.raises(ValueError):
            S.TrackConfig(**bad)


def test_identity_classes_are_the_colour_on_top():
    clip = S.make_track_clip(5)
    ids = clip.identities
    assert S.IDENTITY_CLASSES[0] == "background" and (ids[clip.masks < 0] == 0).all()
    for k, hue in enumerate(clip.hues):
        np.testing.assert_array_equal(ids == hue + 1, clip.masks == k)
    _, _, masks, identities = S.make_track_dataset(2, 5, identities=True)
    np.testing.assert_array_equal(identities[0], ids)


def test_cell_labels_take_the_majority_class():
    classes = np.zeros((1, 2, 4, 4), dtype=np.int8)
    classes[0, :, :2, :2] = 3  # a whole cell of class 3
    classes[0, 0, 2, 2] = 2  # one pixel of 2 in a cell of 8: background wins
    classes[0, :, 2:, :2] = 4
    classes[0, 1, 2, 0] = 0
    labels = S.cell_labels(classes, (1, 2, 2))
    assert labels.tolist() == [[[[3, 0], [4, 0]]]]


def test_write_track_samples_round_trip(tmp_path):
    pytest.importorskip("av")
    [path] = S.write_track_samples(tmp_path, seeds=[3])
    assert path.name == "synthetic_tracks_3.mp4" and path.stat().st_size < 200_000
    gt = json.loads(path.with_suffix(".json").read_text())
    clip = S.make_track_clip(3, S.TrackConfig(**gt["config"]))
    assert gt["object_classes"] == clip.object_classes and gt["hues"] == [S.HUES[h] for h in clip.hues]
    for t in (0, TCFG.frames - 1):
        for k in range(TCFG.num_objects):
            assert gt["visible_pixels"][t][k] == int((clip.masks[t] == k).sum())
            x, y = gt["centroids"][t][k]
            assert clip.masks[t, int(y), int(x)] == k  # the stored point lies on its object


def test_default_query_lies_on_an_object_whose_shade_was_shown():
    from nlviz import samples

    assert samples.DEMO_SAMPLE in samples.bundled_samples()
    for name in samples.bundled_samples():
        q = samples.default_query(name)
        gt = samples.ground_truth(name)
        if not name.startswith(S.TRACK_SAMPLE_PREFIX):
            assert q is None, name  # real footage and the older clips have no such ground truth
            continue
        frame, x, y = q
        clip = S.make_track_clip(gt["seed"], S.TrackConfig(**gt["config"]))
        assert frame == TCFG.frames - 1 >= TCFG.label_from  # a labelled frame: the shade is no longer visible
        obj = clip.masks[frame, int(y), int(x)]
        assert obj >= 0, "the query is on an object"
        assert (clip.masks[0] == obj).sum() >= 100, "whose shade shows in the first frame"
