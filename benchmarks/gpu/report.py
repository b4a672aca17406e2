"""Render the JSON files of one ``benchmarks/gpu/run.sh`` output folder as ``gpu.md``.

    python benchmarks/gpu/report.py docs/results/gpu/h200-2026-11-27

Every number in ``gpu.md`` is read from the folder's JSON files (written by
``measure.py`` on the GPU machine); a part whose file is missing is listed as
not measured. The file is written to a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def _load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _env(env: dict) -> list[str]:
    return [f"Device: {env.get('device_name')} ({env.get('nvidia_smi')}), torch {env.get('torch')}, "
            f"CUDA {env.get('cuda')}; bf16 matmul peak measured here "
            f"{env['matmul_peak_tflops']:.0f} TFLOP/s (8192^3 product).", ""]


def _reference(data: dict) -> list[str]:
    rows = [[r["model"], r["mode"], _ms(r["seconds"]["reference"]), _ms(r["seconds"]["zoo"]),
             _ms(r["seconds"]["zoo_bf16"]) if "zoo_bf16" in r["seconds"] else "-",
             f"{r['ratio_fp32']:.2f}x", f"{r['ratio_bf16']:.2f}x" if r["ratio_bf16"] else "-"]
            for r in data["rows"]]
    return ["## Against the reference code (8192-d, batch 1, T = 1,024; median of 10 interleaved)",
            "", *_table(["model", "mode", "reference ms (fp32)", "zoo ms (fp32)", "zoo ms (bf16)",
                         "reference/zoo fp32", "reference/zoo bf16"], rows)]


def _variant_label(row: dict) -> str:
    """``fcsn (bfloat16 features, compiled)``: the model and how its step ran."""
    words = []
    variant = row.get("variant") or {}  # exploratory rows: the encoder's layout
    if "time_major" in variant:
        words.append("time-major" if variant["time_major"] else "conv layers")
    if variant.get("convs") == "cudnn":
        words.append("cuDNN k3 convs on views")
    dtype = row.get("video_dtype") or variant.get("video_dtype")
    if dtype and (dtype != "float32" or "target_clip_steps_per_s" in row):
        words.append(f"{dtype} features")
    if row.get("conv_weights") == "nhwc":
        words.append("conv weights in NHWC memory")
    elif row.get("conv_weights") == "contiguous" and "target_clip_steps_per_s" in row:
        words.append("conv weights contiguous")
    if row.get("in_step_l2_norm") is False:
        words.append("no L2 norm in the step")
    if row.get("compiled"):
        words.append("compiled")
    if variant.get("graphed") or row.get("graphed"):
        words.append("CUDA graph")
    if row.get("graph_source") == "host":
        words.append("batch copied in from pinned host memory")
    if row.get("code"):
        words.append(f"code {row['code']}")
    return f"{row['model']} ({', '.join(words)})" if words else row["model"]


def _with_graph_rows(rows: list[dict]) -> list[dict]:
    """Each row that was also replayed as a CUDA graph, followed by that replay's row."""
    out = []
    for r in rows:
        out.append(r)
        if "graph_seconds_per_step" in r:
            s = r["graph_seconds_per_step"]
            out.append({**r, "graphed": True, "seconds_per_step": s, "steps_per_s": 1 / s,
                        "clip_steps_per_s": r["graph_clip_steps_per_s"],
                        "achieved_tflops": r["graph_achieved_tflops"], "max_memory_bytes": None})
            if "graph_host_seconds_per_step" in r:  # the trainer's data path (graphs.py)
                h = r["graph_host_seconds_per_step"]
                out.append({**out[-1], "graph_source": "host", "seconds_per_step": h,
                            "steps_per_s": 1 / h, "clip_steps_per_s": r["graph_host_clip_steps_per_s"],
                            "achieved_tflops": r["graph_achieved_tflops"] * s / h})
        elif "graph_error" in r:
            out.append({**r, "graphed": True, "error": r["graph_error"]})
    return out


def _step_rows(rows: list[dict], peak: float | None, extra: tuple[str, ...] = ()) -> list[list[str]]:
    out = []
    for r in rows:
        if "error" in r:
            out.append([_variant_label(r), "-", "-", "-", *("-" for _ in extra),
                        f"failed: {r['error'][:120]}", "-", "-", "-", "-", "-"])
            continue
        share = f"{100 * r['achieved_tflops'] / peak:.2f} %" if peak else "-"
        memory = f"{r['max_memory_bytes'] / 2**20:.0f}" if r.get("max_memory_bytes") else "-"
        out.append([_variant_label(r), str(r["feature_dim"]), f"{r['batch']} x {r['steps']}", r["precision"],
                    *(str(r.get(k)) for k in extra), _ms(r["seconds_per_step"]),
                    f"{r['steps_per_s']:.1f}", f"{r['clip_steps_per_s'] / 1e6:.3f}",
                    f"{r['achieved_tflops']:.2f}", share, memory])
    return out


