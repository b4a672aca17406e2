"""The GPU measurements of benchmarks/gpu/run.sh, one JSON file per part under OUT.

Parts (each can run alone: ``python benchmarks/gpu/measure.py PART OUT [--smoke]``):

- ``env``: device, driver, torch/CUDA versions, the bf16 matmul peak measured on this card
  (a large bf16 matmul, TFLOP/s) -> ``env.json``.
- ``models``: per registered model, a training step (forward + default loss + backward +
  Adam) at batch 16 x 256 steps, 64-d (the benchmark worlds) in fp32 and bf16: steps/s,
  clip-steps/s, forward+backward FLOPs (torch.utils.flop_counter) and achieved FLOP/s
  against the measured peak -> ``models.json``.
- ``fcsn8192``: FCSN at the reference width on 8192-d features, bf16, batch 128 x 256
  (issue target: >= 10 M clip-steps/s on one H100), with float32 and bf16 features, eager and
  replayed as one CUDA graph -> ``fcsn8192.json``; ``fcsn8192_eager``: eager with float32
  features only (runs on older code too, for a side-by-side); ``fcsn8192_compile``: through
  ``torch.compile``; ``fcsn8192_contiguous`` / ``fcsn8192_compile_contiguous``: with the
  block-conv kernels contiguous, the layout before they were channels-last on a GPU;
  ``fcsn8192_compile_prenormed``: compiled, without the input's L2 norm in the step (the
  most that norms computed in the data loader could save).
- ``trainer_graphs``: ``TrainConfig.cuda_graphs`` off and on in the trainer (FCSN, PR-Net on a
  slice of the quick world) -> ``trainer_graphs.json``.
- ``prnet``: PR-Net training at batch 16 x 256 at 64-d, 512-d, 4,096-d, fp32 and bf16, with
  peak memory -> ``prnet.json``.
- ``reference``: FCSN and A-VHD at the reference configuration, the zoo (fp32 and bf16)
  against the reference's layer list (fp32), forward and training step -> ``reference.json``.
- ``compile``: training step eager vs ``torch.compile`` for PR-Net, FCSN and PHD-GIFs at
  batch 16 x 256, 64-d, with the compilation time -> ``compile.json``.
- ``profile``: per-op tables (and device kernel counts) of the training step of FCSN at 8192-d
  bf16 (batch 128 x 256; float32 and bf16 features) and of PR-Net at 64-d -> ``profile.txt``.
  ``profile_contiguous``: FCSN's table with the contiguous kernels -> ``profile_contiguous.txt``.
- ``bench``: the standard preset (the converged rules) for FCSN and PR-Net and one seed,
  timed per run, with the extrapolation to the whole preset -> ``bench/`` + ``bench.json``.

``--smoke`` shrinks every size so the script runs on a CPU in seconds (CI runs it so it
cannot rot); smoke numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

LABEL = ""  # --label: which code the FCSN 8192-d rows measured, when not this checkout


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _write(out: Path, name: str, data: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, out / name)


def _timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` after one warm-up."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def matmul_peak(device: torch.device, smoke: bool) -> float:
    """bf16 (GPU) or fp32 (CPU) matmul TFLOP/s on this device."""
    n = 256 if smoke else 8192
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = _timed(lambda: a @ b, device, 3 if smoke else 20)
    return 2 * n**3 / seconds / 1e12


def part_env(out: Path, smoke: bool) -> None:
    from highlightzoo.provenance import environment

    device = _device()
    info = environment(device)
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    info["cuda"] = torch.version.cuda
    info["matmul_peak_tflops"] = matmul_peak(device, smoke)
    info["smoke"] = smoke
    info["python_executable"] = sys.executable
    info["machine"] = platform.machine()
    _write(out, "env.json", info)


def set_conv_weights(model: torch.nn.Module, layout: str) -> int:
    """Store the FCSN encoder's block-conv kernels ``"nhwc"`` (channels-last, the library's
    choice on a GPU: ``set_kernel_layout``) or ``"contiguous"`` (its choice elsewhere, and
    the only layout before it) whatever the device; returns how many convs there are."""
    from highlightzoo.models.components.fcsn import FCSNEncoder
    from highlightzoo.models.components.steps import set_kernel_layout

    convs = [c for m in model.modules() if isinstance(m, FCSNEncoder) for c in m.block_convs()]
    for conv in convs:
        set_kernel_layout(conv, "channels_last" if layout == "nhwc" else "contiguous")
    return len(convs)


def conv_weights_of(model: torch.nn.Module) -> str | None:
    """``"nhwc"`` or ``"contiguous"``: how the FCSN encoder's block-conv kernels are stored
    (None: no FCSN encoder, or code from before ``block_convs``)."""
    encoder = next((m for m in model.modules() if type(m).__name__ == "FCSNEncoder"), None)
    if encoder is None or not hasattr(encoder, "block_convs"):
        return None
    weight = encoder.block_convs()[0].weight
    return "nhwc" if weight.permute(0, 2, 1).is_contiguous() and not weight.is_contiguous() \
        else "contiguous"


def _training_setup(name: str, kwargs: dict, b: int, t: int, d: int, device: torch.device,
                    video_dtype: str | None = None, conv_weights: str | None = None,
                    in_step_norm: bool = True):
    """Model, default loss, the trainer's Adam and a random batch (10 history segments of 8
    steps per user), seeded, on ``device``; ``video_dtype``: the features' dtype (e.g.
    "bfloat16", as the trainer moves them under bf16), float32 when None; ``conv_weights``:
    :func:`set_conv_weights` before the optimiser sees the parameters (None: the library's
    layout for the device); ``in_step_norm=False``: an FCSN-based model's step without its
    L2 normalisation of the input (an experiment: what moving it out of the step, into the
    data loader as the reference does, can save at most)."""
    import highlightzoo as hz
    from highlightzoo.batch import random_batch
    from highlightzoo.losses import get_loss
    from highlightzoo.training.optim import make_adam

    torch.manual_seed(0)
    model = hz.create_model(name, feature_dim=d, **kwargs).to(device).train()
    if conv_weights and not set_conv_weights(model, conv_weights):
        raise RuntimeError(f"{name} has no FCSN encoder conv whose weights could be laid out")
    if not in_step_norm:
        model.net.l2_normalize = False  # FCSN and A-VHD: the flag of their FCSN network
    loss_fn = get_loss(model.card.default_loss)
    optimizer = make_adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = random_batch(b, t, d, 10, 8, seed=0)
    if video_dtype:  # (only then: the keyword is new, and the GPU script also times old code)
        return model, loss_fn, optimizer, batch.to(device, feature_dtype=getattr(torch, video_dtype))
    return model, loss_fn, optimizer, batch.to(device)


def _graph_seconds(model, loss_fn, batch, device: torch.device, precision: str,
                   forward, repeats: int) -> dict:
    """Seconds per training step replayed from a CUDA graph, as ``TrainConfig.cuda_graphs``
    runs it (``highlightzoo.training.graphs``): ``graph_seconds_per_step``, the bare replay
    (the graph's own inputs); ``graph_host_seconds_per_step``, the trainer's data path: the
    batch from pinned host memory copied into the graph's inputs, then the replay. On a CPU
    (smoke runs) the stand-in that reruns the step exercises the same code."""
    from highlightzoo.training.graphs import GraphedSteps, RerunCapture
    from highlightzoo.training.optim import make_adam
    from highlightzoo.training.trainer import training_step

    optimizer = make_adam([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                          capturable=True)
    steps = GraphedSteps(
        lambda b: training_step(forward, model, loss_fn, optimizer, b, device, precision,
                                autocast_cache=False),
        device, backend=None if device.type == "cuda" else RerunCapture())
    for _ in range(steps.capture_after + 1):  # the eager warm-ups, then the capture
        steps(batch)
    static = steps.graph_inputs(batch)
    if static is None:
        raise RuntimeError(f"no graph captured: {steps.stats.summary()}")
    bare = _timed(lambda: steps(static), device, repeats)
    host = batch.to("cpu")
    host = host.pin_memory() if device.type == "cuda" else host
    from_host = _timed(lambda: steps(host), device, repeats)
    if steps.stats.eager != steps.capture_after:
        raise RuntimeError(f"timed steps ran eagerly: {steps.stats.summary()}")
    return {"graph_seconds_per_step": bare, "graph_host_seconds_per_step": from_host}


def _train_step_stats(name: str, kwargs: dict, b: int, t: int, d: int, precision: str,
                      device: torch.device, repeats: int, compiled: bool = False,
                      video_dtype: str | None = None, graphed: bool = False,
                      conv_weights: str | None = None, in_step_norm: bool = True) -> dict:
    """One training step's time, FLOPs (counted eagerly) and memory; ``compiled``: the
    forward through ``torch.compile``, as ``TrainConfig(compile=True)`` runs it;
    ``graphed``: also the step replayed as one CUDA graph (``graph_*`` keys; on a CPU the
    stand-in that reruns the step, so smoke runs exercise the code); ``conv_weights``:
    see :func:`set_conv_weights`; ``in_step_norm``: see :func:`_training_setup`."""
    from highlightzoo.training.trainer import training_step

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model, loss_fn, optimizer, batch = _training_setup(name, kwargs, b, t, d, device, video_dtype,
                                                       conv_weights, in_step_norm)
    forward = model

    def step() -> None:  # what the trainer runs (single process: no zero tie)
        training_step(forward, model, loss_fn, optimizer, batch, device, precision)

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    flops = int(counter.get_total_flops())
    compile_s = None
    if compiled:
        forward = torch.compile(model)
        start = time.perf_counter()
        step()  # the compilation
        _sync(device)
        compile_s = time.perf_counter() - start
    seconds = _timed(step, device, repeats)
    memory = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    row = {"model": name, "precision": precision, "compiled": compiled, "compile_s": compile_s,
           "video_dtype": video_dtype or "float32", "batch": b, "steps": t, "feature_dim": d,
           "seconds_per_step": seconds, "steps_per_s": 1 / seconds,
           "clip_steps_per_s": b * t / seconds, "flops_per_step": flops,
           "achieved_tflops": flops / seconds / 1e12, "max_memory_bytes": memory}
    if layout := conv_weights_of(model):
        row["conv_weights"] = layout
    if not in_step_norm:
        row["in_step_l2_norm"] = False
    if graphed:
        try:
            graph = _graph_seconds(model, loss_fn, batch, device, precision, forward, repeats)
            graph_s, host_s = graph["graph_seconds_per_step"], graph["graph_host_seconds_per_step"]
            row.update(graph, graph_clip_steps_per_s=b * t / graph_s,
                       graph_achieved_tflops=flops / graph_s / 1e12,
                       graph_host_clip_steps_per_s=b * t / host_s)
        except Exception as error:  # noqa: BLE001 - a step that cannot be captured is a result
            row["graph_error"] = repr(error)[:300]
    return row


def part_models(out: Path, smoke: bool) -> None:
    import highlightzoo as hz

    device = _device()
    b, t, d = (2, 32, 8) if smoke else (16, 256, 64)
    narrow = {"width_mult": 0.25}
    precisions = ["fp32"] + (["bf16"] if device.type == "cuda" else [])
    rows = []
    for name in hz.list_models():
        if not hz.get_model_card(name).trainable:  # floors: nothing to train
            continue
        kwargs = narrow if name in ("fcsn", "avhd", "video2gif") else {}
        for precision in precisions:
            rows.append(_train_step_stats(name, kwargs, b, t, d, precision, device, 2 if smoke else 10))
    _write(out, "models.json", {"device": str(device), "rows": rows})


def _fcsn8192_size(smoke: bool) -> tuple[tuple[int, int, int], dict]:
    """``(batch, steps, dim)`` and model kwargs of the FCSN 8192-d runs (tiny for smoke)."""
    return ((2, 32, 16), {"width_mult": 0.125}) if smoke else ((128, 256, 8192), {})


def _fcsn8192_rows(out: Path, smoke: bool, name: str, dtypes: tuple[str | None, ...],
                   compiled: bool = False, graphed: bool = True, conv_weights: str | None = None,
                   in_step_norm: bool = True) -> None:
    """FCSN at the reference width, 8192-d, bf16 autocast, batch 128 x 256, per features
    dtype (float32 as stored, bf16 as the trainer moves them under bf16) -> ``name``."""
    device = _device()
    (b, t, d), kwargs = _fcsn8192_size(smoke)
    rows = []
    for dtype in dtypes:
        try:  # bf16 autocast also on a CPU smoke run: bf16 features need it
            row = _train_step_stats("fcsn", kwargs, b, t, d, "bf16", device, 2 if smoke else 10,
                                    compiled=compiled, video_dtype=dtype, graphed=graphed,
                                    conv_weights=conv_weights, in_step_norm=in_step_norm)
        except Exception as error:  # noqa: BLE001 - a failed variant is a result too
            row = {"model": "fcsn", "video_dtype": dtype or "float32", "error": repr(error)[:500]}
        rows.append({**row, "target_clip_steps_per_s": 10e6, **({"code": LABEL} if LABEL else {})})
        _write(out, name, {"device": str(device), "rows": rows})


def part_fcsn8192(out: Path, smoke: bool) -> None:
    """Eager, and replayed as one CUDA graph; float32 and bf16 features."""
    _fcsn8192_rows(out, smoke, "fcsn8192.json", (None, "bfloat16"))


def part_fcsn8192_eager(out: Path, smoke: bool) -> None:
    """Eager only, float32 features: what also runs on older code, for a side-by-side."""
    _fcsn8192_rows(out, smoke, "fcsn8192_eager.json", (None,), graphed=False)


def part_fcsn8192_compile(out: Path, smoke: bool) -> None:
    """The step through ``torch.compile`` (TrainConfig.compile), bf16 features, eager and
    graphed, with the compilation time."""
    _fcsn8192_rows(out, smoke, "fcsn8192_compile.json", ("bfloat16",), compiled=True)


def part_fcsn8192_contiguous(out: Path, smoke: bool) -> None:
    """bf16 features with the block convs' kernels contiguous (the layout before they were
    stored channels-last on a GPU), eager and graphed: beside ``fcsn8192``'s bf16 rows."""
    _fcsn8192_rows(out, smoke, "fcsn8192_contiguous.json", ("bfloat16",), conv_weights="contiguous")


