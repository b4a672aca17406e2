"""Fast paths stay exact, and the GPU-ready paths work (docs/performance.md).

- the FCSN first conv and fc6/fc7 as matmuls equal the convs;
- the time-major convs and pools (channels-last 2-D ops) equal ``Conv1d`` / ``max_pool1d``
  and return time-major memory; PR-Net's U-net equals its channels-first form;
- the FCSN encoder equals its plain conv stack on L2-normalised steps, gradients included;
- the history summaries and segment means of L2-normalised steps equal normalising first,
  and make no normalised copy of the history (and one masked copy of a video, not two);
- every registered model runs forward + backward under bf16 autocast (on CPU) with
  float32 scores;
- a training step's loss, backward and Adam step never copy a tensor to the host, and the
  PR-Net family's forward does not either (counted by wrapping the Tensor methods that do);
- ``TrainConfig.compile`` wraps the training forward in ``torch.compile``.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from training_support import SMALL, write_tiny_store

import highlightzoo as hz
from highlightzoo.batch import random_batch
from highlightzoo.errors import ConfigError
from highlightzoo.losses import get_loss
from highlightzoo.models.components import fcsn as fcsn_parts
from highlightzoo.models.components import pooling
from highlightzoo.models.components.encoders import UNetEncoder1d
from highlightzoo.models.components.fcsn import FCSNEncoder, first_conv_steps
from highlightzoo.models.components.heads import full_precision_region
from highlightzoo.models.components.norm import (
    FEW_ROWS,
    few_rows_linear,
    history_video_items,
    inverse_l2_norms,
    l2_normalize_steps,
    l2_normalized_sum,
)
from highlightzoo.models.components.pooling import pool_segments
from highlightzoo.models.components.steps import (
    conv_steps,
    max_pool_steps,
    set_kernel_layout,
    unfolded_conv_steps,
)
from highlightzoo.models.phdgifs import history_segment_features
from highlightzoo.models.video2gif import segment_features
from highlightzoo.training import TrainConfig, train
from highlightzoo.training.optim import make_adam, match_state_layout
from highlightzoo.training.trainer import training_step

NARROW = {"fcsn": {"width_mult": 1 / 16}, "avhd": {"width_mult": 1 / 16},
          "video2gif": {"width_mult": 0.25}}


def channels_first(conv: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` on time-major ``x`` the plain way, back to time-major."""
    return rearrange(conv(rearrange(x, "b t d -> b d t")), "b c t -> b t c")


@pytest.mark.parametrize(("kernel", "padding", "bias"), [(3, 100, True), (3, 2, True),
                                                           (7, 6, False), (1, 0, True)])
@pytest.mark.parametrize("scaled", [False, True])
def test_first_conv_as_a_matmul_equals_the_padded_conv(kernel, padding, bias, scaled):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(5, 4, kernel, padding=padding, bias=bias)
    x = torch.randn(3, 9, 5)
    x[1, 6:] = 0  # padded tail, as in a batch
    scale = torch.rand(3, 9) + 0.5 if scaled else None
    want = channels_first(conv, x * (scale[..., None] if scaled else 1))
    got = first_conv_steps(x, conv, scale)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-6)
    # the edges far from the real steps are the bias alone
    if padding > kernel:
        edge = conv.bias if bias else torch.zeros(4)
        assert torch.allclose(got[:, 0], edge.expand(3, 4))


@pytest.mark.parametrize(("kernel", "padding"), [(7, 0), (1, 0), (3, 1), (5, 3)])
def test_conv_as_unfolded_matmul_equals_the_conv(kernel, padding):
    torch.manual_seed(2)
    conv = torch.nn.Conv1d(6, 5, kernel, padding=padding)
    x = torch.randn(2, 11, 6)
    assert torch.allclose(unfolded_conv_steps(x, conv), channels_first(conv, x), atol=1e-6)


@pytest.mark.parametrize(("kernel", "padding"), [(7, 0), (1, 0), (3, 1)])
def test_unfolded_conv_then_an_in_place_relu_is_conv_then_relu(kernel, padding):
    """``then`` runs on the GEMM's own output: the same values and gradients as an
    out-of-place ReLU after the conv, and no in-place op on a view in the graph."""
    torch.manual_seed(3)
    conv = torch.nn.Conv1d(6, 5, kernel, padding=padding)
    x = torch.randn(2, 11, 6, requires_grad=True)
    got = unfolded_conv_steps(x, conv, then=torch.nn.ReLU(inplace=True))
    want = torch.relu(channels_first(conv, x))
    assert torch.allclose(got, want, atol=1e-6)
    assert type(got.grad_fn).__name__ != "CopySlices"
    grad = torch.randn_like(want)
    (g_got,) = torch.autograd.grad(got, x, grad)
    (g_want,) = torch.autograd.grad(want, x, grad)
    assert torch.allclose(g_got, g_want, atol=1e-6)


