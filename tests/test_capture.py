"""Hook-based capture: rows equal the matrix the block used, coordinates, hook hygiene, threads."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from nlviz import BlockCapture, CaptureError, NonLocalBlock, OutOfGridError, capture_attention, record
from nlviz.models import build
from nlviz.nonlocal_block import PAIRWISE, allowed_keys


def random_nl_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every non-local block random non-zero weights so that each one matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, NonLocalBlock):
                for p in m.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)  # model inits are random: fix them so every run checks the same numbers


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture(scope="module")
def clip():
    return torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dims", ["spacetime", "space", "time"])
@pytest.mark.parametrize("pairwise", PAIRWISE)
def test_rows_equal_matrix_and_the_forward(pairwise, dims, clip):
    model = random_nl_weights(build("tiny_i3d_nl2", pairwise=pairwise, dims=dims)).double()
    x = clip.double()
    inputs, outputs = {}, {}
    blocks = {n: m for n, m in model.named_modules() if isinstance(m, NonLocalBlock)}

    def spy(name):
        def hook(_m, args, out):
            inputs[name], outputs[name] = args[0], out

        return hook

    spies = [m.register_forward_hook(spy(n)) for n, m in blocks.items()]
    try:
        with torch.no_grad(), capture_attention(model) as cap:
            model(x)
    finally:
        for s in spies:
            s.remove()
    assert cap.blocks == ["res3.0.nl", "res4.0.nl"]
    for name, block in blocks.items():
        b = cap[name]
        for n in range(2):
            a = b.matrix(batch=n)
            assert a.shape == (b.query_shape[0] * b.query_shape[1] * b.query_shape[2],
                               b.key_shape[0] * b.key_shape[1] * b.key_shape[2])
            # every row on demand equals the materialized matrix
            cells = [(t, h, w) for t in range(b.query_shape[0]) for h in range(b.query_shape[1]) for w in range(b.query_shape[2])]
            rows = b.rows(cells, batch=n).reshape(len(cells), -1)
            torch.testing.assert_close(rows, a, rtol=1e-10, atol=1e-12)
            if pairwise in ("gaussian", "embedded_gaussian"):
                torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[0], dtype=a.dtype))
            # the matrix is the one the block used: recompute its output from it
            with torch.no_grad():
                xin = inputs[name][n : n + 1]
                g = block.g(xin).reshape(block.inter_channels, -1)  # (C', N_k)
                y = (a @ g.T).T.reshape(1, block.inter_channels, *b.query_shape)
                z = block.bn(block.out(y)) + xin
            torch.testing.assert_close(z, outputs[name][n : n + 1], rtol=1e-9, atol=1e-9)
    assert hooks_left(model) == 0


def test_signed_variants_keep_true_values(clip):
    model = random_nl_weights(build("tiny_i3d_nl2", pairwise="dot_product"))
    _, cap = record(model, clip)
    b = cap["res3.0.nl"]
    row = b.row((2, 3, 4))
    assert b.signed
    # f / N, unscaled and unnormalized: theta_i . phi_j divided by the number of keys
    manual = torch.einsum("c,cthw->thw", b.theta[0, :, 2, 3, 4], b.phi[0]) / b.phi[0, 0].numel()
    torch.testing.assert_close(row, manual)
    assert abs(row.sum().item() - 1.0) > 1e-3


def test_space_and_time_rows_are_zero_outside_their_keys(clip):
    model = random_nl_weights(build("tiny_i3d_nl2", pairwise="embedded_gaussian", dims="space"))
    _, cap = record(model, clip)
    row = cap["res3.0.nl"].row((3, 5, 7))
    assert row[3].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert row[torch.arange(row.shape[0]) != 3].abs().sum() == 0
    model = random_nl_weights(build("tiny_i3d_nl2", pairwise="embedded_gaussian", dims="time"))
    _, cap = record(model, clip)
    row = cap["res3.0.nl"].row((3, 5, 7))  # query pixel (5, 7) lies in key cell (2, 3) of the 1x2x2 pool
    assert row[:, 2, 3].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert row.sum().item() == pytest.approx(row[:, 2, 3].sum().item(), abs=1e-7)


def _shapes_only(name: str, t: int, s: int, **over):
    model = build(name, base_channels=4, num_classes=10, **over)
    with torch.no_grad(), capture_attention(model) as cap:
        model(torch.zeros(1, 3, t, s, s))
    return cap


def test_query_at_i3d_hand_derived():
    # I3D-R50 at 8x224x224 (official graph): conv1 /2 -> 112, pool1 (no pad) -> 55, pool2 halves
    # time -> 4, res3 /2 -> 28x28, res4 -> 14x14. So res3 cells are 8 px and 2 frames wide.
    cap = _shapes_only("i3d_nl5_r50", 8, 224)
    r3, r4 = cap["res3.1.nl"], cap["res4.5.nl"]
    assert (r3.query_shape, r3.key_shape) == ((4, 28, 28), (4, 14, 14))
    assert (r4.query_shape, r4.key_shape) == ((4, 14, 14), (4, 7, 7))
    assert r3.query_at(5, 100, 223) == (2, 12, 27)
    assert r3.query_at(0, 0, 0) == (0, 0, 0)
    assert r3.query_at(7.99, 7.99, 8.0) == (3, 0, 1)
    assert r4.query_at(5, 100, 223) == (2, 6, 13)
    # key (1, 3, 13) of res3 pools query rows 6-7 and columns 26-27: pixels [48, 64) x [208, 224), frames [2, 4)
    assert r3.key_box((1, 3, 13)) == (2.0, 4.0, 48.0, 64.0, 208.0, 224.0)
    assert r3.query_box((2, 12, 27)) == (4.0, 6.0, 96.0, 104.0, 216.0, 224.0)


def test_query_at_c2d_hand_derived():
    # C2D-R50 at 32x224x224: conv1 1x7x7 keeps time, pool2 halves it -> 16 steps in res3/res4.
    cap = _shapes_only("c2d_nl5_r50", 32, 224)
    r3 = cap["res3.3.nl"]
    assert r3.query_shape == (16, 28, 28)
    assert r3.query_at(31, 223, 0) == (15, 27, 0)
    assert r3.query_at(2, 16, 31) == (1, 2, 3)
    assert r3.key_box((15, 0, 0)) == (30.0, 32.0, 0.0, 16.0, 0.0, 16.0)


def test_query_at_outside_raises():
    cap = _shapes_only("i3d_nl5_r50", 8, 224)
    with pytest.raises(OutOfGridError, match="outside the model input"):
        cap["res3.1.nl"].query_at(0, 224, 10)
    with pytest.raises(OutOfGridError):
        cap["res3.1.nl"].query_at(-1, 10, 10)
    with pytest.raises(OutOfGridError, match="query grid"):
        cap["res3.1.nl"].row((4, 0, 0))


def test_hooks_removed_after_exit_and_after_error(clip):
    model = build("tiny_i3d_nl2")
    with capture_attention(model):
        assert hooks_left(model) > 0
        model(clip)
    assert hooks_left(model) == 0
    with pytest.raises(RuntimeError):
        with capture_attention(model) as cap:
            # 8x8 frames: res3's block runs (its hooks fire), then res4's 1x1 grid cannot be pooled
            model(torch.zeros(1, 3, 16, 8, 8))
    assert cap.blocks == ["res3.0.nl"]
    assert hooks_left(model) == 0


def test_capture_errors():
    with pytest.raises(CaptureError, match="no non-local"):
        with capture_attention(build("tiny_i3d_nl0")):
            pass
    with pytest.raises(CaptureError, match="unknown block"):
        with capture_attention(build("tiny_i3d_nl2"), blocks=["res9.0.nl"]):
            pass
    with capture_attention(build("tiny_i3d_nl2")) as cap:
        pass
    with pytest.raises(CaptureError, match="nothing was captured"):
        cap["res3.0.nl"]


def test_capture_a_subset_of_blocks(clip):
    model = build("tiny_i3d_nl2")
    _, cap = record(model, clip, blocks=["res4.0.nl"])
    assert cap.blocks == ["res4.0.nl"]


def test_eight_threads_share_one_model():
    model = random_nl_weights(build("tiny_i3d_nl2", pairwise="embedded_gaussian"))
    clips = [torch.randn(1, 3, 16, 64, 64, generator=torch.Generator().manual_seed(100 + i)) for i in range(8)]
    expected = []
    for c in clips:  # sequential ground truth
        logits, cap = record(model, c)
        expected.append((logits, {b.name: b.row((1, 2, 3)) for b in cap}))
    results: list = [None] * 8
    errors: list = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):  # several rounds so that forwards overlap
                logits, cap = record(model, clips[i])
            results[i] = (logits, {b.name: b.row((1, 2, 3)) for b in cap})
        except Exception as e:  # surfaced below with the thread index
            errors.append((i, e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(8):
        torch.testing.assert_close(results[i][0], expected[i][0])
        for name, row in expected[i][1].items():
            torch.testing.assert_close(results[i][1][name], row)
    # the clips differ, so the rows do: no thread saw another's capture
    assert not torch.allclose(results[0][1]["res3.0.nl"], results[1][1]["res3.0.nl"])
    assert hooks_left(model) == 0


def test_gaussian_theta_is_a_copy_of_the_input(clip):
    model = random_nl_weights(build("tiny_i3d_nl2", pairwise="gaussian"))
    _, cap = record(model, clip)
    b = cap["res3.0.nl"]
    assert b.theta.shape[1] == 64  # raw input channels: res3 outputs 4 x (2 x 8)
    torch.testing.assert_close(b.row((0, 0, 0)).sum(), torch.tensor(1.0))


def test_key_at_hand_derived():
    # I3D-R50 res3 at 8x224x224: query cells are 8 px and 2 frames; keys pool 2x2 query cells (16 px)
    cap = _shapes_only("i3d_nl5_r50", 8, 224)
    r3 = cap["res3.1.nl"]
    assert r3.key_at(2.5, 50.0, 210.0) == (1, 3, 13)  # inside key (1, 3, 13)'s box [2, 4) x [48, 64) x [208, 224)
    assert r3.key_at(0, 0, 0) == (0, 0, 0)
    assert r3.key_at(7.99, 223.9, 15.99) == (3, 13, 0)
    # every key's box holds the positions that map to it, and every position maps into a box holding it
    for t, y, x in [(0.5, 17.0, 33.0), (3.2, 100.0, 223.0), (6.0, 47.99, 48.0)]:
        t0, t1, y0, y1, x0, x1 = r3.key_box(r3.key_at(t, y, x))
        assert t0 <= t < t1 and y0 <= y < y1 and x0 <= x < x1
    with pytest.raises(OutOfGridError, match="outside the model input"):
        r3.key_at(8, 10, 10)


def test_key_at_odd_grid_maps_the_dropped_row_to_the_last_key():
    # 5x5 queries pooled to 2x2 keys: query row 4 is dropped by the floor-mode pool; the block's
    # "time" mask (key_index) relates it to key row 1, and key_at agrees
    b = BlockCapture("b", "embedded_gaussian", "spacetime", 1.0, 1, torch.zeros(1, 1, 1, 5, 5),
                     torch.zeros(1, 1, 1, 2, 2), None, (1, 20, 20))
    assert b.key_at(0, 17.0, 3.0) == (0, 1, 0)
    assert b.key_at(0, 7.9, 8.0) == (0, 0, 1)  # 4 px query cells: row 1 -> key row 0, column 2 -> key column 1
    assert b.key_at(0, 8.0, 8.0) == (0, 1, 1)
    assert b.flat_key((0, 1, 1)) == 3
    with pytest.raises(OutOfGridError, match="key grid"):
        b.flat_key((0, 2, 0))


@pytest.mark.parametrize("dims,groups", [("spacetime", 1), ("spacetime", 2), ("space", 1), ("time", 1)])
def test_allowed_mask_and_row_chunks_equal_the_full_versions(dims, groups):
    g = torch.Generator().manual_seed(1)
    b = BlockCapture("b", "dot_product", dims, 1.0, groups, torch.randn(1, 3, 4, 5, 6, generator=g),
                     torch.randn(1, 3, 4, 2, 3, generator=g), None, (8, 20, 24))
    full = allowed_keys(dims, b.query_shape, b.key_shape, groups)
    m = b.matrix()
    for start, stop in [(0, 120), (0, 1), (7, 19), (119, 120)]:
        part = b.allowed_mask(start, stop)
        assert (part is None) == (full is None)
        if full is not None:
            assert torch.equal(part, full[start:stop])
    for chunk in (1, 13, 120, 1000):
        chunks = list(b.row_chunks(chunk=chunk))
        assert [s for s, _ in chunks] == list(range(0, 120, chunk))
        torch.testing.assert_close(torch.cat([r for _, r in chunks]), m, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="positive number"):
        next(b.row_chunks(chunk=0))


def test_column_of_a_captured_block_equals_its_matrix(clip):
    model = random_nl_weights(build("tiny_i3d_nl2", pairwise="concatenation", dims="space"))
    _, cap = record(model, clip)
    b = cap["res3.0.nl"]
    key = b.key_at(9.5, 40.0, 12.0)
    expected = b.matrix(batch=1)[:, b.flat_key(key)].reshape(b.query_shape)
    torch.testing.assert_close(b.column(key, batch=1, chunk=100), expected, rtol=0, atol=1e-6)
    assert (b.column(key, batch=1)[torch.arange(b.query_shape[0]) != key[0]] == 0).all()  # other frames: no access
