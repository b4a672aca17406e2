"""Speed against the reference code, as ratios measured side by side in one process.

1. FCSN and A-VHD at the A-VHD reference's configuration (8192-d, batch 1,
   T = 1,024, 8 history items for A-VHD): forward (eval, no grad) and training
   step (forward + cross-entropy + backward + Adam), the zoo against
   :mod:`reference_nets` (the reference's layer list, run its way). Target:
   reference time / zoo time >= 1.5 on a CPU.
2. PR-Net training-step throughput at batch 16 x 256 at 64-d, 512-d and 4,096-d,
   with its memory (training state + tensors saved for backward).
3. Evaluation of variable-length videos: one padded batch against one forward
   per distinct length, for the models whose scores do not depend on padding.

Times are medians of interleaved repeats after a warm-up, in process CPU
seconds on a CPU (wall seconds on CUDA); only ratios are comparable across
runs on a shared machine. Run (one thread, as in
docs/performance.md):

    OMP_NUM_THREADS=1 python -m pytest benchmarks/bench_reference.py -s --benchmark-json=ref.json
"""

from __future__ import annotations

import collections
import os
import statistics
import time
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from reference_nets import RefAVHD, RefFCSN, reference_input

import highlightzoo as hz
from highlightzoo.batch import Batch, random_batch
from highlightzoo.losses import get_loss
from highlightzoo.training.optim import make_adam

REFERENCE_DIM, REFERENCE_STEPS, HISTORY_ITEMS = 8192, 1024, 8
PARAMS = {"fcsn": 37_954_836, "avhd": 197_357_844}
REPEATS = 5
LARGE = "HIGHLIGHTZOO_BENCH_LARGE"  # also run the CPU-heavy PR-Net 4,096-d case


def clock() -> float:
    """This process's CPU seconds on a CPU-only machine (a shared box's other jobs then
    cannot tilt a ratio; with one torch thread it is the compute time); wall seconds on CUDA."""
    return time.perf_counter() if torch.cuda.is_available() else time.process_time()


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds (:func:`clock`) of each function, run in turn (a, b, a, b, ...)
    after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            if torch.cuda.is_available():  # the kernels, not their launches
                torch.cuda.synchronize()
            times[name].append(clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def reference_batch(dim: int = REFERENCE_DIM, steps: int = REFERENCE_STEPS) -> Batch:
    """One ``steps``-step video at ``dim``-d and 8 history videos of one segment each
    (the reference configuration by default)."""
    batch = random_batch(1, steps, dim, HISTORY_ITEMS, 1, seed=0)
    batch.history_video[:] = torch.arange(HISTORY_ITEMS)
    # with the collate's counts again (the edit above invalidated them), as every batch the
    # trainer, the evaluator and Detector build has them: without, the model reads the
    # lengths from the device, a sync on a GPU
    return batch.with_host_counts([steps], HISTORY_ITEMS)


def _steps(model: str, mode: str, device: str = "cpu", dim: int = REFERENCE_DIM,
           steps: int = REFERENCE_STEPS, width: float = 1.0,
           foreach: bool | None = None) -> dict[str, Callable[[], object]]:
    """The zoo's and the reference's forward (``mode="forward"``) or training step
    (``"train"``) of ``model`` on ``device``, at the reference configuration unless
    ``dim``, ``steps`` or the channel ``width`` say otherwise (same parameter counts).
    ``foreach``: the reference's Adam implementation (None: PyTorch's default for the
    device; True: the one it runs on a GPU, also on a CPU)."""
    torch.manual_seed(0)
    zoo = hz.create_model(model, feature_dim=dim, width_mult=width).to(device)
    ref = (RefFCSN if model == "fcsn" else RefAVHD)(dim, width).to(device)
    counts = {sum(p.numel() for p in net.parameters()) for net in (zoo, ref)}
    assert len(counts) == 1, counts
    if (dim, width) == (REFERENCE_DIM, 1.0):
        assert counts == {PARAMS[model]}
    batch = reference_batch(dim, steps).to(device)
    video = reference_input(batch.video)
    history = [batch.history[0, i, :1] for i in range(HISTORY_ITEMS)]  # the reference's list

    def ref_forward() -> torch.Tensor:
        return ref(video) if model == "fcsn" else ref(video, history)

    if mode == "forward":
        zoo.eval(), ref.eval()

        def zoo_fwd() -> object:
            with torch.no_grad():
                return zoo(batch).scores

        def ref_fwd() -> object:
            with torch.no_grad():
                return ref_forward()

        return {"reference": ref_fwd, "zoo": zoo_fwd}
    zoo.train(), ref.train()
    zoo_opt = make_adam(zoo.parameters(), lr=1e-4)  # what the trainer builds
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-4, foreach=foreach)  # the reference's
    loss_fn = get_loss(zoo.card.default_loss)
    target = batch.labels.long()

    def zoo_step() -> None:
        zoo_opt.zero_grad(set_to_none=True)
        loss_fn(zoo(batch), batch).backward()
        zoo_opt.step()

    def ref_step() -> None:
        ref_opt.zero_grad()
        F.cross_entropy(ref_forward()[:, :, 0], target).backward()
        ref_opt.step()

    return {"reference": ref_step, "zoo": zoo_step}


