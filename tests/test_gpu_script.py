"""benchmarks/gpu/run.sh --smoke: the one-shot GPU measurement runs end to end on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_script_smoke_writes_every_part(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks/gpu/run.sh"), str(out), "--smoke"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parts = (out / "parts.txt").read_text().split("\n")
    assert [p.split()[0] for p in parts if p] == ["env", "fcsn8192", "fcsn8192_compile",
                                                  "reference", "models", "prnet",
                                                  "profile", "compile", "bench"]
    assert all("exit=0" in p for p in parts if p), parts
    env = json.loads((out / "env.json").read_text())
    assert env["smoke"] is True and env["matmul_peak_tflops"] > 0 and "threads" in env
    models = json.loads((out / "models.json").read_text())["rows"]
    assert {r["model"] for r in models} >= {"prnet", "fcsn", "avhd", "video2gif", "phdgifs"}
    assert all(r["steps_per_s"] > 0 and r["flops_per_step"] >= 0 for r in models)
    bench = json.loads((out / "bench.json").read_text())
    assert bench["per_run_s"] and bench["extrapolated_full_preset_s"] > 0
    fcsn = json.loads((out / "fcsn8192.json").read_text())["rows"]
    assert [r["video_dtype"] for r in fcsn] == ["float32", "bfloat16"]
    assert all(r["clip_steps_per_s"] > 0 and "graph_error" not in r for r in fcsn), fcsn
    # the graph rows went through the trainer's GraphedSteps (a CPU stand-in on a CPU)
    assert all(r["graph_seconds_per_step"] > 0 and r["graph_host_seconds_per_step"] > 0
               for r in fcsn), fcsn
    compiled = json.loads((out / "fcsn8192_compile.json").read_text())["rows"]
    assert compiled[0]["compiled"] and compiled[0]["compile_s"] > 0
    reference = json.loads((out / "reference.json").read_text())["rows"]
    assert reference and all(r["ratio_fp32"] > 0 for r in reference)
    compiled = json.loads((out / "compile.json").read_text())["rows"]
    assert [r["compiled"] for r in compiled] == [False, True] and compiled[1]["compile_s"] > 0
    profiled = json.loads((out / "profile.json").read_text())["profiled"]
    assert [p["model"] for p in profiled] == ["fcsn", "prnet"]
    assert "fcsn" in (out / "profile.txt").read_text() and "device kernels" in (out / "profile.txt").read_text()
    report = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/report.py"), str(out)],
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    text = (out / "gpu.md").read_text()
    assert "not measured" not in text and "| fcsn | forward |" in text and "compile s" in text
    assert "CUDA graph, batch copied in from pinned host memory)" in text


def test_gpu_script_runs_only_the_parts_asked_for(tmp_path):
    out = tmp_path / "gpu"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks/gpu/run.sh"), str(out), "--smoke"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PARTS": "env"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "parts.txt").read_text().split()[:2] == ["env", "exit=0"]
    assert len((out / "parts.txt").read_text().splitlines()) == 1
    assert not (out / "models.json").exists()


def test_fcsn8192_eager_rows_carry_the_label_of_the_code_measured(tmp_path):
    """The side-by-side part (run with PYTHONPATH on older code) names that code in its rows,
    and the report shows it."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/measure.py"), "fcsn8192_eager",
                           str(tmp_path), "--smoke", "--label", "abc1234"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "fcsn8192_eager.json").read_text())["rows"]
    assert [r["code"] for r in rows] == ["abc1234"] and "graph_seconds_per_step" not in rows[0]
    subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/report.py"), str(tmp_path)], check=True,
                   capture_output=True, timeout=60)
    assert "fcsn (float32 features, code abc1234)" in (tmp_path / "gpu.md").read_text()


def test_fcsn8192_nhwc_part_moves_the_block_conv_weights_and_changes_no_value(tmp_path):
    """The experiment part: its rows say so, the report names it, and moving the weights to
    NHWC memory leaves a training step's values as they were (up to float rounding)."""
    import importlib.util

    import torch

    import highlightzoo as hz
    from highlightzoo.batch import random_batch
    from highlightzoo.losses import get_loss
    from highlightzoo.training.optim import make_adam
    from highlightzoo.training.trainer import training_step

    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/measure.py"), "fcsn8192_nhwc",
                           str(tmp_path), "--smoke"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "fcsn8192_nhwc.json").read_text())["rows"]
    assert [(r["conv_weights"], r["video_dtype"]) for r in rows] == [("nhwc", "bfloat16")]
    assert rows[0]["graph_seconds_per_step"] > 0
    subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/report.py"), str(tmp_path)], check=True,
                   capture_output=True, timeout=60)
    assert "conv weights in NHWC memory" in (tmp_path / "gpu.md").read_text()

    spec = importlib.util.spec_from_file_location("gpu_measure", ROOT / "benchmarks/gpu/measure.py")
    measure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measure)
    batch = random_batch(2, 40, 12, 3, 4, seed=0)
    losses, grads = [], []
    for moved in (False, True):
        torch.manual_seed(0)
        model = hz.create_model("fcsn", feature_dim=12, width_mult=1 / 16).eval()  # no dropout
        if moved:
            assert measure.nhwc_conv_weights(model) == 12  # 2+2+3+3+3 block convs, less the first
            encoder = next(m for m in model.modules() if type(m).__name__ == "FCSNEncoder")
            kernel = encoder.to_pool4[1][0].weight.unsqueeze(2)  # the (O, I, 1, k) view conv_steps passes on
            assert kernel.is_contiguous(memory_format=torch.channels_last)
        optimizer = make_adam(model.parameters(), lr=1e-3)
        loss_fn = get_loss(model.card.default_loss)
        cpu = torch.device("cpu")
        losses.append([float(training_step(model, model, loss_fn, optimizer, batch, cpu, "fp32").detach())
                       for _ in range(2)])
        grads.append([p.grad.clone() for p in model.parameters()])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # float rounding only
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(*grads, strict=True))