def part_fcsn8192_compile_contiguous(out: Path, smoke: bool) -> None:
    """``fcsn8192_compile`` with the block convs' kernels contiguous, eager and graphed."""
    _fcsn8192_rows(out, smoke, "fcsn8192_compile_contiguous.json", ("bfloat16",), compiled=True,
                   conv_weights="contiguous")


def part_fcsn8192_compile_prenormed(out: Path, smoke: bool) -> None:
    """``fcsn8192_compile`` without the L2 normalisation of the 8192-d input in the step (one
    full read of the 537 MB batch): the most that computing the per-step norms in the data
    loader could save, measured before building it. Not a faithful FCSN (no norm at all)."""
    _fcsn8192_rows(out, smoke, "fcsn8192_compile_prenormed.json", ("bfloat16",), compiled=True,
                   in_step_norm=False)


def part_prnet(out: Path, smoke: bool) -> None:
    """PR-Net training at batch 16 x 256 at 64-d, 512-d and 4,096-d (width = feature dim),
    fp32 and bf16, with peak memory -> ``prnet.json`` (issue 14, item 2)."""
    device = _device()
    b, t = (2, 32) if smoke else (16, 256)
    dims = (8, 16) if smoke else (64, 512, 4096)
    precisions = ["fp32"] + (["bf16"] if device.type == "cuda" else [])
    rows = []
    for d in dims:
        for precision in precisions:
            rows.append(_train_step_stats("prnet", {}, b, t, d, precision, device, 2 if smoke else 5))
    _write(out, "prnet.json", {"device": str(device), "rows": rows})