@pytest.mark.parametrize("mode", ["forward", "train"])
@pytest.mark.parametrize("model", ["fcsn", "avhd"])
def test_zoo_against_reference(benchmark, model: str, mode: str) -> None:
    """Reference time / zoo time at the reference configuration (target >= 1.5)."""
    fns = _steps(model, mode)
    repeats = REPEATS if mode == "forward" or model == "fcsn" else 3
    times = benchmark.pedantic(lambda: interleaved(fns, repeats), rounds=1, iterations=1)
    ratio = times["reference"] / times["zoo"]
    benchmark.extra_info.update(
        {"model": model, "mode": mode, "ratio": ratio, "threads": torch.get_num_threads(),
         "reference_s": times["reference"], "zoo_s": times["zoo"]}
    )
    print(f"\n{model} {mode}: zoo/reference speed ratio {ratio:.2f}x "
          f"({torch.get_num_threads()} thread(s), median of {repeats} interleaved)")


def saved_tensor_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct tensors autograd saves for backward while ``fn()`` runs."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@pytest.mark.parametrize("feature_dim", [64, 512, 4096])
def test_prnet_training_throughput(benchmark, feature_dim: int) -> None:
    """PR-Net training steps/s at batch 16 x 256 and its memory (state + saved activations)."""
    torch.manual_seed(0)
    model = hz.create_model("prnet", feature_dim=feature_dim).train()
    if feature_dim >= 4096 and not torch.cuda.is_available() and not os.environ.get(LARGE):
        n_params = sum(p.numel() for p in model.parameters())
        pytest.skip(f"{n_params / 1e6:.0f} M params, state {16 * n_params / 2**30:.1f} GiB: "
                    f"minutes per step on a CPU; set {LARGE}=1 to run it anyway")
    batch = random_batch(16, 256, feature_dim, 10, 8, seed=0)
    optimizer = make_adam(model.parameters(), lr=1e-4)
    loss_fn = get_loss(model.card.default_loss)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(batch), batch).backward()
        optimizer.step()

    step()
    seconds = interleaved({"step": step}, 3)["step"]
    benchmark.pedantic(step, rounds=1, iterations=1)
    n_params = sum(p.numel() for p in model.parameters())
    activations = saved_tensor_bytes(lambda: loss_fn(model(batch), batch))
    state = 16 * n_params  # fp32 parameters, gradients and Adam's two moments
    benchmark.extra_info.update(
        {"feature_dim": feature_dim, "steps_per_s": 1 / seconds, "params": n_params,
         "state_bytes": state, "saved_activation_bytes": activations}
    )
    print(f"\nprnet {feature_dim}-d: {1 / seconds:.2f} training steps/s at 16 x 256, "
          f"{n_params / 1e6:.2f} M params, state {state / 2**20:.0f} MiB + saved activations "
          f"{activations / 2**20:.0f} MiB")


