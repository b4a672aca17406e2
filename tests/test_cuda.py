"""On a CUDA device (skipped elsewhere; run on the GPU machine, docs/performance.md):

- a training step of every trainable model never waits for the device
  (``torch.cuda.set_sync_debug_mode("error")`` turns any wait into an error);
- the FCSN encoder's path (channels-last views, matmuls) gives the CPU's scores;
- training and evaluation run end to end under bf16 with pinned, bf16-collated batches
  from DataLoader workers;
- every trainable model's step is captured and replayed as a CUDA graph
  (``TrainConfig.cuda_graphs``), training as the eager steps do, in the trainer too, also
  in a run paused without graphs and resumed with them.
"""

from __future__ import annotations

import math

import pytest
import torch
from training_support import SMALL, write_tiny_store

import highlightzoo as hz
from highlightzoo.batch import random_batch
from highlightzoo.losses import get_loss
from highlightzoo.training import TrainConfig, train
from highlightzoo.training.optim import make_adam
from highlightzoo.training.trainer import training_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

NARROW = {"fcsn": {"width_mult": 1 / 16}, "avhd": {"width_mult": 1 / 16},
          "video2gif": {"width_mult": 0.25}}
TRAINABLE = [n for n in hz.list_models() if hz.get_model_card(n).trainable]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", TRAINABLE)
def test_training_step_never_waits_for_the_device(name, precision):
    """Two lengths in the batch (FCSN/A-VHD run their masked forward), a cold-start user, collated
    host counts: forward, loss, backward and Adam, with any device sync an error."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=16, **NARROW.get(name, {})).to(device).train()
    batch = random_batch(3, 64, 16, 4, 4, seed=0, lengths=[64, 41, 64],
                         history_counts=[4, 0, 2]).to(device)
    optimizer = make_adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = get_loss(model.card.default_loss)

    def step() -> torch.Tensor:
        return training_step(model, model, loss_fn, optimizer, batch, device, precision)

    step()  # Adam's state, cuBLAS/cuDNN handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert math.isfinite(float(loss.detach()))


@pytest.mark.parametrize("name", ["fcsn", "avhd"])
def test_fcsn_encoder_on_cuda_gives_the_cpu_scores(name, monkeypatch):
    """Float32 without TF32, eval mode: the GPU path's scores equal the CPU path's."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=32, width_mult=1 / 8).eval()
    batch = random_batch(3, 90, 32, 4, 4, seed=1, lengths=[90, 57, 90])
    with torch.no_grad():
        cpu = model(batch).scores
        gpu = model.cuda()(batch.to("cuda")).scores.cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["fcsn", "prnet", "phdgifs"])
def test_bf16_training_and_evaluation_end_to_end(tmp_path, name):
    store = write_tiny_store(tmp_path / "tiny.h5")
    config = TrainConfig(model=name, data=str(store), out=str(tmp_path / "run"), epochs=1,
                         batch_size=4, eval_batch_size=3, protocol="steps", device="cuda",
                         precision="bf16", num_workers=2, model_overrides=SMALL.get(name, {}))
    result = train(config, quiet=True)
    assert result.test is not None and math.isfinite(result.test.map)


# ---------------------------------------------------------------- CUDA graphs (graphs.py)


