"""Training steps replayed from CUDA graphs (highlightzoo.training.graphs), on a CPU.

A CPU has no CUDA graphs, so these tests give :class:`GraphedSteps` the
:class:`RerunCapture` stand-in, whose "replay" runs the recorded step again on the graph's
static batch: every decision of the cache (signatures, warm-ups, the cap, copying a new
batch into the static inputs) is the real one, and a replay computes what the graph would. The real captures are tested
in tests/test_cuda.py on a GPU.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from training_support import write_tiny_store

import highlightzoo as hz
from highlightzoo.batch import Batch, random_batch
from highlightzoo.cli import main
from highlightzoo.errors import ConfigError, TrainingError
from highlightzoo.losses import get_loss
from highlightzoo.training import TrainConfig, graphs, train
from highlightzoo.training.graphs import GraphedSteps, RerunCapture, shape_key
from highlightzoo.training.optim import make_adam
from highlightzoo.training.trainer import training_step

CPU = torch.device("cpu")


class StandIn(RerunCapture):
    """:class:`RerunCapture`, counting captures; ``run_at_capture``: the step's Python
    also runs once while "capturing", as under CUDA (for steps without side effects)."""

    def __init__(self, run_at_capture: bool = False) -> None:
        self.captures = 0
        self.run_at_capture = run_at_capture

    def capture(self, run):
        self.captures += 1
        if self.run_at_capture:
            run()
        return super().capture(run)


def batch_of(seed: int, lengths=(24, 24), offsets=(0, 0), rate: float = 2.0) -> Batch:
    """A collated-like batch (valid host counts) with chosen lengths, offsets and rate."""
    base = random_batch(len(lengths), max(lengths), 16, 3, 4, seed=seed, lengths=list(lengths),
                        rate=rate)
    batch = dataclasses.replace(base, offsets=torch.tensor(offsets), host=None)
    return batch.with_host_counts(list(lengths), base.host.history_videos)


def model_and_step(name: str, seed: int = 0):
    torch.manual_seed(seed)
    kwargs = {"width_mult": 1 / 16} if name in ("fcsn", "avhd") else {}
    model = hz.create_model(name, feature_dim=16, **kwargs).train()
    optimizer = make_adam([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                          capturable=True)
    loss_fn = get_loss(model.card.default_loss)

    def step(batch: Batch) -> torch.Tensor:
        return training_step(model, model, loss_fn, optimizer, batch, CPU, autocast_cache=False)

    return model, step


# A batch stream: shape A (lengths 24, 24) six times with different features and offsets,
# once a shape B in between.
STREAM = [batch_of(0, offsets=(0, 3)), batch_of(1, offsets=(5, 0)), batch_of(2, offsets=(1, 1)),
          batch_of(3, offsets=(7, 2)), batch_of(4, lengths=(24, 17)), batch_of(5, offsets=(4, 4)),
          batch_of(6, offsets=(0, 9))]


# mixed lengths, one longest: FCSN and A-VHD read only the longest length and whether all
# rows have it (one masked forward), so these batches share one signature
MIXED = [batch_of(10 + i, lengths=(24, n)) for i, n in enumerate((17, 11, 20, 5, 23, 9))]
#: (eager, replayed, graphs) of FCSN and A-VHD on each stream
FCN_STATS = {"stream": (3, 4, 1), "mixed": (2, 4, 1)}


@pytest.mark.parametrize("name, stream", [("fcsn", "stream"), ("avhd", "stream"),
                                          ("prnet", "stream"), ("fcsn", "mixed"),
                                          ("avhd", "mixed")])
def test_replayed_steps_train_exactly_like_eager_steps(name, stream):
    """Same model, same batches: through the graph cache (replays computing on the static
    batch the new batches were copied into) the weights end bit-identical to eager steps.
    FCSN and A-VHD read the longest length (and history videos), not offsets or the other
    lengths: shape A of ``STREAM`` repeats, and so do the ``MIXED`` batches."""
    batches = STREAM if stream == "stream" else MIXED
    eager_model, eager_step = model_and_step(name)
    torch.manual_seed(1)
    eager_losses = [eager_step(b).item() for b in batches]

    graph_model, graph_step = model_and_step(name)
    steps = GraphedSteps(graph_step, CPU, capture_after=2, backend=StandIn())
    torch.manual_seed(1)
    before = [b.clone() for b in batches]
    graph_losses = [steps(b).item() for b in batches]
    for old, new in zip(before, batches, strict=True):  # the graph's inputs are its own
        assert torch.equal(old.video, new.video) and torch.equal(old.history, new.history)

    assert graph_losses == eager_losses
    for (key, a), b in zip(eager_model.state_dict().items(), graph_model.state_dict().values(),
                           strict=True):
        assert torch.equal(a, b), key
    if name in ("fcsn", "avhd"):
        assert (steps.stats.eager, steps.stats.replayed, steps.stats.graphs) == FCN_STATS[stream]


def test_a_signature_holds_only_the_counts_the_model_read():
    """FCSN reads the longest length: batches differing in offsets share its graph. A segment
    baseline also reads offsets and rates: the same batches never repeat for it."""
    _, fcsn_step = model_and_step("fcsn")
    fcsn = GraphedSteps(fcsn_step, CPU, backend=StandIn())
    _, phd_step = model_and_step("phdgifs")
    phd = GraphedSteps(phd_step, CPU, backend=StandIn())
    for batch in STREAM:
        fcsn(batch)
        phd(batch)
    assert fcsn.stats.graphs == 1 and fcsn.stats.replayed == 4
    assert phd.stats.graphs == 0 and phd.stats.eager == len(STREAM)
    # the same offsets again: now the segment baseline's signature repeats too
    for seed in (7, 8, 9):
        phd(batch_of(seed, offsets=(2, 2)))
    assert (phd.stats.graphs, phd.stats.replayed) == (1, 1)


def test_graph_inputs_replay_without_a_copy():
    """The GPU benchmark's bare replay: the graph's own static batch, passed back in."""
    _, step = model_and_step("fcsn")
    steps = GraphedSteps(step, CPU, capture_after=1, backend=StandIn())
    first = batch_of(0)
    assert steps.graph_inputs(first) is None
    steps(first), steps(batch_of(1))
    static = steps.graph_inputs(batch_of(2))
    assert static is not None and torch.equal(static.video, batch_of(1).video)
    steps(batch_of(2))  # copied into the static inputs (their host counts are stale now)
    assert torch.equal(static.video, batch_of(2).video) and static.host_counts() is None
    static.video.mul_(0.5)  # written in place: still that graph's inputs
    loss = steps(static)
    assert steps.stats.replayed == 3 and steps.stats.eager == 1 and torch.isfinite(loss)


def test_warm_up_cap_and_batches_without_host_counts():
    _, step = model_and_step("fcsn")
    backend = StandIn()
    steps = GraphedSteps(step, CPU, capture_after=3, max_graphs=1, backend=backend)
    for seed in range(4):  # shape A: 3 eager warm-ups, then captured
        steps(batch_of(seed))
    assert (steps.stats.eager, steps.stats.graphs, backend.captures) == (3, 1, 1)
    for seed in range(5):  # shape B repeats, but the cap of one graph is reached
        steps(batch_of(seed, lengths=(20, 20)))
    assert (steps.stats.graphs, steps.stats.eager) == (1, 8)
    hand_built = dataclasses.replace(batch_of(9), host=None)  # no counts: never captured
    for _ in range(4):
        steps(hand_built)
    assert (steps.stats.eager, steps.stats.replayed, backend.captures) == (12, 1, 1)
    assert "1 of 13 training steps replayed from 1 graph(s), 12 eager" in steps.stats.summary()


def test_a_capture_that_reads_more_counts_is_replayed_once_and_dropped():
    """A step whose Python reads a count only sometimes (here: the offsets during the
    capture) would replay wrong decisions for other offsets: that graph is never reused."""
    backend = StandIn(run_at_capture=True)
    capturing = {"now": False}

    def step(batch: Batch) -> torch.Tensor:
        counts = batch.host_counts()
        if counts is not None:
            _ = counts.lengths
            if capturing["now"]:
                _ = counts.offsets
        return batch.video.sum()

    def capture(run):
        capturing["now"] = True
        try:
            return StandIn.capture(backend, run)
        finally:
            capturing["now"] = False

    backend.capture = capture
    steps = GraphedSteps(step, CPU, capture_after=1, backend=backend)
    first, second = batch_of(0), batch_of(1, offsets=(3, 3))
    assert steps(first) == first.video.sum()
    assert steps(second) == second.video.sum()  # captured, replayed once, dropped
    assert (steps.stats.graphs, steps.stats.dropped) == (0, 1)
    third = batch_of(2, offsets=(5, 5))  # now offsets are part of the signature: eager
    assert steps(third) == third.video.sum()
    assert steps.stats.eager == 2


def test_shape_key_names_every_tensor_field():
    key = dict((k[0], k[1:]) for k in shape_key(batch_of(0)))
    assert key["video"] == ((2, 24, 16), torch.float32)
    assert key["history_context"] == (None,)  # absent
    assert set(key) == set(graphs.TENSOR_FIELDS) and "user_ids" not in key


def test_cuda_graphs_is_refused_on_a_cpu_and_under_ddp(tmp_path, capsys):
    with pytest.raises(ConfigError, match="cuda_graphs must be true or false"):
        TrainConfig(model="fcsn", data="x", cuda_graphs="yes")
    with pytest.raises(ConfigError, match="torchrun"):
        graphs.check_supported(torch.device("cuda"), distributed=True)
    store = write_tiny_store(tmp_path / "s.h5")
    with pytest.raises(ConfigError, match="cuda_graphs .* this run is on cpu"):
        train(TrainConfig(model="fcsn", data=str(store), device="cpu", cuda_graphs=True,
                          out=str(tmp_path / "r")), quiet=True)  # fmt: skip
    assert not (tmp_path / "r").exists()
    capsys.readouterr()
    assert main(["train", "--model", "fcsn", "--data", str(store), "--device", "cpu",
                 "--cuda-graphs", "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cuda_graphs" in err[0] and "Traceback" not in err[0]


def test_the_trainer_with_graphs_gives_the_eager_run(tmp_path, monkeypatch):
    """The trainer's graph path end to end, with the CPU stand-in for CUDA: same validation
    curve and test result as without graphs, and the log counts the replays."""
    store = write_tiny_store(tmp_path / "s.h5", steps=(70, 90))
    common = dict(model="fcsn", data=str(store), device="cpu", batch_size=2, max_steps=12,
                  eval_every=6, clip_len=32, model_overrides={"width_mult": 1 / 16})
    eager = train(TrainConfig(**common, out=str(tmp_path / "eager")), quiet=True)
    monkeypatch.setattr(graphs, "check_supported", lambda device, distributed: None)
    monkeypatch.setattr(graphs, "CudaCapture", lambda device: StandIn())
    from highlightzoo.training import trainer as trainer_module

    buckets, real_collate = [], trainer_module.collate  # history padded to power-of-two buckets

    def collate(samples, feature_dtype=None, bucket_history=False):
        buckets.append(bucket_history)
        return real_collate(samples, feature_dtype, bucket_history)

    monkeypatch.setattr(trainer_module, "collate", collate)
    graphed = train(TrainConfig(**common, cuda_graphs=True, out=str(tmp_path / "graphed")),
                    quiet=True)
    assert buckets and all(buckets)
    assert [c["val_map"] for c in graphed.selection.curve] == \
        [c["val_map"] for c in eager.selection.curve]
    assert [c["train_loss"] for c in graphed.selection.curve] == \
        [c["train_loss"] for c in eager.selection.curve]
    assert graphed.test.map == eager.test.map
    log = (tmp_path / "graphed" / "train.log").read_text()
    replayed = int(log.split("CUDA graphs: ")[-1].split(" of ")[0])
    assert replayed > 0, log
    assert graphed.graphs.startswith(f"CUDA graphs: {replayed} of 12 ") and eager.graphs is None


def test_a_failed_capture_is_a_training_error_naming_the_option():
    class Refuses(RerunCapture):
        def capture(self, run):
            raise RuntimeError("operation not permitted when stream is capturing")

    _, step = model_and_step("fcsn")
    steps = GraphedSteps(step, CPU, capture_after=1, backend=Refuses())
    steps(batch_of(0))
    with pytest.raises(TrainingError, match="could not be recorded as a CUDA graph .*cuda_graphs"):
        steps(batch_of(1))


def test_signatures_that_never_repeat_are_forgotten(monkeypatch):
    """PR-Net's batches rarely repeat: the cache's memory of them stays bounded."""
    monkeypatch.setattr(graphs, "MEMORY", 3)
    steps = GraphedSteps(lambda b: b.video.sum(), CPU, backend=RerunCapture())
    for n in range(10):  # ten different lengths: ten shapes and signatures, each seen once
        steps(batch_of(n, lengths=(10 + n, 10 + n)))
    assert len(steps._seen) <= 3 + 1 and len(steps._reads) <= 3 + 1
    assert steps.stats.eager == 10


def test_a_cuda_capture_lets_other_threads_work(monkeypatch):
    """The DataLoader's pin-memory thread allocates pinned host memory while the trainer
    captures a step; in CUDA's default ("global") capture mode that invalidated the capture
    on an H100 (docs/performance.md, "GPU"). The capture asks for "thread_local"."""
    seen = {}

    class FakeGraph:
        def replay(self):
            seen["replayed"] = True

    class FakeContext:
        def __init__(self, graph, **kwargs):
            seen.update(kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", FakeContext)
    capture = object.__new__(graphs.CudaCapture)
    capture.pool = "pool"
    replay = capture.capture(lambda: torch.ones(()))
    assert seen == {"pool": "pool", "capture_error_mode": "thread_local"}
    assert float(replay()) == 1.0 and seen["replayed"]