def part_bench(out: Path, smoke: bool) -> None:
    """A sample of the standard preset (converged rules) timed per run, and the extrapolation."""
    import dataclasses

    from highlightzoo.bench import get_preset, load_results, run_tables

    device = "cuda" if torch.cuda.is_available() else "cpu"
    preset = get_preset("standard")
    models = ["fcsn", "prnet"]
    if smoke:
        preset = dataclasses.replace(preset, name="standard-smoke", world="tiny", batch_size=4,
                                     max_steps=4, eval_every=2, sweep_steps=2, min_steps=2,
                                     patience=1, num_workers=0)
        models = ["video2gif", "random"]
    from highlightzoo.bench.tables import table_models
    from highlightzoo.models import get_model_card

    # the whole preset: (grid + seeds - 1) runs per trainable model, seeds runs per floor
    n_runs = sum((len(preset.lr_grid) + preset.seeds - 1) if get_model_card(m).trainable
                 else preset.seeds for m in table_models())
    per_run: dict[str, float] = {}
    walls: dict[str, float] = {}
    for model in models:  # one model at a time, bench.json rewritten after each
        start = time.perf_counter()
        path = run_tables(preset, out / "bench" / model, seeds=1, models=[model], device=device,
                          cache_dir=out / "cache", quiet=True, jobs=1)
        walls[model] = time.perf_counter() - start
        results = load_results(path)
        per_run.update({k: v.get("total_s") for k, v in results["timing"]["runs"].items()})
        mean_run = sum(per_run.values()) / max(len(per_run), 1)
        _write(out, "bench.json", {"device": device, "models": list(walls), "wall_s": walls,
                                   "per_run_s": per_run, "mean_run_s": mean_run,
                                   "runs_in_full_preset": n_runs,
                                   "extrapolated_full_preset_s": mean_run * n_runs})