def test_full_precision_region_only_acts_under_an_enabled_autocast():
    """Without autocast it is a no-op context; under CPU bf16 autocast, math inside is
    float32 and autocast is back on after it."""
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with full_precision_region("cpu"):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ b).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16
        with full_precision_region("cpu"):
            assert not torch.is_autocast_enabled("cpu")
            assert (a @ b).dtype == torch.float32
        assert torch.is_autocast_enabled("cpu")


def test_the_time_major_conv_modules_equal_the_conv_and_hooks_see_time_major_tensors():
    """``FirstConv1d`` and ``UnfoldedConv1d`` (FCSN's first conv, fc6, fc7) are ``Conv1d``s
    called on time-major steps: the conv's values, the conv's state dict, and their forward
    hooks fire with the (B, T, D) input and (B, T', C) output."""
    from highlightzoo.models.components.fcsn import FirstConv1d
    from highlightzoo.models.components.steps import UnfoldedConv1d

    torch.manual_seed(0)
    x = torch.randn(2, 9, 5)
    for conv in (FirstConv1d(5, 4, 3, padding=4), UnfoldedConv1d(5, 4, 7, padding=1),
                 UnfoldedConv1d(5, 4, 1)):
        seen: list = []
        conv.register_forward_hook(
            lambda m, args, out, seen=seen: seen.append((args[0].shape, out.shape)))
        got = conv(x)
        want = channels_first(lambda h, c=conv: torch.nn.Conv1d.forward(c, h), x)
        assert torch.allclose(got, want, atol=1e-6)
        assert seen == [(x.shape, got.shape)] and got.shape[0] == 2 and got.shape[2] == 4
        assert list(conv.state_dict()) == ["weight", "bias"]
    with pytest.raises(ConfigError, match="padding >= kernel_size - 1"):
        FirstConv1d(5, 4, 3, padding=1)


@pytest.mark.parametrize("conv", [torch.nn.Conv1d(5, 4, 3, stride=2, padding=1),
                                  torch.nn.Conv1d(5, 4, 3, padding="same")])
def test_other_convs_fall_back_to_the_conv(conv):
    x = torch.randn(2, 8, 5)
    assert torch.allclose(first_conv_steps(x, conv), channels_first(conv, x))
    assert torch.allclose(unfolded_conv_steps(x, conv), channels_first(conv, x))


@pytest.mark.parametrize(("kernel", "padding"), [(3, 1), (3, 0), (5, 4), (1, 0)])
def test_time_major_conv_equals_the_conv_and_stays_time_major(kernel, padding):
    torch.manual_seed(3)
    conv = torch.nn.Conv1d(6, 5, kernel, padding=padding)
    x = torch.randn(3, 13, 6, requires_grad=True)
    got = conv_steps(x, conv)
    want = channels_first(conv, x)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6)
    assert got.is_contiguous()  # (B, T, C) memory: no layout change on the way out
    grads = torch.autograd.grad(got.square().sum(), [x, conv.weight, conv.bias])
    wants = torch.autograd.grad(want.square().sum(), [x, conv.weight, conv.bias])
    for g, w in zip(grads, wants, strict=True):
        assert torch.allclose(g, w, atol=1e-5)


@pytest.mark.parametrize("steps", [2, 8, 13])
def test_time_major_max_pool_equals_max_pool1d(steps):
    h = torch.randn(2, steps, 4)
    want = F.max_pool1d(rearrange(h, "b t c -> b c t"), 2)
    got = max_pool_steps(h)
    assert torch.equal(got, rearrange(want, "b c t -> b t c")) and got.is_contiguous()