VARIABLE_LENGTHS = [1024, 960, 900, 850, 777, 700, 640, 600, 512, 480, 400, 333, 300, 256, 200, 128]


#: FCSN and A-VHD at the quick preset's width (at 1.0 their fc layers dominate a 64-d CPU run)
VARIABLE_LENGTH_WIDTH = {"fcsn": {"width_mult": 0.25}, "avhd": {"width_mult": 0.25}}


@pytest.mark.parametrize("model", ["prnet", "video2gif", "phdgifs", "fcsn", "avhd"])
def test_variable_length_eval_batched_vs_per_length(benchmark, model: str) -> None:
    """One padded forward over 16 videos of 16 lengths vs one forward per length; same scores."""
    torch.manual_seed(0)
    net = hz.create_model(model, feature_dim=64, **VARIABLE_LENGTH_WIDTH.get(model, {})).eval()
    batch = random_batch(len(VARIABLE_LENGTHS), max(VARIABLE_LENGTHS), 64, 10, 8, seed=0,
                         lengths=VARIABLE_LENGTHS)

    def batched() -> torch.Tensor:
        with torch.no_grad():
            return net(batch).scores

    def per_length() -> torch.Tensor:
        out = torch.zeros(len(VARIABLE_LENGTHS), max(VARIABLE_LENGTHS))
        with torch.no_grad():
            for i, n in enumerate(VARIABLE_LENGTHS):
                out[i, :n] = net(batch.row(i)).scores[0]
        return out

    mask = batch.video_mask
    assert torch.allclose(batched()[mask], per_length()[mask], atol=1e-4, rtol=1e-4)
    times = benchmark.pedantic(lambda: interleaved({"per_length": per_length, "batched": batched}, 3),
                               rounds=1, iterations=1)
    speedup = times["per_length"] / times["batched"]
    benchmark.extra_info.update({"model": model, "speedup": speedup, **times})
    print(f"\n{model}: batched evaluation {speedup:.2f}x one forward per length "
          f"({len(VARIABLE_LENGTHS)} videos, 64-d)")