def part_reference(out: Path, smoke: bool) -> None:
    """FCSN and A-VHD at the reference configuration (8192-d, T = 1,024, batch 1), the zoo
    against the reference's layer list (benchmarks/reference_nets.py), forward and training
    step, fp32 on both sides and the zoo also in bf16 -> ``reference.json``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_reference import _steps, interleaved

    from highlightzoo.device import autocast

    device = _device()
    rows = []
    for model in ["fcsn"] if smoke else ["fcsn", "avhd"]:
        for mode in ["forward", "train"]:
            fns = _steps(model, mode, str(device))
            zoo = fns["zoo"]

            def zoo_bf16(zoo=zoo) -> None:
                with autocast(device, "bf16"):
                    zoo()

            if device.type == "cuda":
                fns["zoo_bf16"] = zoo_bf16
            times = interleaved(fns, 1 if smoke else 10)
            rows.append({"model": model, "mode": mode, "seconds": times,
                         "ratio_fp32": times["reference"] / times["zoo"],
                         "ratio_bf16": times["reference"] / times["zoo_bf16"]
                         if "zoo_bf16" in times else None})
            _write(out, "reference.json", {"device": str(device), "rows": rows})
            del fns, zoo
            if smoke:
                return


def _profile_table(name: str, kwargs: dict, b: int, t: int, d: int, precision: str,
                   device: torch.device, video_dtype: str | None = None,
                   conv_weights: str | None = None, compiled: bool = False) -> str:
    """torch.profiler's per-op table (top 25 by device time) of three training steps;
    ``compiled``: the forward through ``torch.compile`` (compiled in the warm-up steps)."""
    from highlightzoo.training.trainer import training_step

    model, loss_fn, optimizer, batch = _training_setup(name, kwargs, b, t, d, device, video_dtype,
                                                       conv_weights)
    forward = torch.compile(model) if compiled else model
    for _ in range(2):
        training_step(forward, model, loss_fn, optimizer, batch, device, precision)
    _sync(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(3):
            training_step(forward, model, loss_fn, optimizer, batch, device, precision)
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    kernels = sum(e.count for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    layout = conv_weights_of(model)
    return (f"## {name} {kwargs} batch {b} x {t}, {d}-d, {video_dtype or 'float32'} features, "
            f"{precision}, {f'conv weights {layout}, ' if layout else ''}"
            f"{'compiled, ' if compiled else ''}3 training steps, {kernels} device kernels\n"
            + prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=60))


def part_profile(out: Path, smoke: bool) -> None:
    """Where a training step's device time goes: per-op profiles of FCSN at 8192-d bf16
    (batch 128 x 256) with float32 and bf16 features, and of PR-Net at 64-d -> ``profile.txt``
    (+ ``profile.json``: what was profiled)."""
    device = _device()
    precision = "bf16" if device.type == "cuda" else "fp32"
    (b, t, d), kwargs = _fcsn8192_size(smoke)
    dtypes = [None] + (["bfloat16"] if device.type == "cuda" else [])
    tables = [_profile_table("fcsn", kwargs, b, t, d, precision, device, v) for v in dtypes]
    prnet = (2, 32, 8) if smoke else (16, 256, 64)
    tables.append(_profile_table("prnet", {}, *prnet, "fp32", device))
    (out / "profile.txt").write_text("\n\n".join(tables) + "\n")
    _write(out, "profile.json", {"device": str(device), "profiled": [
        {"model": "fcsn", "shape": [b, t, d], "precision": precision, "video_dtype": v or "float32"}
        for v in dtypes] + [{"model": "prnet", "shape": list(prnet), "precision": "fp32"}]})


def part_profile_contiguous(out: Path, smoke: bool) -> None:
    """``profile``'s FCSN 8192-d table (bf16 features) with the block convs' kernels
    contiguous, the layout before: cuDNN's per-step layout conversions -> ``profile_contiguous.txt``."""
    device = _device()
    precision = "bf16" if device.type == "cuda" else "fp32"
    (b, t, d), kwargs = _fcsn8192_size(smoke)
    dtype = "bfloat16" if device.type == "cuda" else None
    table = _profile_table("fcsn", kwargs, b, t, d, precision, device, dtype, "contiguous")
    (out / "profile_contiguous.txt").write_text(table + "\n")


