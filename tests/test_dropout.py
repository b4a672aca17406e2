"""The zoo's dropout (``components.dropout``): torch's dropout distribution, with the CPU
mask drawn as uniforms (docs/performance.md, "Dropout on a CPU")."""

from __future__ import annotations

import pytest
import torch

import highlightzoo as hz
from highlightzoo.batch import random_batch
from highlightzoo.errors import ConfigError
from highlightzoo.losses import get_loss
from highlightzoo.models.components.dropout import Dropout, dropout
from highlightzoo.models.components.heads import MLPHead


@pytest.mark.parametrize("p", [0.5, 0.3, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_training_dropout_keeps_one_minus_p_of_the_elements_scaled(p, dtype):
    """Each element is zeroed or multiplied by 1/(1-p), in the input's dtype; the kept share
    is 1-p within 5 standard errors of 200,000 draws (seeded, so the test is repeatable)."""
    torch.manual_seed(0)
    x = torch.rand(400, 500, dtype=torch.float64).add_(0.5).to(dtype)
    y = dropout(x, p, training=True)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    assert torch.equal(y[kept], (x * torch.tensor(1 / (1 - p), dtype=dtype))[kept])
    n = x.numel()
    assert abs(kept.double().mean().item() - (1 - p)) < 5 * ((p * (1 - p) / n) ** 0.5)


def test_dropout_gradient_is_the_mask_scaled():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.5, training=True)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * 2.0)


def test_dropout_is_identity_outside_training_and_at_p_zero_and_all_zero_at_p_one():
    x = torch.randn(5, 7)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))


def test_dropout_draws_repeat_under_the_same_seed_and_advance_the_generator():
    x = torch.ones(100, 100)
    torch.manual_seed(3)
    first, second = dropout(x, 0.5, True), dropout(x, 0.5, True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.5, True), first)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_a_dropout_probability_outside_zero_one_is_a_config_error(p):
    with pytest.raises(ConfigError, match="dropout probability must be a number in"):
        Dropout(p)


def test_the_module_follows_train_and_eval_and_matches_nn_dropouts_state_dict():
    """A head saved with ``nn.Dropout`` layers loads into the zoo's head (no parameters)."""
    head = MLPHead(8, (6, 4), dropout=0.5)
    plain = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(4, 1))
    head.net.load_state_dict(plain.state_dict())
    x = torch.randn(3, 8)
    head.eval()
    assert torch.equal(head(x), plain.eval()(x))
    head.train()
    assert not torch.equal(head(torch.ones(500, 8)), head(torch.ones(500, 8)))
    assert "p=0.5" in repr(head)


@pytest.mark.parametrize("name", ["video2gif", "phdgifs", "phdgifs_full"])
def test_a_cpu_training_step_draws_no_bernoulli_mask(name):
    """The segment baselines' element-wise dropout on a CPU uses uniform draws, not torch's
    ``bernoulli_`` (about 4x slower there: at the quick preset it was half of Video2GIF's
    step); the loss still sees a dropped-out forward (it differs from eval's)."""
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=16, width_mult=0.25).train()
    batch = random_batch(2, 60, 16, 3, 4, seed=0)
    loss_fn = get_loss(model.card.default_loss)
    ops: set[str] = set()

    class Ops(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            ops.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    with Ops():
        loss_fn(model(batch), batch).backward()
    assert "rand" in ops and not any(op.startswith("bernoulli") for op in ops)
    with torch.no_grad():
        train_scores = model(batch).scores
        eval_scores = model.eval()(batch).scores
    assert not torch.equal(train_scores, eval_scores)
