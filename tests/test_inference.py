"""Detector: scores like evaluation, windows, explanations (Fig. 7), history cap, input errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from training_support import SMALL, write_fresh_checkpoint, write_tiny_store

import highlightzoo as hz
from highlightzoo.data import HighlightDataset, collate
from highlightzoo.errors import CheckpointError, ConfigError, DataFormatError
from highlightzoo.inference import Detector, windows

D = 8


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return hz.create_model(name, feature_dim=D, **SMALL.get(name, {})).eval()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_tiny_store(tmp_path_factory.mktemp("data") / "tiny.h5")


@pytest.mark.parametrize("name", hz.list_models())
def test_every_model_predicts_with_an_empty_history(name):
    rng = np.random.default_rng(0)
    pred = Detector(_model(name)).predict(rng.random((60, D), dtype=np.float32), [], rate=2.0, top_k=3)
    assert pred.scores.shape == (60,) and np.isfinite(pred.scores).all()
    assert 1 <= len(pred.segments) <= 3
    assert all(0 <= s.start_s < s.end_s <= 30.0 for s in pred.segments)
    assert pred.explanations is None or len(pred.explanations) == len(pred.segments)
    assert pred.to_dict()["n_steps"] == 60


@pytest.mark.parametrize("name", ["prnet", "avhd", "phdgifs"])
def test_predict_scores_a_sample_exactly_as_evaluation_does(name, store):
    model = _model(name)
    sample = next(s for s in HighlightDataset(store, "test", mode="eval") if len(s.history) >= 2)
    with torch.no_grad():
        expected = model(collate([sample])).scores[0].numpy()
    pred = Detector(model).predict(
        sample.video.numpy(), [h.numpy() for h in sample.history], sample.rate,
        history_video=sample.history_video,
    )  # fmt: skip
    np.testing.assert_allclose(pred.scores, expected, rtol=0, atol=1e-6)


def test_explanations_average_attention_and_weights_inside_each_segment():
    model = _model("prnet")
    rng = np.random.default_rng(1)
    video = rng.random((40, D), dtype=np.float32)
    history = [rng.random((int(n), D), dtype=np.float32) for n in (3, 5, 2, 4)]
    pred = Detector(model).predict(video, history, rate=2.0, top_k=2, explain_top=4)
    # recompute the extras by hand from the same one-row batch
    hist = torch.zeros(1, 4, 5, D)
    mask = torch.zeros(1, 4, 5, dtype=torch.bool)
    for j, h in enumerate(history):
        hist[0, j, : len(h)], mask[0, j, : len(h)] = torch.from_numpy(h), True
    b = hz.Batch(torch.from_numpy(video)[None], torch.ones(1, 40, dtype=torch.bool),
                 torch.zeros(1, 40), hist, mask, torch.arange(4)[None], torch.tensor([2.0]),
                 ["u"], ["v"], torch.zeros(1, dtype=torch.long))  # fmt: skip
    with torch.no_grad():
        extras = model(b).extras
    for seg, exp in zip(pred.segments, pred.explanations, strict=True):
        first, stop = int(np.floor(seg.start_s * 2)), int(np.ceil(seg.end_s * 2))
        att = extras["attention"][0, first:stop].mean(0)
        assert [j for j, _ in exp.history] == att.argsort(descending=True, stable=True).tolist()
        np.testing.assert_allclose([w for _, w in exp.history], att.sort(descending=True).values,
                                   atol=1e-6)  # fmt: skip
        assert exp.user_weight == pytest.approx(extras["user_weight"][0, first:stop].mean().item())
        assert exp.user_weight + exp.generic_weight == pytest.approx(1.0, abs=1e-5)


def test_card_history_cap_is_applied():
    model = _model("prnet_h5")
    rng = np.random.default_rng(2)
    video = rng.random((30, D), dtype=np.float32)
    history = [rng.random((3, D), dtype=np.float32) for _ in range(8)]
    det = Detector.from_model(model)
    assert det.history_cap == 5
    full, capped = det.predict(video, history, 2.0, explain_top=8), det.predict(video, history[:5], 2.0)
    np.testing.assert_array_equal(full.scores, capped.scores)
    assert all(j < 5 for e in full.explanations for j, _ in e.history)


def test_windowed_scoring_equals_whole_video_for_a_local_model():
    """video2gif scores 5-s segments aligned to the video start (via offsets): no context needed."""
    model = _model("video2gif")
    video = np.random.default_rng(3).random((95, D), dtype=np.float32)
    whole = Detector(model, window_steps=None).predict(video, [], rate=2.0).scores
    for window, context in ((20, 0), (30, 10), (40, 7)):
        pieces = Detector(model, window_steps=window, context_steps=context).predict(video, [], 2.0)
        np.testing.assert_allclose(pieces.scores, whole, rtol=0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 500), window=st.integers(1, 120), context=st.integers(0, 50))
def test_windows_partition_the_video_and_stay_bounded(n, window, context):
    spans = windows(n, window, context)
    kept = [i for start, stop, _, _ in spans for i in range(start, stop)]
    assert kept == list(range(n))
    for start, stop, lo, hi in spans:
        assert 0 <= lo <= start < stop <= hi <= n and hi - lo <= window + 2 * context


def test_from_checkpoint_restores_the_model_and_its_cap(tmp_path, store):
    ckpt = write_fresh_checkpoint(tmp_path / "c.pt", "prnet_h5", store)
    det = Detector.from_checkpoint(ckpt, device="cpu")
    assert det.name == "prnet_h5" and det.history_cap == 5
    video = np.random.default_rng(4).random((25, D), dtype=np.float32)
    np.testing.assert_array_equal(
        det.predict(video, []).scores, Detector(_model("prnet_h5")).predict(video, []).scores
    )
    with pytest.raises(CheckpointError, match="no checkpoints/best.pt"):
        Detector.from_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "video, history, kwargs, error, match",
    [
        (np.zeros((10, D + 1)), [], {}, DataFormatError, "video features: 9-d features, but the model expects 8-d"),
        (np.zeros(10), [], {}, DataFormatError, "video features: a \\(steps >= 1, D\\) array is needed"),
        (np.full((10, D), np.nan), [], {}, DataFormatError, "NaN"),
        (np.full((10, D), 1e39), [], {}, DataFormatError, "video features: values beyond"),
        (np.zeros((10, D)), [np.full((3, D), -1e300)], {}, DataFormatError,
         "history segment 0: values beyond float32's range"),
        (np.zeros((10, D)), [np.zeros((3, 4))], {}, DataFormatError, "history segment 0"),
        (np.zeros((10, D)), [], {"rate": 0.0}, ConfigError, "rate"),
        (np.zeros((10, D)), [], {"top_k": 0}, ConfigError, "top_k"),
        (np.zeros((10, D)), [np.zeros((3, D))], {"history_video": [0, 1]}, DataFormatError,
         "history_video"),
        (np.zeros((10, D)), [], {"min_len": 2.0}, ConfigError,
         "unknown segment option 'min_len'; the options: min_len_s, max_len_s, baseline"),
    ],
)
def test_bad_inputs_are_typed_errors(video, history, kwargs, error, match):
    det = Detector(_model("prnet"))
    with pytest.raises(error, match=match):
        det.predict(video, history, **{"rate": 2.0, **kwargs})


PREDICT_IMPORTS = """
import sys
from highlightzoo.cli import build_parser
import highlightzoo.inference, highlightzoo.training
build_parser()  # every subcommand's module, as any `highlightzoo ...` command loads them
print(sorted({m.split(".")[0] for m in sys.modules} & {"scipy", "matplotlib"}))
"""


def test_predicting_does_not_import_scipy_or_matplotlib():
    """``highlightzoo predict``, ``Detector`` and training need neither scipy (intervals and
    tests: about half a second to import) nor matplotlib (figures); the modules that use them
    import them on first use. A fresh interpreter: this one has them loaded already."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", PREDICT_IMPORTS], capture_output=True,
                          text=True, timeout=300, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"window_steps": 0}, "window_steps must be an int >= 1 or None, got 0"),
        ({"window_steps": "4096"}, "window_steps must be an int >= 1 or None"),
        ({"context_steps": -1}, "context_steps must be an int >= 0, got -1"),
        ({"history_cap": -1}, "history_cap must be an int >= 0 or None, got -1"),
        ({"history_cap": 2.5}, "history_cap must be an int >= 0 or None, got 2.5"),
    ],
)
def test_detector_arguments_are_checked(kwargs, match):
    with pytest.raises(ConfigError, match=re.escape(match)):
        Detector(_model("prnet"), **kwargs)


