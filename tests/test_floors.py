"""The two floors: known answers for history_similarity, determinism and chance level for random."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import highlightzoo as hz
from highlightzoo.batch import Batch, random_batch
from highlightzoo.errors import ConfigError
from highlightzoo.metrics.ap import average_precision
from highlightzoo.models.floors import (
    cosine_to_vector,
    random_step_scores,
    user_history_mean,
    video_generator_seed,
)


def _batch(video: list[list[float]], segments: list[list[list[float]]]) -> Batch:
    """A one-row batch with the given target steps and history segments (no padding)."""
    t = len(video)
    n = len(segments)
    lmax = max((len(s) for s in segments), default=1)
    d = len(video[0])
    history = torch.zeros(1, n, lmax, d)
    mask = torch.zeros(1, n, lmax, dtype=torch.bool)
    for j, seg in enumerate(segments):
        history[0, j, : len(seg)] = torch.tensor(seg)
        mask[0, j, : len(seg)] = True
    return Batch(
        video=torch.tensor([video]),
        video_mask=torch.ones(1, t, dtype=torch.bool),
        labels=torch.zeros(1, t),
        history=history,
        history_mask=mask,
        history_video=torch.arange(n)[None],
        rate=torch.tensor([1.0]),
        user_ids=["u"],
        video_ids=["v"],
        offsets=torch.zeros(1, dtype=torch.long),
    )


def test_history_mean_weights_each_segment_once():
    # segment means (1, 0) and (0, 1): the 3-step segment does not outweigh the 1-step one
    history = torch.tensor(
        [[[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [9.0, 9.0], [9.0, 9.0]]]]
    )
    mask = torch.tensor([[[True, True, True], [True, False, False]]])
    assert torch.allclose(user_history_mean(history, mask), torch.tensor([[0.5, 0.5]]))


def test_history_similarity_known_answer():
    # history mean = ((2,0) + (0,2)) / 2 = (1, 1); cosines with it: 1/sqrt2, 1, 0, -1/sqrt2 -> ...
    batch = _batch([[1.0, 0.0], [3.0, 3.0], [1.0, -1.0], [-2.0, 0.0]], [[[2.0, 0.0]], [[0.0, 2.0]]])
    out = hz.create_model("history_similarity", feature_dim=2)(batch)
    want = torch.tensor([[1 / math.sqrt(2), 1.0, 0.0, -1 / math.sqrt(2)]])
    assert torch.allclose(out.scores, want, atol=1e-6)
    assert torch.allclose(out.probs, (1 + want) / 2, atol=1e-6)


def test_history_similarity_without_history_is_zero_everywhere():
    batch = _batch([[1.0, 0.0], [0.0, 2.0]], [])
    out = hz.create_model("history_similarity", feature_dim=2)(batch)
    assert torch.equal(out.scores, torch.zeros(1, 2))
    assert torch.equal(out.probs, torch.full((1, 2), 0.5))


def test_cosine_of_a_zero_step_is_zero():
    got = cosine_to_vector(torch.tensor([[[0.0, 0.0], [0.0, 5.0]]]), torch.tensor([[0.0, 1.0]]))
    assert torch.allclose(got, torch.tensor([[0.0, 1.0]]))


def test_random_is_a_function_of_seed_video_and_step():
    a = random_step_scores(3, "vid", 0, 10)
    assert torch.equal(random_step_scores(3, "vid", 4, 6), a[4:])  # a clip sees the same steps
    assert not torch.equal(random_step_scores(4, "vid", 0, 10), a)
    assert not torch.equal(random_step_scores(3, "other", 0, 10), a)
    assert ((a >= 0) & (a < 1)).all()
    # stable across processes: no use of Python's salted str hash
    assert video_generator_seed(3, "vid") == video_generator_seed(3, "vid") < 2**63


def test_random_model_reruns_and_reloads_identically():
    batch = random_batch(2, 20, 4, 2, 3, seed=1)
    torch.manual_seed(0)
    first = hz.create_model("random", feature_dim=4)
    torch.manual_seed(0)
    again = hz.create_model("random", feature_dim=4)
    assert torch.equal(first(batch).scores, again(batch).scores)
    torch.manual_seed(1)
    other = hz.create_model("random", feature_dim=4)
    assert not torch.equal(first(batch).scores, other(batch).scores)
    other.load_state_dict(first.state_dict())  # the seed is saved with the model
    assert torch.equal(first(batch).scores, other(batch).scores)
    out = first(batch)
    assert torch.equal(out.probs, out.scores)


def expected_random_ap(positives: int, steps: int) -> float:
    """E[exact AP] of a uniformly random ranking of ``positives`` among ``steps`` (closed form).

    A positive at rank r has (r-1)(R-1)/(N-1) positives above it on average, so
    E[AP] = (R-1)/(N-1) + (N-R) H_N / (N (N-1)), H_N the N-th harmonic number.
    """
    r, n = positives, steps
    harmonic = sum(1.0 / k for k in range(1, n + 1))
    return (r - 1) / (n - 1) + (n - r) * harmonic / (n * (n - 1))


def test_random_map_is_the_chance_level():
    """Over many videos, random's mean AP matches the closed-form chance level."""
    torch.manual_seed(0)
    model = hz.create_model("random", feature_dim=1)
    rng = np.random.default_rng(0)
    aps, chance = [], []
    for v in range(400):
        labels = (rng.random(200) < 0.1).astype(np.float64)
        labels[0] = 1.0
        batch = random_batch(1, 200, 1, 0, 1, seed=v)
        batch.video_ids = [f"v{v}"]
        scores = model(batch).scores[0].numpy()
        aps.append(average_precision(labels, scores, mode="exact"))
        chance.append(expected_random_ap(int(labels.sum()), 200))
    assert np.mean(aps) == pytest.approx(np.mean(chance), abs=0.01)


def test_expected_random_ap_known_answers():
    assert expected_random_ap(1, 2) == pytest.approx(0.75)  # (1 + 1/2) / 2
    assert expected_random_ap(3, 3) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["random", "history_similarity"])
def test_floors_have_no_trainable_parameters_and_a_table1_card(name):
    model = hz.create_model(name, feature_dim=4)
    assert not any(p.requires_grad for p in model.parameters())
    card = hz.get_model_card(name)
    assert card.table == "table1" and card.paper_map is None and "floor" in card.summary
    assert card.trainable is False
    assert card.uses_history == (name == "history_similarity")


def test_random_needs_a_video_id_per_row():
    batch = random_batch(2, 5, 3, 0, 1)
    batch.video_ids = []
    with pytest.raises(ConfigError, match="video ids"):
        hz.create_model("random", feature_dim=3)(batch)