def _trainer_graphs(data: dict | None) -> list[str]:
    """The trainer with ``TrainConfig.cuda_graphs`` off and on, one row per run (a part
    run only when named: no section without it)."""
    if not data:
        return []
    lines = ["## TrainConfig.cuda_graphs in the trainer (same world, model, seed and budget)", ""]
    rows = [[r["model"], str(r["cuda_graphs"]), r["precision"], "-", "-", "-", "-",
             f"failed: {r['error'][:160]}"] if "error" in r else
            [r["model"], str(r["cuda_graphs"]), r["precision"], str(r["steps_run"]),
             f"{r['training_time_s']:.1f}", f"{r['steps_run'] / r['training_time_s']:.1f}",
             f"{r['best_val_map']:.2f}", r["graphs_log"] or "-"] for r in data["rows"]]
    return [*lines, f"World: {data['world']}.", "",
            *_table(["model", "cuda_graphs", "precision", "steps", "training s (steps + validations)",
                     "steps/s", "best val mAP", "trainer's graph count"], rows)]


STEP_HEADER = ["model", "dim", "batch", "precision", "ms/step", "steps/s", "M clip-steps/s",
               "TFLOP/s", "of peak", "peak MiB"]


def render(folder: Path) -> str:
    """``gpu.md`` for one output folder."""
    env = _load(folder, "env")
    peak = env["matmul_peak_tflops"] if env else None
    lines = [f"# GPU measurements: {folder.name}", "",
             "Generated by `python benchmarks/gpu/report.py` from the JSON files beside this one "
             "(written by `benchmarks/gpu/run.sh` on the GPU machine). Training steps are the "
             "trainer's own `training_step` (forward, default loss, backward, fused Adam); "
             "TFLOP/s = forward + backward FLOPs (torch.utils.flop_counter) / step time.", ""]
    lines += _env(env) if env else ["env: not measured", ""]
    ref = _load(folder, "reference")
    lines += _reference(ref) if ref else ["## Against the reference code: not measured", ""]
    big_rows: list[dict] = []
    for part in ("fcsn8192_eager", "fcsn8192", "fcsn8192_nhwc", "fcsn8192_contiguous",
                 "fcsn8192_compile", "fcsn8192_compile_nhwc", "fcsn8192_compile_contiguous",
                 "fcsn8192_compile_prenormed"):
        data = _load(folder, part)
        big_rows += data.get("rows", [data]) if data else []  # an older folder: a single row
    prof = _load(folder, "profile")
    lines += ["## FCSN at 8192-d, bf16, batch 128 x 256 (target: 10 M clip-steps/s on one H100)", ""]
    # one row per variant (an older folder holds a single row)
    rows = _with_graph_rows(big_rows) + [  # older folders: cuDNN autotuner rows
        {**r, "model": f"fcsn, cudnn.benchmark={r['cudnn_benchmark']}"} for r in (prof or {}).get("rows", [])]
    lines += _table(STEP_HEADER, _step_rows(rows, peak)) if rows else ["not measured", ""]
    models = _load(folder, "models")
    lines += ["## Every trainable model, 64-d (FCSN, A-VHD, Video2GIF at width 1/4)", ""]
    lines += _table(STEP_HEADER, _step_rows(models["rows"], peak)) if models else ["not measured", ""]
    prnet = _load(folder, "prnet")
    lines += ["## PR-Net at 64-d, 512-d and 4,096-d (width = feature dim)", ""]
    lines += _table(STEP_HEADER, _step_rows(prnet["rows"], peak)) if prnet else ["not measured", ""]
    comp = _load(folder, "compile")
    lines += ["## torch.compile against eager (TrainConfig.compile)", ""]
    if comp:
        rows = [[r["model"], r["precision"], str(r["compiled"]), _ms(r["seconds_per_step"]),
                 f"{r['compile_s']:.1f}" if r["compile_s"] else "-"] for r in comp["rows"]]
        lines += _table(["model", "precision", "compiled", "ms/step", "compile s"], rows)
    else:
        lines += ["not measured", ""]
    lines += _trainer_graphs(_load(folder, "trainer_graphs"))
    bench = _load(folder, "bench")
    lines += ["## The standard preset: a timed sample", ""]
    if bench:
        rows = [[run, f"{s:.1f}"] for run, s in bench["per_run_s"].items()]
        lines += _table(["run", "seconds"], rows)
        lines += [f"Mean {bench['mean_run_s']:.1f} s per run x {bench['runs_in_full_preset']} runs in "
                  f"the whole preset = about {bench['extrapolated_full_preset_s'] / 60:.0f} min "
                  f"(an extrapolation from the models sampled: {', '.join(bench['models'])}).", ""]
    else:
        lines += ["not measured", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    text = render(args.folder)
    tmp = args.folder / ".gpu.md.tmp"
    tmp.write_text(text)
    os.replace(tmp, args.folder / "gpu.md")
    print(f"wrote {args.folder / 'gpu.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