@pytest.mark.parametrize(("steps", "depth"), [(37, 3), (8, 2), (5, 0)])
def test_unet_equals_its_channels_first_form(steps, depth):
    """The time-major U-net computes what a channels-first one masking every conv input does
    (the form of earlier releases), so trained checkpoints keep their outputs."""
    torch.manual_seed(5)
    enc = UNetEncoder1d(3, 4, depth=depth).double()
    x = torch.randn(2, steps, 3, dtype=torch.double)
    mask = torch.arange(steps)[None] < torch.tensor([[steps], [steps // 2 + 1]])

    def block(b, h, m):
        y = b.conv(h * m[:, None])
        return (F.relu(y) if b.activation else y) * m[:, None]

    padded = -(-steps // 2**depth) * 2**depth
    h = F.pad(rearrange(enc.project(x), "b t c -> b c t"), (0, padded - steps))
    m = F.pad(mask, (0, padded - steps)).double()
    skips = []
    for b in enc.down:
        h = block(b, h, m)
        skips.append((h, m))
        h, m = F.max_pool1d(h, 2), F.max_pool1d(m[:, None], 2)[:, 0]
    h = block(enc.bottom, h, m)
    for b in enc.up:
        skip, m = skips.pop()
        h = block(b, skip + h.repeat_interleave(2, dim=-1), m)
    want = rearrange(h[..., :steps], "b c t -> b t c")
    assert torch.allclose(enc(x, mask), want, atol=1e-12)


@pytest.mark.parametrize("rows", [1, 8, FEW_ROWS, FEW_ROWS + 1])
@pytest.mark.parametrize("bias", [True, False])
def test_few_rows_linear_equals_the_linear(rows, bias):
    """A-VHD's item projections with the weight on the left: the linear's values and
    gradients, for few rows (that path) and more (the linear itself)."""
    torch.manual_seed(6)
    linear = torch.nn.Linear(24, 5, bias=bias).double()
    x = torch.randn(1, rows, 24, dtype=torch.double, requires_grad=True)  # rows in all
    got, want = few_rows_linear(x, linear), linear(x)
    assert got.shape == want.shape == (1, rows, 5)
    assert torch.allclose(got, want, atol=1e-12)
    params = [x, *linear.parameters()]
    grads = torch.autograd.grad(got.square().sum(), params)
    wants = torch.autograd.grad(want.square().sum(), params)
    for g, w in zip(grads, wants, strict=True):
        assert torch.allclose(g, w, atol=1e-12)


def test_inverse_l2_norms_rescale_like_l2_normalize():
    x = torch.randn(2, 5, 7)
    x[0, 1] = 0  # a zero step stays zero
    assert torch.allclose(x * inverse_l2_norms(x)[..., None], l2_normalize_steps(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_l2_normalized_sum_equals_normalising_masking_and_summing(dtype):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7, dtype=dtype)
    mask = torch.rand(2, 3, 5) < 0.6
    x[0, 1, 2] = 0  # a zero step adds zero (as F.normalize leaves it)
    mask[0, 1, 2] = True
    x[1, 2] = 1e6 * torch.randn(5, 7, dtype=dtype)  # garbage on padding adds nothing
    mask[1, 2] = False
    want = (l2_normalize_steps(x) * mask[..., None]).sum(dim=-2)
    got = l2_normalized_sum(x, mask)
    assert got.dtype == torch.promote_types(dtype, torch.float32) and got.shape == (2, 3, 7)
    assert torch.allclose(got, want, atol=1e-6)
    known = l2_normalized_sum(torch.tensor([[3.0, 4.0], [0.0, 2.0], [9.0, 9.0]]),
                              torch.tensor([True, True, False]))
    assert known.tolist() == pytest.approx([0.6, 1.8])


def test_l2_normalized_sum_is_not_cast_down_under_bf16_autocast():
    """float32 steps under bf16 autocast are summed in float32 (a bf16 contraction would be
    off by ~1e-2), and bf16 steps stay bf16 until the float32 result."""
    torch.manual_seed(0)
    x, mask = torch.randn(4, 30, 64), torch.rand(4, 30) < 0.8
    want = l2_normalized_sum(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = l2_normalized_sum(x, mask)
        half = l2_normalized_sum(x.bfloat16(), mask)
    assert got.dtype == half.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(half, want, atol=0.1)


def test_pool_segments_step_scale_pools_the_scaled_steps():
    torch.manual_seed(0)
    feats, scale = torch.randn(2, 9, 3), torch.rand(2, 9) + 0.5
    mask = torch.arange(9)[None] < torch.tensor([9, 5])[:, None]
    rate = torch.tensor([0.6, 0.6])
    got = pool_segments(feats, mask, rate, step_scale=scale)
    want = pool_segments(feats * scale[..., None], mask, rate)
    assert torch.equal(got.mask, want.mask) and torch.equal(got.index, want.index)
    assert torch.allclose(got.features, want.features, atol=1e-6)


def op_output_sizes(fn) -> list[int]:
    """The number of elements of every tensor each dispatched op returns in ``fn()``, views
    (which allocate nothing) left out."""
    sizes: list[int] = []

    class Sizes(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            out = func(*args, **(kwargs or {}))
            for t in () if func.is_view else (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor):
                    sizes.append(t.numel())
            return out

    with Sizes():
        fn()
    return sizes


def test_history_summaries_and_segment_means_make_no_copy_of_their_input():
    """A-VHD's history items, PHD-GIFs' history segment means and its segment means of the
    video contract their input with per-step weights: no op returns a tensor of the
    history's (or the video's) size; normalising first made two such copies."""
    batch = random_batch(2, 40, 16, 6, 5, seed=0, lengths=[40, 23])
    for fn, full in [
        (lambda: history_video_items(batch.history, batch.history_mask, batch.history_video),
         batch.history.numel()),
        (lambda: history_segment_features(batch.history, batch.history_mask),
         batch.history.numel()),
        (lambda: segment_features(batch, 5.0, True), batch.video.numel()),
    ]:
        assert max(op_output_sizes(fn)) < full


@pytest.mark.parametrize("channels", [1, 8, 64])
def test_segment_pooling_allocates_nothing_larger_than_its_features(channels):
    """The matmul's (B, S, T) weight matrix is used only where it is no larger than the
    weighted copy of the features it replaces (one score per step: the scatter)."""
    feats = torch.randn(3, 50, channels)
    mask = torch.arange(50)[None] < torch.tensor([50, 31, 7])[:, None]
    sizes = op_output_sizes(lambda: pool_segments(feats, mask, torch.tensor([2.0, 0.7, 3.0])))
    assert max(sizes) <= feats.numel()


@pytest.mark.parametrize("features", [torch.float32, torch.float64, torch.bfloat16])
def test_segment_sums_as_one_matmul_equal_the_scatter(features, monkeypatch):
    """Both ways :func:`pool_segments` sums its segments give the same means, with and
    without a step scale, and neither is cast down under bf16 autocast."""
    torch.manual_seed(0)
    feats = torch.randn(3, 50, 8).to(features)
    mask = torch.arange(50)[None] < torch.tensor([50, 31, 7])[:, None]
    rate, scale = torch.tensor([2.0, 0.7, 3.0]), torch.rand(3, 50) + 0.5
    offsets = torch.tensor([0, 4, 9])

    def pooled(limit: int, autocast: bool = False):
        monkeypatch.setattr(pooling, "ONE_MATMUL_SEGMENTS", limit)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return [pool_segments(feats, mask, rate, 5.0, offsets, step_scale=s)
                    for s in (None, scale)]

    tol = 1e-2 if features == torch.bfloat16 else 1e-6
    for autocast in (False, True):
        for got, want in zip(pooled(128, autocast), pooled(0), strict=True):
            assert got.features.dtype == want.features.dtype == features
            assert torch.equal(got.mask, want.mask) and torch.equal(got.index, want.index)
            assert torch.allclose(got.features.double(), want.features.double(), atol=tol)


def plain_layers(layers, h: torch.Tensor) -> torch.Tensor:
    """``layers`` (nested Sequentials) on channels-first ``h``, every conv as a plain
    ``Conv1d`` (the encoder's first conv, fc6 and fc7 are subclasses that take time-major
    steps)."""
    for layer in layers:
        if isinstance(layer, torch.nn.Sequential | list):
            h = plain_layers(layer, h)
        elif isinstance(layer, torch.nn.Conv1d):
            h = torch.nn.Conv1d.forward(layer, h)
        else:
            h = layer(h)
    return h


@pytest.mark.parametrize("steps", [40, 37, 1])
def test_fcsn_encoder_equals_its_plain_conv_stack_forward_and_backward(steps):
    """The encoder's own path (matmuls, time-major views) against its layers called as plain
    channels-first modules on L2-normalised steps: same outputs and same gradients (float64;
    training mode, dropout drawing the same masks from the same seed)."""
    torch.manual_seed(1)
    encoder = FCSNEncoder(24, width_mult=1 / 8).double().train()
    x = torch.randn(2, steps, 24, dtype=torch.double)

    def run(fast: bool) -> list[torch.Tensor]:
        encoder.zero_grad()
        torch.manual_seed(5)
        if fast:
            pool4, fc7, _ = encoder(x, 1 / x.norm(dim=-1))
        else:
            pool4 = plain_layers(encoder.to_pool4,
                                 rearrange(l2_normalize_steps(x), "b t d -> b d t"))
            fc7 = plain_layers([encoder.pool5, encoder.fc6, encoder.fc7], pool4)
        weights = torch.arange(fc7.shape[-1], dtype=torch.double)
        (pool4.square().sum() + (fc7 * weights).sum()).backward()
        return [pool4, fc7] + [p.grad.clone() for p in encoder.parameters()]

    for got, want in zip(run(True), run(False), strict=True):
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("name", hz.list_models())
@pytest.mark.parametrize("features", [torch.float32, torch.bfloat16])
def test_bf16_autocast_forward_and_backward(name, features):
    """Every model runs under CPU bf16 autocast, on float32 features and on bf16 ones (as the
    trainer moves them under bf16); scores stay float32 and gradients finite."""
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=16, **NARROW.get(name, {})).train()
    batch = random_batch(2, 40, 16, 4, 4, seed=0, lengths=[40, 29]).to("cpu", feature_dtype=features)
    assert batch.video.dtype == batch.history.dtype == features
    loss_fn = get_loss(model.card.default_loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(batch)
        loss = loss_fn(output, batch)
    assert output.scores.dtype == torch.float32
    assert torch.isfinite(output.scores[batch.video_mask]).all()
    if loss.requires_grad:
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


# ``nonzero`` copies nothing to the host itself, but its output size is data-dependent, so on a
# GPU it waits for the device just the same (and breaks CUDA graph capture)
HOST_COPIES = ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__",
               "nonzero")


def count_host_copies(fn) -> collections.Counter:
    """Calls of the Tensor methods that copy to the host (a device sync on a GPU) in ``fn()``."""
    counts: collections.Counter = collections.Counter()

    def counted(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            counts[name] += 1
            return original(self, *args, **kwargs)

        return wrapper

    with mock.patch.multiple(torch.Tensor, **{n: counted(n) for n in HOST_COPIES}):
        fn()
    return counts


def test_the_counter_sees_host_copies():
    t = torch.ones(3)
    assert count_host_copies(lambda: (t.sum().item(), bool(t.any()), t.tolist()))["item"] == 1
    assert sum(count_host_copies(lambda: (bool(t.any()), t.tolist())).values()) == 2
    assert count_host_copies(lambda: (t > 0).nonzero())["nonzero"] == 1


@pytest.mark.parametrize("name", hz.list_models())
def test_training_step_copies_to_the_host_only_in_the_model_forward(name):
    """Loss, backward and Adam add no host copy; the PR-Net family's forward at most one."""
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=16, **NARROW.get(name, {})).train()
    batch = random_batch(2, 32, 16, 4, 4, seed=0)
    optimizer = make_adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = get_loss(model.card.default_loss)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch), batch)
        if loss.requires_grad:
            loss.backward()
            optimizer.step()

    step()  # first step: Adam allocates its state
    forward = sum(count_host_copies(lambda: model(batch)).values())
    whole = sum(count_host_copies(step).values())
    assert whole == forward
    if name.startswith("prnet"):  # at most the history segments' lengths (for grouping them)
        assert forward <= 1
    elif model.card.trainable:  # the collate's host counts stand in for every device read
        assert forward == 0  # (the floors are never trained: no training step to keep sync-free)


def test_prnet_forward_off_the_cpu_path_makes_no_host_copy():
    """Off a CPU, history segments are encoded slot by slot without grouping: no host copy,
    so a GPU training step never waits for the device (the CPU path copies the lengths)."""
    torch.manual_seed(0)
    model = hz.create_model("prnet", feature_dim=16).train()
    batch = random_batch(2, 32, 16, 4, 4, seed=0)
    assert sum(count_host_copies(lambda: model(batch)).values()) == 1  # CPU: grouped
    model.history_embedding.group_by_length = False  # what a CUDA device gets by default
    assert sum(count_host_copies(lambda: model(batch)).values()) == 0


@pytest.mark.parametrize("name", ["fcsn", "avhd"])
def test_fcn_models_use_the_collates_counts_and_read_the_device_only_without_them(name):
    """With the collate's host counts FCSN/A-VHD make no host copy; once the mask changes
    after the collate the counts no longer apply, the model reads the device (one copy for
    FCSN's lengths, two for A-VHD) and still gives the right scores."""
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=16, width_mult=1 / 16).eval()
    batch = random_batch(3, 40, 16, seed=0, lengths=[40, 33, 40])
    assert batch.host_counts() is not None
    assert sum(count_host_copies(lambda: model(batch)).values()) == 0
    with torch.no_grad():
        before = model(batch).scores
    batch.video_mask[1, 30:] = False  # in place, after the collate: row 1 is now 30 steps
    assert batch.host_counts() is None
    assert sum(count_host_copies(lambda: model(batch)).values()) == (1 if name == "fcsn" else 2)
    fresh = random_batch(3, 40, 16, seed=0, lengths=[40, 30, 40])
    with torch.no_grad():
        after = model(batch).scores
        torch.testing.assert_close(after[:, :30], model(fresh).scores[:, :30])
    assert not torch.allclose(after[1, :30], before[1, :30])  # row 1 really changed


@pytest.mark.parametrize("name", ["phdgifs", "phdgifs_full", "video2gif"])
def test_segment_models_host_windows_equal_the_device_read(name):
    """5-second windows from the collate's rates and offsets (no host copy) equal the windows
    from reading the batch's tensors, on rows with odd rates, offsets and lengths."""
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=16, width_mult=1 / 16).eval()
    base = random_batch(3, 40, 16, seed=0, lengths=[40, 23, 31])
    batch = dataclasses.replace(base, rate=torch.tensor([2.0, 1.875, 0.7]),
                                offsets=torch.tensor([0, 3, 17])).with_host_counts([40, 23, 31], 2)
    assert sum(count_host_copies(lambda: model(batch)).values()) == 0
    with torch.no_grad():
        host = model(batch)
        batch.host = None  # what a hand-built batch gets: the device read
        device = model(batch)
    assert sum(count_host_copies(lambda: model(batch)).values()) > 0
    assert torch.equal(host.extras["segment_index"], device.extras["segment_index"])
    torch.testing.assert_close(host.scores, device.scores)


def test_host_counts_follow_the_batch_to_a_device_and_through_pickling():
    import pickle

    batch = random_batch(2, 12, 4, 3, 2, lengths=[12, 7], seed=0)
    assert batch.host_counts().lengths == (12, 7) and batch.host_counts().history_videos == 2
    assert batch.to("cpu").host_counts() == batch.host_counts()
    moved = pickle.loads(pickle.dumps(batch))  # a DataLoader worker's batch
    assert moved.host_counts() == batch.host_counts()
    replaced = dataclasses.replace(batch, video_mask=batch.video_mask.clone())
    assert replaced.host_counts() is None  # other tensor objects: not vouched for


def test_compile_option_wraps_the_training_forward(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="compile"):
        TrainConfig(model="prnet", data="x.h5", compile="yes")
    assert TrainConfig(model="prnet", data="x.h5").compile is False
    store = write_tiny_store(tmp_path / "tiny.h5")
    compiled = []

    def fake_compile(module, *args, **kwargs):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    config = TrainConfig(model="prnet", data=str(store), out=str(tmp_path / "run"), epochs=1,
                         batch_size=4, eval_batch_size=3, protocol="steps", compile=True,
                         model_overrides=SMALL.get("prnet", {}))
    result = train(config, quiet=True)
    assert len(compiled) == 1 and isinstance(compiled[0], torch.nn.Module)
    assert result.run_dir.exists()


def test_fused_adam_matches_the_default_adam():
    torch.manual_seed(0)
    a = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    b = [p.detach().clone().requires_grad_() for p in a]
    fused, plain = make_adam(a, lr=1e-2, weight_decay=0.1), torch.optim.Adam(b, lr=1e-2,
                                                                            weight_decay=0.1)
    assert fused.defaults["fused"] is True
    for _ in range(3):
        for params, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            sum(F.softplus(p).sum() for p in params).backward()
            opt.step()
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b, strict=True))