def part_profile_compile(out: Path, smoke: bool) -> None:
    """Where the compiled FCSN 8192-d step's device time goes (bf16 features, the forward
    through ``torch.compile``, the configuration of the best 8.31 M clip-steps/s when replayed
    as a graph): the kernels left between it and the 10 M target -> ``profile_compile.txt``."""
    device = _device()
    precision = "bf16" if device.type == "cuda" else "fp32"
    (b, t, d), kwargs = _fcsn8192_size(smoke)
    dtype = "bfloat16" if device.type == "cuda" else None
    table = _profile_table("fcsn", kwargs, b, t, d, precision, device, dtype, compiled=True)
    (out / "profile_compile.txt").write_text(table + "\n")


def part_trainer_graphs(out: Path, smoke: bool) -> None:
    """``TrainConfig.cuda_graphs`` timed in the trainer: FCSN and PR-Net trained on a slice of
    the quick world (64-d; 200 / 50 / 10 users, synthesised here) with the standard preset's
    batch, clip, precision, model widths and workers, graphs off and on (PR-Net alternating
    twice); per run the training time (steps and validations), steps run, best validation mAP
    and the trainer's graph count (``TrainResult.graphs``) -> ``trainer_graphs.json`` (a run that fails is a row
    with its error)."""
    import dataclasses

    from highlightzoo.bench import get_preset
    from highlightzoo.data.synthetic import get_world_config, synthesize
    from highlightzoo.training import TrainConfig, train

    preset = get_preset("standard")
    world = get_world_config("tiny" if smoke else preset.world)
    if not smoke:
        world = dataclasses.replace(world, name=f"{world.name}-slice", n_train=200, n_val=50,
                                    n_test=10)
    store = out / "cache" / "trainer_graphs.h5"
    store.parent.mkdir(parents=True, exist_ok=True)
    synthesize(world, 0, store, progress=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = preset.precision if device == "cuda" else "fp32"
    rows = []
    for name, order in (("fcsn", (False, True)), ("prnet", (False, True, False, True))):
        for graphs in order:
            run_dir = out / "cache" / f"{name}-{graphs}-{len(rows)}"
            config = TrainConfig(
                model=name, data=str(store), out=str(run_dir), device=device, seed=0,
                model_overrides=preset.model_overrides.get(name, {}),
                batch_size=4 if smoke else preset.batch_size, clip_len=32 if smoke else preset.clip_len,
                max_steps=6 if smoke else 200, eval_every=3 if smoke else 100,
                precision=precision, num_workers=0 if smoke else preset.num_workers,
                test_split=None, cuda_graphs=graphs and device == "cuda")
            row = {"model": name, "cuda_graphs": graphs, "precision": precision}
            try:
                result = train(config, quiet=True)
            except Exception as error:  # noqa: BLE001 - a run that fails is a result
                rows.append({**row, "error": repr(error)[:300]})
            else:
                rows.append({**row, "training_time_s": result.training_time_s,
                             "steps_run": result.selection.steps_run,
                             "best_val_map": result.selection.best_val_map,
                             "graphs_log": result.graphs})
            _write(out, "trainer_graphs.json", {"device": device, "world": world.name,
                                                 "rows": rows})


def part_compile(out: Path, smoke: bool) -> None:
    """Training step eager vs ``torch.compile`` (TrainConfig.compile) at batch 16 x 256,
    64-d, per precision, with the compilation's own time -> ``compile.json``."""
    device = _device()
    b, t, d = (2, 32, 8) if smoke else (16, 256, 64)
    precisions = ["bf16"] if device.type == "cuda" else ["fp32"]
    rows = []
    for name in ["prnet"] if smoke else ["prnet", "fcsn", "phdgifs"]:
        kwargs = {"width_mult": 0.25} if name == "fcsn" else {}
        for precision in precisions:
            for compiled in (False, True):
                rows.append(_train_step_stats(name, kwargs, b, t, d, precision, device,
                                              2 if smoke else 20, compiled=compiled))
                _write(out, "compile.json", {"device": str(device), "rows": rows})


PARTS = {"env": part_env, "models": part_models, "fcsn8192": part_fcsn8192,
         "fcsn8192_eager": part_fcsn8192_eager, "fcsn8192_compile": part_fcsn8192_compile,
         "fcsn8192_contiguous": part_fcsn8192_contiguous,
         "fcsn8192_compile_contiguous": part_fcsn8192_compile_contiguous,
         "fcsn8192_compile_prenormed": part_fcsn8192_compile_prenormed,
         "profile_contiguous": part_profile_contiguous, "profile_compile": part_profile_compile,
         "trainer_graphs": part_trainer_graphs,
         "prnet": part_prnet,
         "reference": part_reference, "compile": part_compile, "profile": part_profile, "bench": part_bench}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=sorted(PARTS))
    parser.add_argument("out", type=Path)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a CPU check that it runs")
    parser.add_argument("--label", default="", help="the code measured (e.g. a commit), written "
                        "into the FCSN 8192-d rows: for a side-by-side run of older code")
    args = parser.parse_args(argv)
    global LABEL
    LABEL = args.label
    PARTS[args.part](args.out, args.smoke)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
