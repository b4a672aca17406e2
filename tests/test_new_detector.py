"""docs/new-detector.md: its Python code blocks run as written, and the model they build
meets the zoo's model contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import highlightzoo as hz
from highlightzoo.batch import random_batch
from highlightzoo.models import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "new-detector.md"
NAME = "attentive_mlp"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture
def example():
    """Run the model block (registers the detector); unregister afterwards."""
    namespace: dict = {"__name__": "new_detector_example"}
    exec(compile(python_blocks()[0], f"{DOC}:block1", "exec"), namespace)
    yield namespace
    registry._REGISTRY.pop(NAME, None)


def test_doc_has_three_python_blocks_under_100_lines():
    blocks = python_blocks()
    assert len(blocks) == 3
    assert sum(len(b.strip().splitlines()) for b in blocks) < 100


def test_example_model_registers_and_meets_the_contract(example):
    assert NAME in hz.list_models()
    exec(compile(python_blocks()[1], f"{DOC}:block2", "exec"), dict(example))
    model = hz.create_model(NAME, feature_dim=8, width=8).eval()
    batch = random_batch(3, 40, 8, 5, 4, lengths=[40, 23, 1], history_counts=[5, 2, 0], seed=2)
    with torch.no_grad():
        together = model(batch).scores
        for row, steps in enumerate((40, 23, 1)):
            alone = random_batch(1, steps, 8, 0)
            alone.video = batch.video[row : row + 1, :steps]
            segments = int(batch.history_segment_mask[row].sum())
            alone.history = batch.history[row : row + 1, :segments]
            alone.history_mask = batch.history_mask[row : row + 1, :segments]
            alone.history_video = batch.history_video[row : row + 1, :segments]
            got = model(alone).scores[0]
            assert torch.allclose(got, together[row, :steps], atol=1e-5)


def test_example_trains_and_evaluates_with_the_trainer(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = dict(example)
    exec(compile(python_blocks()[2], f"{DOC}:block3", "exec"), namespace)
    results = namespace["results"]
    assert results["model"] == NAME and results["steps_run"] == 3 * results["steps_per_epoch"]
    assert 0.0 <= results["map"] <= 100.0 and results["n_pairs"] > 0
    assert (namespace["run"] / "checkpoints").is_dir()
