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
    assert "fcsn (float32 features, conv weights contiguous, code abc1234)" in \
        (tmp_path / "gpu.md").read_text()


def test_fcsn8192_contiguous_part_sets_and_reports_the_kernel_layout(tmp_path):
    """The side-by-side part: its rows carry the layout the step really ran with (read off
    the model, not assumed), and the report names it; the default rows carry theirs too."""
    for part in ("fcsn8192_contiguous", "fcsn8192_eager"):
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/measure.py"), part,
                               str(tmp_path), "--smoke"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "fcsn8192_contiguous.json").read_text())["rows"]
    assert [(r["conv_weights"], r["video_dtype"]) for r in rows] == [("contiguous", "bfloat16")]
    assert rows[0]["graph_seconds_per_step"] > 0
    # on a CPU the library keeps the kernels contiguous (channels-last is for CUDA devices)
    assert json.loads((tmp_path / "fcsn8192_eager.json").read_text())["rows"][0]["conv_weights"] \
        == "contiguous"
    subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/report.py"), str(tmp_path)], check=True,
                   capture_output=True, timeout=60)
    assert "conv weights contiguous" in (tmp_path / "gpu.md").read_text()


def test_prenormed_part_times_the_compiled_step_without_the_input_norm(tmp_path):
    """The named-only experiment: the compiled FCSN step with the model's L2 normalisation
    off (read off the model, not assumed), labelled as such in the report."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/measure.py"),
                           "fcsn8192_compile_prenormed", str(tmp_path), "--smoke"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "fcsn8192_compile_prenormed.json").read_text())["rows"]
    assert [(r["in_step_l2_norm"], r["compiled"]) for r in rows] == [(False, True)]
    assert rows[0]["seconds_per_step"] > 0 and rows[0]["graph_seconds_per_step"] > 0
    subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/report.py"), str(tmp_path)], check=True,
                   capture_output=True, timeout=60)
    assert "no L2 norm in the step, compiled" in (tmp_path / "gpu.md").read_text()


def test_profile_compile_part_profiles_the_compiled_step(tmp_path):
    """The named-only part: FCSN's step with the forward through torch.compile, profiled per
    op (on a CPU at the smoke size)."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/measure.py"), "profile_compile",
                           str(tmp_path), "--smoke"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (tmp_path / "profile_compile.txt").read_text()
    assert table.startswith("## fcsn") and "compiled, 3 training steps" in table
    assert "Self CPU" in table


def test_the_report_still_reads_the_earlier_nhwc_experiment_rows(tmp_path):
    """Committed result folders hold fcsn8192_nhwc.json (the experiment before the layout
    became the library's choice on a GPU); the report keeps labelling them."""
    row = {"model": "fcsn", "video_dtype": "bfloat16", "conv_weights": "nhwc", "precision": "bf16",
           "feature_dim": 16, "batch": 2, "steps": 32, "seconds_per_step": 0.01, "steps_per_s": 100.0,
           "clip_steps_per_s": 6400.0, "achieved_tflops": 0.001, "max_memory_bytes": None,
           "target_clip_steps_per_s": 10e6}
    (tmp_path / "fcsn8192_nhwc.json").write_text(json.dumps({"device": "cpu", "rows": [row]}))
    subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/report.py"), str(tmp_path)], check=True,
                   capture_output=True, timeout=60)
    assert "fcsn (bfloat16 features, conv weights in NHWC memory)" in (tmp_path / "gpu.md").read_text()


def test_trainer_graphs_part_trains_with_graphs_off_and_on(tmp_path):
    """The named-only part: the trainer on a synthesised world, FCSN and PR-Net, graphs off
    and on (on a CPU both run eagerly), one row each, and its report section."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/measure.py"), "trainer_graphs",
                           str(tmp_path), "--smoke"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "trainer_graphs.json").read_text())["rows"]
    assert [(r["model"], r["cuda_graphs"]) for r in rows] == [
        ("fcsn", False), ("fcsn", True), ("prnet", False), ("prnet", True), ("prnet", False),
        ("prnet", True)]
    assert all(r["steps_run"] == 6 and r["training_time_s"] > 0 and "error" not in r for r in rows)
    subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu/report.py"), str(tmp_path)], check=True,
                   capture_output=True, timeout=60)
    assert "| prnet | True | fp32 | 6 |" in (tmp_path / "gpu.md").read_text()
