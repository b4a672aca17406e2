"""Each model's per-step probability (``ModelOutput.probs``) and float32 outputs under bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch

from highlightzoo.batch import random_batch
from highlightzoo.models import create_model, list_models
from highlightzoo.models.prnet import highlight_probability

LENGTHS = [300, 200]


def _distinct(values: torch.Tensor) -> list[int]:
    return [len(torch.unique(values[i, :n])) for i, n in enumerate(LENGTHS)]


@pytest.mark.parametrize("name", list_models())
def test_bf16_autocast_keeps_fp32_scores_and_probs(name):
    torch.manual_seed(0)
    model = create_model(name, feature_dim=16).eval()
    batch = random_batch(2, max(LENGTHS), 16, lengths=LENGTHS, seed=1)
    with torch.no_grad():
        full = model(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(batch)
    assert full.probs is not None, f"{name} defines no probability"
    for out in (full, half):
        assert out.scores.dtype == torch.float32 and out.probs.dtype == torch.float32
        assert out.probs.shape == out.scores.shape
    assert _distinct(half.scores) == _distinct(full.scores), name
    # probs pass through a float32 softmax/sigmoid, which itself merges a few close values
    # (299 of 300 at fp32); bf16 probabilities would collapse to a few dozen
    for got, want in zip(_distinct(half.probs), _distinct(full.probs), strict=True):
        assert got >= 0.98 * want, name


@pytest.mark.parametrize("name", ["fcsn", "avhd", "prnet_ce"])
def test_two_class_models_give_softmax_of_class_1(name):
    torch.manual_seed(0)
    model = create_model(name, feature_dim=16).eval()
    batch = random_batch(2, 40, 16, lengths=[40, 30], seed=2)
    with torch.no_grad():
        out = model(batch)
    want = out.extras["logits"].softmax(-1)[..., 1]
    assert torch.allclose(out.probs[0], want[0], atol=1e-6)
    assert torch.allclose(out.probs[1, :30], want[1, :30], atol=1e-6)


def test_prnet_ratio_probability_known_answer():
    # l = [0, ln 2] -> l~ = [1/3, 2/3]; b = [0, 0] -> b~ = [1/2, 1/2]; third step is padding
    l = torch.tensor([[0.0, math.log(2.0), 5.0]])  # noqa: E741
    b = torch.tensor([[0.0, 0.0, -5.0]])
    mask = torch.tensor([[True, True, False]])
    p = highlight_probability(l, b, mask)
    assert p[0].tolist() == pytest.approx([(1 / 3) / (1 / 3 + 1 / 2), (2 / 3) / (2 / 3 + 1 / 2), 0.5])
    two = highlight_probability(l, b, mask, "two_class")
    assert two[0, :2].tolist() == pytest.approx([0.5, 2 / 3])


def test_prnet_family_probability_is_the_models_not_the_names():
    torch.manual_seed(0)
    batch = random_batch(2, 40, 16, seed=3)
    with torch.no_grad():
        full = create_model("prnet", 16).eval()(batch)
        ranking = create_model("prnet_ranking", 16).eval()(batch)
    l, b = full.extras["l"], full.extras["b"]  # noqa: E741
    want = (l.softmax(-1) / (l.softmax(-1) + b.softmax(-1)))
    assert torch.allclose(full.probs, want, atol=1e-6)
    assert torch.equal(ranking.probs, ranking.scores)  # ranking-only: the score itself
