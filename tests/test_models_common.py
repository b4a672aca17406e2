"""The model contract, checked for every registered model (parametrised over list_models()).

Forward on random batches (T in {1, 7, 256, 1000}, history sizes {0, 1, 37}),
padding invariance, gradients to every parameter, CPU determinism with a
seed, and a few optimisation steps lowering the card's default loss.
Models are built small: ``feature_dim = 8`` and a narrow size when the builder
has one (PR-Net: ``width`` channels; the FCSN family and segment MLPs: ``width_mult``).
"""

from __future__ import annotations

import inspect

import pytest
import torch

import highlightzoo as hz
from highlightzoo.batch import Batch, ModelOutput, random_batch
from highlightzoo.losses import get_loss
from highlightzoo.models import registry

FEATURE_DIM = 8
MODELS = hz.list_models()


def small_overrides(name: str) -> dict:
    """A narrow size for builders that take one: ``width`` (channels) or ``width_mult``."""
    params = inspect.signature(registry._REGISTRY[name][1]).parameters
    if "width_mult" in params:
        return {"width_mult": 1 / 32}
    return {"width": 8} if "width" in params else {}


def build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return hz.create_model(name, feature_dim=FEATURE_DIM, **small_overrides(name))


def trainable(model: torch.nn.Module) -> bool:
    """Whether ``model`` has a parameter to optimise (the floors have none)."""
    return any(p.requires_grad for p in model.parameters())


def check_output(out: ModelOutput, batch: Batch, name: str) -> None:
    assert isinstance(out, ModelOutput), name
    assert out.scores.shape == batch.labels.shape, name
    real = out.scores[batch.video_mask]
    assert torch.isfinite(real).all(), f"{name}: non-finite scores"
    for key, value in out.extras.items():
        assert value.shape[0] == len(batch), f"{name}: extra {key} has the wrong batch size"
        if value.is_floating_point():
            assert not torch.isnan(value).any(), f"{name}: NaN in extra {key}"


