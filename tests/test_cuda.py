"""On a CUDA device (skipped elsewhere; run on the GPU machine, docs/performance.md):

- a training step of every trainable model never waits for the device
  (``torch.cuda.set_sync_debug_mode("error")`` turns any wait into an error);
- the FCSN encoder's path (channels-last views, matmuls) gives the CPU's scores;
- training and evaluation run end to end under bf16 with pinned, bf16-collated batches
  from DataLoader workers.
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
    """Two lengths in the batch (FCSN/A-VHD run two groups), a cold-start user, collated
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