def _channels_last(weight: torch.Tensor) -> bool:
    return weight.permute(0, 2, 1).is_contiguous() and not weight.is_contiguous()


@pytest.mark.parametrize("name", ["fcsn", "avhd"])
def test_fcsn_kernels_take_the_devices_layout_and_train_the_same(name, monkeypatch):
    """The encoder's block-conv kernels are stored channels-last on the devices named in
    CHANNELS_LAST_ON (CUDA; here the CPU stands in) and contiguous elsewhere, after every
    ``.to``; training steps then give the contiguous model's losses and first gradients, in
    the kernels' own layout (as fused Adam needs), up to float rounding. (Weights after
    Adam are not compared element-wise: Adam turns a rounding-level gradient, e.g. a conv
    bias before an instance norm, into an lr-sized step of either sign.)"""
    batch = random_batch(2, 40, 12, 3, 4, seed=0)
    runs = []
    for on in (frozenset(), frozenset({"cpu"})):
        monkeypatch.setattr(fcsn_parts, "CHANNELS_LAST_ON", on)
        torch.manual_seed(0)
        model = hz.create_model(name, feature_dim=12, width_mult=1 / 16, dropout=0.0).to("cpu")
        convs = next(m for m in model.modules() if isinstance(m, FCSNEncoder)).block_convs()
        assert len(convs) == 12  # 2+2+3+3+3 block convs, less the first (a matmul)
        assert all(_channels_last(c.weight) == bool(on) for c in convs)
        optimizer = make_adam(model.parameters(), lr=1e-3)
        loss_fn = get_loss(model.card.default_loss)
        losses, grads = [], []
        for _ in range(3):
            losses.append(float(training_step(model, model, loss_fn, optimizer, batch,
                                              torch.device("cpu"), "fp32").detach()))
            grads.append([p.grad.clone() for p in model.parameters()])
        assert all(c.weight.grad.stride() == c.weight.stride() for c in convs)
        runs.append((losses, grads[0]))
    (plain_losses, plain_grads), (losses, laid_out_grads) = runs
    assert losses[:2] == pytest.approx(plain_losses[:2], rel=1e-5) and losses[2] != losses[0]
    assert losses[2] == pytest.approx(plain_losses[2], rel=1e-3)  # after two Adam steps
    for a, b in zip(plain_grads, laid_out_grads, strict=True):
        assert (b - a).norm() <= 1e-4 * a.norm() + 1e-7
    monkeypatch.setattr(fcsn_parts, "CHANNELS_LAST_ON", frozenset())
    weights = [p.detach().clone() for p in model.parameters()]
    model.to("cpu")  # on a device without the layout: contiguous again, the same values
    assert not any(_channels_last(c.weight) for c in convs)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))


