"""What a model returns is checked where the zoo calls it (training step, evaluation,
``Detector``): a new detector's mistake is a ``ConfigError`` naming it, not an ``IndexError``
inside a loss or a silent broadcast in the evaluation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from training_support import FEATURE_DIM, write_tiny_store

from highlightzoo import Batch, ModelOutput
from highlightzoo.batch import check_output, random_batch
from highlightzoo.errors import ConfigError
from highlightzoo.inference import Detector
from highlightzoo.models import ModelCard, register_model, registry
from highlightzoo.training import TrainConfig
from highlightzoo.training.trainer import train

BAD = {
    "tuple": (lambda s: (s,), "returned tuple, not a ModelOutput"),
    "per_video": (lambda s: ModelOutput(scores=s[:, 0], probs=s[:, 0]),
                  r"returned scores of shape \(\d+,\) for a batch of \(B, T\)"),
    "one_short": (lambda s: ModelOutput(scores=s[:, :-1], probs=s[:, :-1]),
                  "returned scores of shape"),
    "probs_per_video": (lambda s: ModelOutput(scores=s, probs=s[:, :1]),  # was broadcast
                        r"returned probs of shape \(\d+, 1\)"),
    "numpy": (lambda s: ModelOutput(scores=s.detach().numpy(), probs=None),
              "returned scores of type ndarray"),
    "bool": (lambda s: ModelOutput(scores=s > 0, probs=None),
             r"returned scores of type Tensor \(torch.bool\)"),
}


class _Bad(nn.Module):
    def __init__(self, feature_dim: int, make) -> None:
        super().__init__()
        self.lin, self.make = nn.Linear(feature_dim, 1), make

    def forward(self, batch: Batch):
        return self.make(self.lin(batch.video).squeeze(-1))


@pytest.fixture
def bad_model():
    names = []

    def register(kind: str) -> str:
        name = f"tmp_bad_output_{kind}"
        make = BAD[kind][0]
        register_model(ModelCard(name, "s", "p", "frame", False, "ranking"))(
            lambda feature_dim: _Bad(feature_dim, make))
        names.append(name)
        return name

    yield register
    for name in names:
        registry._REGISTRY.pop(name)


@pytest.mark.parametrize("kind", sorted(BAD))
def test_training_refuses_a_model_output_of_the_wrong_kind_naming_the_model(tmp_path, bad_model,
                                                                            kind):
    store = write_tiny_store(tmp_path / "s.h5")
    name = bad_model(kind)
    with pytest.raises(ConfigError, match=f"model '{name}' {BAD[kind][1]}"):
        train(TrainConfig(model=name, data=str(store), max_steps=2, out=str(tmp_path / "r")))


@pytest.mark.parametrize("kind", ["probs_per_video", "one_short"])
def test_evaluation_and_the_detector_check_the_output_too(tmp_path, bad_model, kind):
    import highlightzoo as hz
    from highlightzoo.data import HighlightDataset
    from highlightzoo.training.evaluation import evaluate_model

    name = bad_model(kind)
    model = hz.create_model(name, feature_dim=FEATURE_DIM)
    with pytest.raises(ConfigError, match=f"model '{name}' {BAD[kind][1]}"):
        Detector(model).predict(torch.rand(20, FEATURE_DIM), rate=2.0)
    dataset = HighlightDataset(str(write_tiny_store(tmp_path / "s.h5")), "test", mode="eval")
    with pytest.raises(ConfigError, match=f"model '{name}' {BAD[kind][1]}"):
        evaluate_model(model, dataset, "cpu", protocol="avhd", with_ci=False)
    batch = random_batch(2, 16, FEATURE_DIM)
    with pytest.raises(ConfigError, match=BAD[kind][1]):
        check_output(model(batch), batch, model)


def test_every_registered_model_passes_the_check():
    import highlightzoo as hz

    batch = random_batch(3, 40, 16, lengths=[40, 23, 7])
    for name in hz.list_models():
        torch.manual_seed(0)
        model = hz.create_model(name, feature_dim=16).eval()
        with torch.no_grad():
            assert check_output(model(batch), batch, model).scores.shape == (3, 40)


@pytest.mark.parametrize("make", [
    lambda s: ModelOutput(scores=s.detach(), probs=None),  # computed under no_grad, say
    lambda s: ModelOutput(scores=(s > 0).long(), probs=None),  # integer scores: no graph
])
def test_a_model_whose_loss_does_not_reach_its_parameters_is_refused(tmp_path, make):
    """The trainer joined such a loss to the parameters by 0 * sum (to make backward work),
    so every step changed nothing and the run was reported as trained."""
    from highlightzoo.errors import TrainingError

    register_model(ModelCard("tmp_detached", "s", "p", "frame", False, "ranking"))(
        lambda feature_dim: _Bad(feature_dim, make))
    try:
        store = write_tiny_store(tmp_path / "s.h5")
        with pytest.raises(TrainingError, match="'tmp_detached': its loss does not depend on"):
            train(TrainConfig(model="tmp_detached", data=str(store), max_steps=2,
                              out=str(tmp_path / "r")))
    finally:
        registry._REGISTRY.pop("tmp_detached")


@pytest.mark.parametrize("field", ["scores", "probs"])
def test_non_finite_outputs_in_the_evaluation_name_the_model_user_and_video(tmp_path, field):
    """A NaN score was "scores (video index 0) has 30 non-finite value(s)": which model, which
    user and video of the split was left to guess (and NaN probabilities named none)."""
    from highlightzoo.data import HighlightDataset
    from highlightzoo.errors import MetricInputError
    from highlightzoo.training.evaluation import evaluate_model

    class NaNs(nn.Module):
        def forward(self, batch: Batch) -> ModelOutput:
            s = batch.video.sum(-1)
            out = {"scores": s, "probs": s, field: s * float("nan")}
            return ModelOutput(scores=out["scores"], probs=out["probs"])

    dataset = HighlightDataset(str(write_tiny_store(tmp_path / "s.h5")), "test", mode="eval")
    with pytest.raises(MetricInputError, match=r"model 'NaNs'.*(user '|video ').*non-finite"):
        evaluate_model(NaNs(), dataset, "cpu", protocol="steps", with_ci=False)