def _graphed(name: str, precision: str, **overrides):
    """A model and its :class:`GraphedSteps` on the GPU (capturable Adam, no autocast cache)."""
    from highlightzoo.training.graphs import GraphedSteps

    device = torch.device("cuda")
    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=16, **{**NARROW.get(name, {}), **overrides})
    model = model.to(device).train()
    optimizer = make_adam([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                          capturable=True)
    loss_fn = get_loss(model.card.default_loss)

    def step(batch):
        return training_step(model, model, loss_fn, optimizer, batch, device, precision,
                             autocast_cache=False)

    return model, step, GraphedSteps(step, device)


def _stream(n: int) -> list:
    """Host batches of one signature (different features), pinned as the DataLoader gives."""
    return [random_batch(3, 64, 16, 4, 4, seed=s, lengths=[64, 41, 64],
                         history_counts=[4, 0, 2]).pin_memory() for s in range(n)]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", TRAINABLE)
def test_every_model_replays_its_training_step_from_a_cuda_graph(name, precision):
    """Two eager warm-ups, then a capture and replays: the graph is kept and every later
    batch of the signature is replayed, with finite, fresh losses."""
    _, _, steps = _graphed(name, precision)
    losses = [steps(b) for b in _stream(5)]
    assert (steps.stats.eager, steps.stats.replayed, steps.stats.graphs) == (2, 3, 1), \
        steps.stats.summary()
    assert losses[-1] is not losses[-2]
    assert all(math.isfinite(float(loss.detach())) for loss in losses)


@pytest.mark.parametrize("name", ["fcsn", "avhd"])
def test_replayed_steps_train_like_eager_steps_on_cuda(name, monkeypatch):
    """Float32 without TF32 or dropout: the replayed steps give the eager steps' losses, and
    move the weights where the eager steps move them. Not element-wise equal: the kernels
    chosen under capture round differently, and Adam turns a rounding-level gradient of a
    weight into an lr-sized step of either sign (seen on an H100: up to 5e-4 at lr 1e-3 in
    FCSN's last bias), so the test bounds the whole weight vector's distance to the eager one
    by 1 % of how far the eager steps moved it."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    stream = _stream(6)
    eager_model, eager_step, _ = _graphed(name, "fp32", dropout=0.0)
    start = torch.cat([p.detach().flatten() for p in eager_model.parameters()])
    eager_losses = [float(eager_step(b.to("cuda")).detach()) for b in stream]
    graph_model, _, steps = _graphed(name, "fp32", dropout=0.0)
    graph_losses = [float(steps(b).detach()) for b in stream]
    assert steps.stats.replayed == 4
    torch.testing.assert_close(graph_losses, eager_losses, rtol=1e-4, atol=1e-5)
    eager = torch.cat([p.detach().flatten() for p in eager_model.parameters()])
    graph = torch.cat([p.detach().flatten() for p in graph_model.parameters()])
    moved = (eager - start).norm()
    assert moved > 0
    assert (graph - eager).norm() <= 0.01 * moved, ((graph - eager).norm(), moved)


def test_trainer_with_cuda_graphs_end_to_end(tmp_path):
    store = write_tiny_store(tmp_path / "tiny.h5", steps=(70, 90))
    config = TrainConfig(model="fcsn", data=str(store), out=str(tmp_path / "run"), device="cuda",
                         batch_size=2, max_steps=12, eval_every=6, clip_len=32,
                         precision="bf16", cuda_graphs=True, num_workers=2,
                         model_overrides={"width_mult": 1 / 16})
    result = train(config, quiet=True)
    assert result.test is not None and math.isfinite(result.test.map)
    log = (tmp_path / "run" / "train.log").read_text()
    assert int(log.split("CUDA graphs: ")[-1].split(" of ")[0]) > 0, log


def test_a_run_paused_without_graphs_resumes_with_them(tmp_path):
    """``cuda_graphs`` may change on resume; the resumed Adam must be capturable (torch's
    ``load_state_dict`` would take the saved, non-capturable flag and capture would fail)."""
    store = write_tiny_store(tmp_path / "tiny.h5", steps=(70, 90))
    config = TrainConfig(model="fcsn", data=str(store), out=str(tmp_path / "run"), device="cuda",
                         batch_size=2, max_steps=12, eval_every=4, clip_len=32,
                         model_overrides={"width_mult": 1 / 16})
    train(config, quiet=True, stop_after=1)
    result = train(None, quiet=True, resume=tmp_path / "run", overrides={"cuda_graphs": True})
    assert result.test is not None and math.isfinite(result.test.map)
    log = (tmp_path / "run" / "train.log").read_text()
    assert int(log.split("CUDA graphs: ")[-1].split(" of ")[0]) > 0, log


def test_fcsn_kernels_are_channels_last_on_cuda_and_contiguous_back_on_the_cpu():
    """The block convs' kernels follow the device (FCSNEncoder._apply), with the same values."""
    from highlightzoo.models.components.fcsn import FCSNEncoder

    torch.manual_seed(0)
    model = hz.create_model("fcsn", feature_dim=16, width_mult=1 / 16)
    before = [p.detach().clone() for p in model.parameters()]
    convs = next(m for m in model.modules() if isinstance(m, FCSNEncoder)).block_convs()
    model.cuda()
    assert all(c.weight.unsqueeze(2).is_contiguous(memory_format=torch.channels_last)
               and not c.weight.is_contiguous() for c in convs)
    model.cpu()
    assert all(c.weight.is_contiguous() for c in convs)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