def _ops(fn: Callable[[], object]) -> collections.Counter:
    """The tensor ops ``fn`` dispatches, views excluded: on a GPU each is a kernel launch
    (or more), which is what a batch-1 forward there is bound by (docs/performance.md)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: collections.Counter = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            if not _is_view(func):
                self.ops[str(func).removeprefix("aten.").removesuffix(".default")] += 1
            return func(*args, **(kwargs or {}))

    with Count() as count:
        fn()
    return count.ops


def _is_view(func) -> bool:  # noqa: ANN001
    """Ops that return a view of their input (no kernel)."""
    return func is torch.ops.aten._unsafe_view.default or any(
        r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns)


@pytest.mark.parametrize("model", ["fcsn", "avhd"])
def test_ops_per_step_against_reference(model: str) -> None:
    """Ops per eval forward and per training step (forward, loss, backward, optimiser) at
    the reference configuration (T = 1,024, batch 1, 8 history items; 64-d, which does not
    change the count), the zoo against the reference's layer list: printed and kept with the
    benchmark run, no target (the zoo does more per forward: masks, float32 norms, scores and
    probabilities). The reference's Adam is counted as it runs on a GPU (``foreach``),
    without the per-parameter ``.item()`` its CPU path adds."""
    fwd = _steps(model, "forward", dim=64)
    train = _steps(model, "train", dim=64, foreach=True)
    for fn in train.values():
        fn()  # the optimisers' state exists from here on, as in every later step
    lines = []
    for mode, fns in (("forward", fwd), ("training step", train)):
        counts = {name: _ops(fn) for name, fn in fns.items()}
        # the reference's Adam reads each parameter's step count, a CPU tensor, with .item():
        # a host read, no kernel on a GPU either
        counts["reference"].pop("_local_scalar_dense", None)
        zoo, ref = (sum(counts[name].values()) for name in ("zoo", "reference"))
        lines.append(f"{model} {mode}: zoo {zoo} ops, reference {ref}\n"
                     f"  zoo: {dict(counts['zoo'].most_common())}\n"
                     f"  reference: {dict(counts['reference'].most_common())}")
        assert zoo > 0 and ref > 0
    print("\n" + "\n".join(lines))


#: host-time configuration: channels at 1/64 of the reference, 16-d input, 64 steps, batch 1
HOST_DIM, HOST_STEPS, HOST_WIDTH, HOST_CALLS = 16, 64, 1 / 64, 20


@pytest.mark.parametrize("mode", ["forward", "train"])
@pytest.mark.parametrize("model", ["fcsn", "avhd"])
def test_host_time_against_reference(benchmark, model: str, mode: str) -> None:
    """Reference time / zoo time where the layers do almost no arithmetic (every channel
    count at 1/64 of the reference's, 16-d input, 64 steps, batch 1): what is left is the
    host's work per layer (Python, dispatch, autograd's bookkeeping), which a batch-1 step
    on a GPU is bound by (docs/performance.md, "Host time per step"); the reference's Adam
    as it runs on a GPU (``foreach``). Printed and kept with the run, no target."""
    fns = _steps(model, mode, dim=HOST_DIM, steps=HOST_STEPS, width=HOST_WIDTH, foreach=True)
    loops = {name: (lambda fn=fn: [fn() for _ in range(HOST_CALLS)]) for name, fn in fns.items()}
    times = benchmark.pedantic(lambda: interleaved(loops, 15), rounds=1, iterations=1)
    ratio = times["reference"] / times["zoo"]
    benchmark.extra_info.update({"model": model, "mode": mode, "ratio": ratio,
                                 "reference_s": times["reference"] / HOST_CALLS,
                                 "zoo_s": times["zoo"] / HOST_CALLS})
    print(f"\n{model} {mode} host time: zoo/reference speed ratio {ratio:.2f}x "
          f"(zoo {times['zoo'] / HOST_CALLS * 1e6:.0f} us, reference "
          f"{times['reference'] / HOST_CALLS * 1e6:.0f} us per call)")


@pytest.mark.parametrize("model", ["fcsn", "avhd"])
def test_output_check_share_of_a_host_bound_step(benchmark, model: str) -> None:
    """What :func:`highlightzoo.batch.check_output` (run in every training step since
    2026-11-28) costs, as a share of the zoo's whole training step where the host's work is
    all there is (the host-time configuration above): the two timed side by side in one run.
    Printed and kept with the run, no target."""
    from highlightzoo.batch import check_output
    from highlightzoo.training.trainer import training_step

    torch.manual_seed(0)
    net = hz.create_model(model, feature_dim=HOST_DIM, width_mult=HOST_WIDTH).train()
    batch = reference_batch(HOST_DIM, HOST_STEPS)
    opt, loss_fn, cpu = make_adam(net.parameters(), lr=1e-4), get_loss(net.card.default_loss), \
        torch.device("cpu")
    output = net(batch)
    loops = {
        "step": lambda: [training_step(net, net, loss_fn, opt, batch, cpu)
                         for _ in range(HOST_CALLS)],
        "check": lambda: [check_output(output, batch, net) for _ in range(HOST_CALLS)],
    }
    times = benchmark.pedantic(lambda: interleaved(loops, 15), rounds=1, iterations=1)
    share = times["check"] / times["step"]
    benchmark.extra_info.update({"model": model, "share": share,
                                 "check_s": times["check"] / HOST_CALLS,
                                 "step_s": times["step"] / HOST_CALLS})
    print(f"\n{model} output check: {share:.2%} of a host-bound training step "
          f"({times['check'] / HOST_CALLS * 1e6:.1f} us of {times['step'] / HOST_CALLS * 1e6:.0f} us)")
