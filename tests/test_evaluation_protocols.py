"""``evaluate_model(protocol=...)``: both protocols per pair, named results, typed refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from training_support import write_tiny_store

from highlightzoo import metrics
from highlightzoo.batch import Batch, ModelOutput
from highlightzoo.data.dataset import HighlightDataset
from highlightzoo.errors import ConfigError, MetricInputError
from highlightzoo.models import create_model
from highlightzoo.training.evaluation import evaluate_model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> HighlightDataset:
    path = write_tiny_store(tmp_path_factory.mktemp("data") / "tiny.h5")
    return HighlightDataset(str(path), "test", mode="eval")


class NoProbs(nn.Module):
    """A plugin-like model that gives scores only."""

    def forward(self, batch: Batch) -> ModelOutput:
        return ModelOutput(scores=batch.video.sum(-1))


def test_ground_truth_is_the_users_segments_on_the_target(dataset):
    for index, uid in enumerate(dataset.user_ids):
        rec = dataset.store.user(uid)
        duration, segments = dataset.ground_truth(index)
        assert duration == dataset.store.video_duration(rec.target_video)
        assert segments == [(float(s), float(e)) for s, e in rec.target_segments]


@pytest.mark.parametrize("protocol", ["avhd", "steps"])
def test_both_protocols_per_pair_and_named_result(dataset, protocol):
    torch.manual_seed(0)
    model = create_model("prnet", dataset.store.feature_dim)
    res = evaluate_model(model, dataset, "cpu", batch_size=3, protocol=protocol, with_ci=False)
    assert res.protocol == protocol and res.summary()["protocol"] == protocol
    assert set(res.map_by_protocol) == set(metrics.PROTOCOLS)
    assert res.map_by_protocol[protocol] == res.map
    assert res.summary()[f"map_{protocol}"] == res.map
    for rec in res.records:
        assert rec.ap == getattr(rec, f"ap_{protocol}")
        assert rec.n_history == len(dataset.store.user(rec.user).history)
    # the avhd AP of a pair is avhd_protocol_ap of the model's probs on that video alone
    index = dataset.user_ids.index(res.records[0].user)
    sample_batch = _single(dataset, index)
    with torch.no_grad():
        probs = model.eval()(sample_batch).probs[0]
    duration, segments = dataset.ground_truth(index)
    want = metrics.avhd_protocol_ap(probs, float(sample_batch.rate[0]), duration, segments)
    assert res.records[0].ap_avhd == pytest.approx(want, abs=1e-12)


def test_other_protocol_mean_is_over_its_defined_pairs(dataset):
    torch.manual_seed(0)
    model = create_model("prnet", dataset.store.feature_dim)
    steps = evaluate_model(model, dataset, "cpu", batch_size=2, protocol="steps", with_ci=False)
    avhd = evaluate_model(model, dataset, "cpu", batch_size=2, protocol="avhd", with_ci=False)
    assert steps.map_by_protocol["avhd"] == pytest.approx(
        100 * np.mean([r.ap_avhd for r in steps.records if math.isfinite(r.ap_avhd)])
    )
    # "test-empty": a 0.1 s highlight has no positive step but does have positive frames
    assert [s["user"] for s in steps.skipped] == ["test-empty"]
    assert "test-empty" in [r.user for r in avhd.records] and not avhd.skipped


@pytest.mark.parametrize("protocol", ["avhd", "steps"])
def test_selection_only_keeps_what_model_selection_reads(dataset, protocol):
    """Validation's ``selection_only``: the same mAP, user mAP, pairs and skips; the metrics
    model selection never reads (nMSD, hit@k, the A-VHD protocol's AP under "steps") are
    not computed (the step AP is computed per batch either way)."""
    torch.manual_seed(0)
    model = create_model("prnet", dataset.store.feature_dim)
    full = evaluate_model(model, dataset, "cpu", batch_size=2, protocol=protocol, with_ci=False)
    lean = evaluate_model(model, dataset, "cpu", batch_size=2, protocol=protocol, with_ci=False,
                          selection_only=True)
    assert (lean.map, lean.user_map, lean.n_pairs, lean.skipped) == (
        full.map, full.user_map, full.n_pairs, full.skipped)
    assert [r.ap for r in lean.records] == [r.ap for r in full.records]
    assert all(math.isnan(r.nmsd) and math.isnan(r.hit) for r in lean.records)
    assert any(math.isfinite(r.nmsd) and math.isfinite(r.hit) for r in full.records)
    if protocol == "steps":
        assert all(math.isnan(r.ap_avhd) for r in lean.records)
        assert any(math.isfinite(r.ap_avhd) for r in full.records)


def test_avhd_refuses_a_model_without_probs(dataset):
    with pytest.raises(ConfigError, match="NoProbs"):
        evaluate_model(NoProbs(), dataset, "cpu", protocol="avhd")
    res = evaluate_model(NoProbs(), dataset, "cpu", protocol="steps", with_ci=False)
    assert all(math.isnan(r.ap_avhd) for r in res.records)
    with pytest.raises(MetricInputError, match="protocol"):
        evaluate_model(NoProbs(), dataset, "cpu", protocol="frames")


def _single(dataset: HighlightDataset, index: int) -> Batch:
    from highlightzoo.data.dataset import collate

    return collate([dataset[index]])