@pytest.mark.parametrize("name", MODELS)
def test_forward_any_length_and_history_size(name):
    model = build(name).eval()
    with torch.no_grad():
        for steps in (1, 7, 256, 1000):
            for history in (0, 1, 37):
                counts = [history, max(history - 1, 0)]
                batch = random_batch(
                    2, steps, FEATURE_DIM, history, 6,
                    lengths=[steps, max(steps // 2, 1)], history_counts=counts,
                    seed=steps + history,
                )  # fmt: skip
                check_output(model(batch), batch, f"{name} T={steps} n={history}")


@pytest.mark.parametrize("name", MODELS)
def test_padding_invariance(name):
    """A video's scores are the same alone and padded in a batch with a longer one (1e-5)."""
    model = build(name).eval()
    batch = random_batch(
        3, 90, FEATURE_DIM, 9, 6, lengths=[37, 90, 5], history_counts=[4, 9, 0], seed=3
    )
    with torch.no_grad():
        together = model(batch).scores
        for row in range(3):
            single = batch.row(row)
            got = model(single).scores[0]
            want = together[row, : single.video.shape[1]]
            assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (
                f"{name}: row {row} differs alone vs padded, max "
                f"{(got - want).abs().max().item():.2e}"
            )


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name):
    """Every parameter gets a finite gradient from the default loss, and a zero one only
    when the loss does not depend on it (checked by moving it: e.g. the last bias of a
    scorer trained with a pairwise ranking loss cancels out of every pair)."""
    model = build(name).train()
    loss_fn = get_loss(model.card.default_loss)
    # padded rows and a cold-start row: padding once produced NaN gradients (0 * NaN)
    batch = random_batch(
        3, 64, FEATURE_DIM, 5, 6, lengths=[64, 41, 30], history_counts=[5, 3, 0], seed=4
    )

    def loss_now() -> torch.Tensor:
        torch.manual_seed(0)  # the same dropout masks every time
        return loss_fn(model(batch), batch)

    loss = loss_now()
    assert torch.isfinite(loss)
    if not trainable(model):
        return  # a floor: the loss can be computed (for validation logs), nothing to train
    loss.backward()
    params = dict(model.named_parameters())
    unused = [n for n, p in params.items() if p.requires_grad and p.grad is None]
    assert not unused, f"{name}: parameters outside the loss graph: {unused}"
    bad = [n for n, p in params.items() if not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradients in {bad}"
    for n in [n for n, p in params.items() if not p.grad.abs().sum() > 0]:
        with torch.no_grad():
            params[n].add_(0.5)
            moved = loss_now()
            params[n].sub_(0.5)
        assert torch.allclose(moved, loss, rtol=1e-5, atol=1e-6), (
            f"{name}: {n} gets no gradient but the loss depends on it"
        )


def graph_nodes(loss: torch.Tensor) -> set[str]:
    """The type names of every node in ``loss``'s autograd graph."""
    seen, stack, names = set(), [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(fn for fn, _ in node.next_functions)
    return names


@pytest.mark.parametrize("name", MODELS)
def test_no_in_place_op_on_a_view_in_the_training_graph(name):
    """An in-place op on a view (e.g. an in-place ReLU after a transpose) makes autograd
    copy the whole base tensor back and forth (``CopySlices``): extra kernels and memory in
    every backward pass, which a GPU step pays for (docs/performance.md, "Host time per
    step"). Equal and mixed lengths, with and without history."""
    model = build(name).train()
    if not trainable(model):
        pytest.skip(f"{name} has no trainable parameters")
    loss_fn = get_loss(model.card.default_loss)
    for lengths, history in (([48, 48], [4, 4]), ([48, 30], [4, 0])):
        batch = random_batch(2, 48, FEATURE_DIM, 4, 5, lengths=lengths, history_counts=history,
                             seed=3)
        nodes = graph_nodes(loss_fn(model(batch), batch))
        assert "CopySlices" not in nodes, f"{name}: an in-place op on a view, lengths {lengths}"


@pytest.mark.parametrize("name", MODELS)
def test_deterministic_on_cpu_with_a_seed(name):
    batch = random_batch(2, 40, FEATURE_DIM, 4, 6, seed=5)
    outs = []
    for _ in range(2):
        model = build(name, seed=7).train()  # dropout too must follow the seed
        torch.manual_seed(11)
        outs.append(model(batch).scores)
    assert torch.equal(outs[0], outs[1]), name
    other = build(name, seed=8)
    if not other.state_dict():
        return  # no parameters or buffers: nothing for the seed to change
    assert not torch.equal(outs[0], other.eval()(batch).scores), f"{name}: the seed changes nothing"


@pytest.mark.parametrize("name", MODELS)
def test_a_few_optimisation_steps_lower_the_loss(name):
    model = build(name)
    if not trainable(model):
        pytest.skip(f"{name} has no trainable parameters")
    loss_fn = get_loss(model.card.default_loss)
    batch = random_batch(2, 32, FEATURE_DIM, 3, 4, lengths=[32, 20], seed=6)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return loss_fn(model(batch), batch).item()

    before = eval_loss()
    torch.manual_seed(0)
    for _ in range(15):
        model.train()
        optimiser.zero_grad()
        loss_fn(model(batch), batch).backward()
        optimiser.step()
    after = eval_loss()
    assert after < before, f"{name}: loss {before:.4f} -> {after:.4f}"


def test_a_batch_row_is_that_sample_alone_cut_to_its_real_extents():
    """``Batch.row``: the row's video cut to its real steps and its history to its real
    segments and their longest real segment, every other field that row's; no host counts."""
    batch = random_batch(3, 20, 4, 5, 6, lengths=[7, 20, 3], history_counts=[2, 5, 0], seed=1)
    batch.history_mask[0, :2] = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]]).bool()
    row = batch.row(0)
    assert row.video.shape == (1, 7, 4) and torch.equal(row.video[0], batch.video[0, :7])
    assert row.history.shape == (1, 2, 4, 4)
    assert torch.equal(row.history_mask[0], batch.history_mask[0, :2, :4])
    assert torch.equal(row.history_video[0], batch.history_video[0, :2])
    assert row.labels.shape == (1, 7) and row.rate.shape == (1,) and row.host is None
    assert (row.user_ids, row.video_ids) == (batch.user_ids[:1], batch.video_ids[:1])
    last = batch.row(-1)
    assert last.video.shape == (1, 3, 4) and last.history.shape == (1, 0, 0, 4)
    assert last.video_ids == batch.video_ids[2:]
    with pytest.raises(IndexError, match="row 3 of a batch of 3"):
        batch.row(3)