def test_a_detector_of_a_model_name_points_to_create_model():
    with pytest.raises(ConfigError, match="needs a torch.nn.Module .*got 'prnet'"):
        Detector("prnet")


@pytest.mark.parametrize("precision, match", [
    ("fp16", "precision must be one of fp32, bf16, got 'fp16'"),  # ran in float32 before
    ("bf16", "bf16 autocast on CUDA only"),
])
def test_detector_and_evaluation_refuse_a_precision_they_would_not_use(precision, match):
    from highlightzoo.training.evaluation import evaluate_model

    with pytest.raises(ConfigError, match=match):
        Detector(_model("prnet"), precision=precision)
    with pytest.raises(ConfigError, match=match):
        evaluate_model(_model("prnet"), [], "cpu", precision=precision)


def test_registry_switches_are_bools_and_patterns_strings():
    with pytest.raises(ConfigError, match="allow_large must be true or false, got 'no'"):
        hz.create_model("prnet", feature_dim=8, allow_large="no")  # truthy: the limit was off
    with pytest.raises(ConfigError, match="pattern must be a shell-style string"):
        hz.list_models(3)


def test_detector_device_is_a_name_or_a_torch_device():
    # a bare index or None reached torch.device: a TypeError or an accelerator RuntimeError
    for bad in (0, 2, None, 1.5):
        with pytest.raises(ConfigError, match="device must be a name such as 'cpu'"):
            Detector(_model("prnet"), device=bad)
    assert Detector(_model("prnet"), device=torch.device("cpu")).device == torch.device("cpu")



def test_a_rate_other_than_the_trained_features_is_refused():
    """A checkpoint whose store said how its features were made gives the detector their rate;
    another rate put every segment at other seconds, without a word."""
    torch.manual_seed(0)
    model = hz.create_model("video2gif", feature_dim=4)
    det = Detector(model, features={"backbone": "resnet18", "rate": 1.875})
    video = np.ones((10, 4), np.float32)
    with pytest.raises(ConfigError, match="rate 2 differs from the 1.875 steps/s .*resnet18"):
        det.predict(video, [], 2.0)
    assert det.predict(video, [], 1.875).rate == 1.875
    assert Detector(model).predict(video, [], 2.0).rate == 2.0  # unknown: any rate


@pytest.mark.parametrize("features", [3, "resnet18", {"rate": "2"}, {"backbone": 7}])
def test_a_features_description_of_the_wrong_kind_is_refused(features):
    """An int or a text was an AttributeError in predict (``.get``); a rate of "2" was compared
    as text."""
    with pytest.raises(ConfigError, match="features must be None or a description"):
        Detector(_model("prnet"), features=features)
