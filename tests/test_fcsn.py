"""FCSN encoder/decoder: reference size, output length for every T, padded batches."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import highlightzoo as hz
from highlightzoo.batch import random_batch
from highlightzoo.errors import DataFormatError
from highlightzoo.models.components.fcsn import (
    FCSN,
    FCSNChannels,
    FCSNDecoder,
    FCSNEncoder,
    run_padded,
)
from highlightzoo.models.components.norm import AffineParams, TemporalInstanceNorm

REFERENCE_ENCODER_PARAMS = 37.9e6


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_reference_encoder_size_at_8192d_matches_within_one_percent():
    with torch.device("meta"):
        encoder = FCSNEncoder(8192, width_mult=1.0)
    n = count(encoder)
    assert abs(n - REFERENCE_ENCODER_PARAMS) / REFERENCE_ENCODER_PARAMS < 0.01
    # fc6 (512*4096*7) and fc7 (4096^2) dominate; the exact layer sum is 37,945,472.
    assert n == 37_945_472


def test_width_scales_every_channel_count():
    narrow = FCSNChannels.at_width(1 / 16)
    assert [c for _, c in narrow.blocks] == [4, 8, 16, 32, 32]
    assert [n for n, _ in narrow.blocks] == [2, 2, 3, 3, 3]
    assert narrow.fc == 256 and narrow.pool4 == 32
    assert FCSNChannels.at_width(1.0).fc == 4096
    with pytest.raises(ValueError):
        FCSNChannels.at_width(0.0)


@pytest.fixture(scope="module")
def narrow_fcsn() -> FCSN:
    torch.manual_seed(0)
    return FCSN(in_dim=3, width_mult=1 / 16).eval()


@pytest.mark.parametrize("length", [*range(1, 41), 255, 256, 257, 1000, 1023, 2049])
def test_output_has_one_logit_pair_per_step(narrow_fcsn, length):
    with torch.no_grad():
        out = narrow_fcsn(torch.rand(2, length, 3))
    assert out.shape == (2, length, 2)
    assert torch.isfinite(out).all()


def test_every_step_position_gets_its_own_score(narrow_fcsn):
    """The decoder crop aligns outputs with inputs: output length follows T, not a fixed grid."""
    x = torch.rand(1, 64, 3)
    with torch.no_grad():
        a, b = narrow_fcsn(x), narrow_fcsn(x[:, :63])
    assert a.shape[1] == 64 and b.shape[1] == 63
    assert not torch.allclose(a[:, :63], b)  # a fully convolutional net sees the whole video


def test_instance_norm_is_identity_at_length_one_and_normalises_otherwise():
    norm = TemporalInstanceNorm(4)
    one = torch.randn(2, 4, 1) * 5 + 3
    assert torch.equal(norm(one), one)
    many = torch.randn(2, 4, 9) * 5 + 3
    out = norm(many)
    assert torch.allclose(out.mean(-1), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(out.var(-1, unbiased=False), torch.ones(2, 4), atol=1e-3)
    with pytest.raises(Exception, match="not adaptive"):
        norm(many, AffineParams(torch.ones(2, 4), torch.zeros(2, 4)))


def test_fc_dropout_drops_whole_channels_in_training_only():
    """fc6/fc7 use channel dropout (the reference's Dropout2d): a channel is kept or zeroed
    at every time step together; element-wise dropout would mix zeros and non-zeros."""
    torch.manual_seed(3)
    encoder = FCSNEncoder(3, width_mult=1 / 4).train()
    for block in (encoder.fc6, encoder.fc7):
        drop = block[2]
        assert isinstance(drop, torch.nn.Dropout1d) and drop.p == 0.5
        x = torch.rand(4, 64, 30) + 0.1
        out = drop(x)
        zero_steps = (out == 0).sum(-1)  # per (row, channel): 0 or all 30 steps
        assert set(zero_steps.unique().tolist()) == {0, 30}
        kept = zero_steps == 0
        assert torch.allclose(out[kept], 2 * x[kept])
        assert torch.equal(drop.eval()(x), x)


def test_deconvolutions_keep_pytorch_default_init():
    """Not FCN's bilinear start (zero off the class diagonal): the reference's default init."""
    torch.manual_seed(4)
    decoder = FCSNDecoder(8, 16)
    torch.manual_seed(4)
    reference = FCSNDecoder(8, 16)
    for name, kernel in (("up2", 4), ("up16", 32)):
        w = getattr(decoder, name).weight
        assert w.shape == (2, 2, kernel) and getattr(decoder, name).bias is None
        assert (w[0, 1] != 0).all() and (w[1, 0] != 0).all()
        bound = 1 / (2 * kernel) ** 0.5  # kaiming_uniform(a=sqrt(5)) on fan_in = 2 * kernel
        assert w.abs().max() <= bound
        assert torch.equal(w, getattr(reference, name).weight)  # seeded like any other layer


# every length up to 70 (the fc7 map has one step up to 26: the per-row norm skip), odd and even
# lengths at every pool, and rows much shorter than the batch's longest
MIXED_LENGTHS = [*range(1, 71), 97, 128, 129, 200]


@pytest.mark.parametrize("name", ["fcsn", "avhd"])
def test_a_padded_batch_gives_each_row_what_it_gets_alone(name):
    """One forward over rows of many lengths (masked past each row's end) gives each row
    the scores, and the parameters the gradients, of running it alone at its real length:
    float64 end to end, so any step past a row's end that leaked in would show far above
    the rounding level. The padding holds non-zero values, which must not matter."""
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=6, width_mult=1 / 8).double().eval()
    batch = random_batch(len(MIXED_LENGTHS), max(MIXED_LENGTHS), 6, 4, 3, seed=1,
                         lengths=MIXED_LENGTHS).to("cpu", feature_dtype=torch.float64)
    batch.video[~batch.video_mask] = 3.0
    weights = torch.randn(batch.labels.shape, dtype=torch.float64)
    scores = model(batch).scores
    (scores * weights * batch.video_mask).sum().backward()
    together = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    for i, n in enumerate(MIXED_LENGTHS):
        alone = model(batch.row(i)).scores[0]
        assert torch.allclose(scores[i, :n], alone, rtol=0, atol=1e-12), n
        assert torch.equal(scores[i, n:], torch.zeros_like(scores[i, n:]))
        (alone * weights[i, :n]).sum().backward()
    for k, p in model.named_parameters():
        assert (together[k] - p.grad).abs().max() <= 1e-10 * p.grad.abs().max() + 1e-15, k


def test_mask_with_holes_is_a_typed_error_naming_the_video(narrow_fcsn):
    mask = torch.tensor([[True, False, True]])
    with pytest.raises(DataFormatError, match="vid-7"):
        run_padded(lambda x, m: narrow_fcsn(x, mask=m), torch.rand(1, 3, 3), mask, 2, ["vid-7"])


@pytest.mark.parametrize("host", [None, SimpleNamespace(longest=6, one_length=False)])
def test_run_padded_calls_once_on_the_longest_rows(host):
    """One call on the batch cut to its longest row, with the rows' mask (None when every
    row is that long), re-padded with zeros; with or without the collate's host counts
    (of which it reads only ``longest`` and ``one_length``)."""
    lengths = [6, 0, 3, 3, 5]
    video = torch.randn(5, 8, 3)
    mask = torch.arange(8)[None, :] < torch.tensor(lengths)[:, None]
    seen = []

    def fn(x, m):
        seen.append((x.shape, None if m is None else m.tolist()))
        return x * 2

    out = run_padded(fn, video, mask, 3, counts=host)
    assert seen == [((5, 6, 3), mask[:, :6].tolist())]
    assert torch.equal(out[:, :6], video[:, :6] * 2) and torch.equal(out[:, 6:], torch.zeros(5, 2, 3))
    seen.clear()
    run_padded(fn, video[:2], torch.ones(2, 8, dtype=torch.bool), 3)
    assert seen == [((2, 8, 3), None)]
    empty = run_padded(fn, video[:2], torch.zeros(2, 8, dtype=torch.bool), 3)
    assert len(seen) == 1 and torch.equal(empty, torch.zeros(2, 8, 3))


def test_every_encoder_layer_runs_as_a_module_whatever_the_lengths():
    """Forward hooks on the encoder's modules fire alike for a batch of one length and for
    one of mixed lengths: every layer once (run one by one), the three convs that run as
    matmuls (the first conv, fc6, fc7) included, and no block container in either."""
    torch.manual_seed(0)
    model = hz.create_model("fcsn", feature_dim=6, width_mult=1 / 16).eval()
    encoder = model.net.encoder
    modules = list(encoder.modules())[1:]
    calls: dict[int, int] = {}
    for i, module in enumerate(modules):
        module.register_forward_hook(
            lambda m, args, out, i=i: calls.__setitem__(i, calls.get(i, 0) + 1))
    want = {i: 1 for i, m in enumerate(modules) if not list(m.children())}
    with torch.no_grad():
        for lengths in ([40, 40], [40, 23]):
            calls.clear()
            model(random_batch(2, 40, 6, 2, 3, seed=0, lengths=lengths))
            assert calls == want, lengths