def kernel_copies_in_backward(model, batch) -> int:
    """How many ops return a tensor of a conv kernel's shape in the backward of one loss."""
    shapes = {tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Conv1d)}
    loss = get_loss(model.card.default_loss)(model(batch), batch)
    copies = 0

    class Copies(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            nonlocal copies
            out = func(*args, **(kwargs or {}))
            copies += func in (torch.ops.aten.copy_.default, torch.ops.aten.clone.default) \
                and tuple(out.shape) in shapes
            return out

    with Copies():
        loss.backward()
    return copies


@pytest.mark.parametrize("name", [n for n in hz.list_models() if hz.get_model_card(n).trainable])
def test_no_training_step_copies_a_conv_kernel_gradient(name):
    """Every trainable model's conv kernels are stored in the layout their gradients come
    back in on this device, so no backward copies a kernel-sized gradient."""
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=16, **NARROW.get(name, {}))
    assert kernel_copies_in_backward(model, random_batch(2, 40, 16, 3, 4, seed=0)) == 0


def test_unet_kernels_are_channels_last_so_their_gradients_are_not_copied():
    """PR-Net's U-net stores its conv kernels channels-last, the layout its backward returns
    their gradients in: no kernel-sized copy per step (contiguous kernels: one per kernel),
    the same loss and gradients, and the layout survives casts, moves, copies and loading a
    state dict saved with contiguous kernels."""
    batch = random_batch(2, 40, 12, 3, 4, seed=0, lengths=[40, 29])
    torch.manual_seed(0)
    model = hz.create_model("prnet", feature_dim=12)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 7 and all(_channels_last(c.weight) for c in convs)
    plain = copy.deepcopy(model)
    for conv in (m for m in plain.modules() if isinstance(m, torch.nn.Conv1d)):
        set_kernel_layout(conv, "contiguous")
    assert kernel_copies_in_backward(model, batch) == 0
    assert kernel_copies_in_backward(plain, batch) == len(convs)
    for a, b in zip(model.parameters(), plain.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6) and a.grad.stride() == a.stride()
    moved = copy.deepcopy(model).double().to("cpu").float()
    fresh = hz.create_model("prnet", feature_dim=12)
    fresh.load_state_dict({k: v.contiguous() for k, v in plain.state_dict().items()})
    for m in (moved, fresh):
        assert all(_channels_last(c.weight) for c in m.modules() if isinstance(c, torch.nn.Conv1d))
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters(), strict=True))


@pytest.mark.parametrize("layout", ["channels_last", "matmul"])
def test_set_kernel_layout_keeps_values_and_says_whether_it_moved(layout):
    conv = torch.nn.Conv1d(4, 6, 3)
    before = conv.weight.detach().clone()
    assert set_kernel_layout(conv, layout) and not set_kernel_layout(conv, layout)
    assert torch.equal(conv.weight, before) and conv.weight.shape == (6, 4, 3)
    if layout == "channels_last":  # the (O, I, 1, k) kernel cuDNN gets
        assert conv.weight.unsqueeze(2).is_contiguous(memory_format=torch.channels_last)
    else:  # the (I, k*O) matrix first_conv_steps multiplies by is a view of it
        matrix = rearrange(conv.weight, "c d k -> d (k c)")
        assert matrix.data_ptr() == conv.weight.data_ptr() and matrix.is_contiguous()
    assert set_kernel_layout(conv, "contiguous") and conv.weight.is_contiguous()
    assert torch.equal(conv.weight, before)


def test_fcsn_first_conv_reads_its_kernel_without_a_copy():
    """The first conv (a matmul, first_conv_steps) keeps its kernel in (I, k, O) memory from
    construction and after moves; its gradient comes back in that layout."""
    model = hz.create_model("fcsn", feature_dim=12, width_mult=1 / 16)
    first = next(m for m in model.modules() if isinstance(m, FCSNEncoder)).to_pool4[0][0]
    for moved in (model, model.to("cpu"), model.float()):
        assert moved is model and first.weight.permute(1, 2, 0).is_contiguous()
    loss = get_loss("cross_entropy")(model(random_batch(2, 20, 12, 2, 3, seed=0)),
                                     random_batch(2, 20, 12, 2, 3, seed=0))
    loss.backward()
    assert first.weight.grad.stride() == first.weight.stride()


def test_optimizer_state_saved_in_another_layout_is_given_the_parameters_layout():
    """Adam's moments saved where a kernel was contiguous (a CPU run) and loaded where it is
    channels-last (a GPU run), or the other way: fused Adam walks parameter and state as flat
    memory, so without :func:`match_state_layout` the resumed update would pair wrong
    elements (seen with torch 2.13's CPU kernel); with it, the update is the reference's."""
    torch.manual_seed(0)
    start, grads = torch.randn(4, 3, 5), [torch.randn(4, 3, 5) for _ in range(3)]
    saved_in = torch.nn.Parameter(start.clone())  # contiguous
    reference = make_adam([saved_in], lr=0.1)
    for g in grads[:2]:
        saved_in.grad = g.clone()
        reference.step()
    conv = torch.nn.Conv1d(3, 4, 5)  # the same shape, its kernel channels-last
    set_kernel_layout(conv, "channels_last")
    with torch.no_grad():
        conv.weight.copy_(saved_in)
    resumed = make_adam([conv.weight], lr=0.1)
    resumed.load_state_dict(copy.deepcopy(reference.state_dict()))  # as saved and loaded
    assert resumed.state[conv.weight]["exp_avg"].stride() != conv.weight.stride()
    assert match_state_layout(resumed) == 2  # exp_avg, exp_avg_sq
    assert match_state_layout(resumed) == 0
    assert all(resumed.state[conv.weight][k].stride() == conv.weight.stride()
               for k in ("exp_avg", "exp_avg_sq"))
    saved_in.grad = grads[2].clone()
    conv.weight.grad = torch.empty_like(conv.weight).copy_(grads[2])  # autograd's layout
    reference.step()
    resumed.step()
    torch.testing.assert_close(conv.weight.detach(), saved_in.detach(), rtol=1e-6, atol=1e-7)


def test_training_step_returns_a_loss_without_its_autograd_graph():
    """The step's loss comes back detached: a caller that keeps it (the trainer's running
    loss, GraphedSteps) does not keep the step's graph alive, which on a GPU made the next
    side-stream warm-up of cuda_graphs warn of an AccumulateGrad stream mismatch."""
    torch.manual_seed(0)
    model = hz.create_model("prnet", feature_dim=16).train()
    optimizer = make_adam(model.parameters(), lr=1e-3)
    loss = training_step(model, model, get_loss(model.card.default_loss), optimizer,
                         random_batch(2, 32, 16, 4, 4, seed=0), torch.device("cpu"))
    assert loss.grad_fn is None and not loss.requires_grad
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
