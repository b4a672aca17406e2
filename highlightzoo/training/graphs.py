"""Training steps replayed as CUDA graphs when a batch's shapes repeat (``TrainConfig.cuda_graphs``).

Why: on a GPU an eager step launches every kernel from Python; FCSN's step at 8192-d is
about 500 kernels, and on an H100 the host needed more time to launch them than the GPU
needed to run them. A CUDA graph records the whole step once (forward, loss, backward,
Adam) and replays it with one launch: 1.65x the eager step on that H100 with float32
features, 2.4x with ``torch.compile`` (docs/performance.md, "GPU").

A graph replays fixed kernels on fixed memory, so a batch may only replay a graph captured
for a batch that makes the step do exactly the same thing. That is the batch's
*signature*: the shape and dtype of every tensor field (None for absent ones) and the
values of the :class:`~highlightzoo.batch.HostCounts` fields that the model read while
steps of that shape ran eagerly. FCSN and A-VHD read only the longest length and whether
every row has it (one masked forward for the batch), so their batches of one shape share a
graph whatever the other clips' lengths and offsets; the segment baselines also
read rates and offsets, so their batches rarely repeat and mostly run eagerly. A batch
without valid host counts (a hand-built one) always runs eagerly: a model would read the
device, which a capture cannot do. Python work that depends on anything else (values on
the device, ids) cannot be captured; every registered model passes
``tests/test_cuda.py``, which runs each one's step under "no device waits" and replays its
graph.

Policy: a signature is captured once it has run eagerly ``capture_after`` times (the
warm-up a capture needs: cuDNN and cuBLAS set-up, Adam's state, autograd's buffers), at
most ``max_graphs`` of them; the rest runs eagerly. Graphs share one memory pool: each is
a whole step whose only output, the loss, is copied out right after its replay, so no
graph reads memory another one wrote. Each step, eager or replayed, is one optimiser step
on one batch, as without graphs; :class:`GraphStats` counts which ran how.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch
from torch import Tensor

from highlightzoo.batch import COUNT_VALUES, Batch, HostCounts
from highlightzoo.errors import ConfigError, TrainingError

#: signatures (and shapes) remembered at most before those seen once are forgotten
MEMORY = 4096
#: the Batch fields that hold tensors (or None): what a graph keeps as static inputs
TENSOR_FIELDS = tuple(f.name for f in fields(Batch) if "Tensor" in str(f.type))
#: cudaStreamCaptureMode of a capture: only the capturing thread's unsafe calls are errors
CAPTURE_MODE = "thread_local"

Step = Callable[[Batch], Tensor]


class Capture(Protocol):
    """How steps run: ``eager(run)`` runs one now; ``capture(run)`` records one and returns
    the function that replays it (returning the loss tensor the recording wrote)."""

    def eager(self, run: Callable[[], Tensor]) -> Tensor: ...

    def capture(self, run: Callable[[], Tensor]) -> Callable[[], Tensor]: ...


class CudaCapture:
    """CUDA graphs on ``device``: eager steps on a side stream (the warm-up PyTorch asks
    for before a capture), captures into one shared memory pool."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.side = torch.cuda.Stream(device)
        self.pool = torch.cuda.graph_pool_handle()

    def eager(self, run: Callable[[], Tensor]) -> Tensor:
        current = torch.cuda.current_stream(self.device)
        self.side.wait_stream(current)
        with torch.cuda.stream(self.side):
            loss = run()
        current.wait_stream(self.side)
        loss.record_stream(current)  # read there next: not reused before that has run
        return loss

    def capture(self, run: Callable[[], Tensor]) -> Callable[[], Tensor]:
        graph = torch.cuda.CUDAGraph()
        # thread_local: the DataLoader's pin-memory thread allocates pinned host memory while
        # a step is captured; the default ("global") mode lets that invalidate the capture
        # (cudaErrorStreamCaptureInvalidated, seen on an H100 in the trainer)
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode=CAPTURE_MODE):
            loss = run().detach()  # the loss tensor each replay rewrites

        def replay() -> Tensor:
            graph.replay()
            return loss

        return replay


class RerunCapture:
    """Any device, no speed-up: a "capture" keeps the step and its replay runs it again on
    the graph's static batch. Every decision of :class:`GraphedSteps` stays the real one,
    so the tests and the GPU benchmark's CPU smoke run exercise it without a GPU."""

    def eager(self, run: Callable[[], Tensor]) -> Tensor:
        return run()

    def capture(self, run: Callable[[], Tensor]) -> Callable[[], Tensor]:
        return run


def check_supported(device: torch.device, distributed: bool) -> None:
    """:class:`ConfigError` unless CUDA graphs can run here: a CUDA device, one process
    (under DDP the gradient all-reduce would have to be captured too)."""
    if device.type != "cuda":
        raise ConfigError(
            f"cuda_graphs replays training steps as CUDA graphs, but this run is on {device}; "
            "drop cuda_graphs or use a CUDA device"
        )
    if distributed:
        raise ConfigError("cuda_graphs is not supported under torchrun (DDP); drop it")


def shape_key(batch: Batch) -> tuple:
    """(field, shape, dtype) of every tensor field of ``batch``; (field, None) when absent."""
    return tuple(
        (name, None) if (t := getattr(batch, name)) is None else (name, tuple(t.shape), t.dtype)
        for name in TENSOR_FIELDS
    )


def signature(shape: tuple, counts: HostCounts, read: frozenset[str]) -> tuple:
    """A batch's signature: its :func:`shape_key` and the values of the counts in ``read``."""
    return shape, tuple((name, getattr(counts, name)) for name in sorted(read))


class _ReadRecorder:
    """Stands in for a batch's :class:`HostCounts` during one step and notes which of its
    values the model read."""

    def __init__(self, counts: HostCounts) -> None:
        self.counts = counts
        self.read: set[str] = set()

    def describes(self, batch: Batch) -> bool:
        return self.counts.describes(batch)

    def __getattr__(self, name: str) -> Any:
        if name in COUNT_VALUES:
            self.read.add(name)
        return getattr(self.counts, name)


@dataclass
class GraphStats:
    """How the steps ran: ``replayed`` from a graph, ``eager`` (warm-up, over the cap or
    without host counts), ``graphs`` captured, ``dropped``: captures not kept because the
    model read host counts during the capture that its eager steps had not."""

    replayed: int = 0
    eager: int = 0
    graphs: int = 0
    dropped: int = 0

    def summary(self) -> str:
        total = self.replayed + self.eager
        return (f"CUDA graphs: {self.replayed:,} of {total:,} training steps replayed from "
                f"{self.graphs} graph(s), {self.eager:,} eager"
                + (f", {self.dropped} capture(s) dropped" if self.dropped else ""))


@dataclass
class _Graph:
    static: Batch  # the tensors the graph reads; a new batch is copied into them
    replay: Callable[[], Tensor]

    def load(self, batch: Batch) -> None:
        """Copy ``batch``'s tensors (on the host or the device) into the static inputs."""
        for name in TENSOR_FIELDS:
            source, target = getattr(batch, name), getattr(self.static, name)
            if source is not None and source is not target:
                target.copy_(source, non_blocking=True)


class GraphedSteps:
    """``steps(batch)``: one training step on ``batch`` (on the host or on ``device``),
    replayed from a CUDA graph when its signature has one, else eager; returns the loss
    on the device (after a replay a detached copy, which the next replay does not overwrite).

    ``step``: the eager step on a batch already on ``device`` (the trainer's
    :func:`~highlightzoo.training.trainer.training_step` with autocast's weight cache off
    and a capturable Adam, as capture requires). ``backend``: :class:`CudaCapture` on
    ``device`` unless given (tests give a CPU stand-in).
    """

    def __init__(self, step: Step, device: torch.device, capture_after: int = 2,
                 max_graphs: int = 8, backend: Capture | None = None) -> None:
        if capture_after < 1 or max_graphs < 0:
            raise ConfigError(f"capture_after must be >= 1 and max_graphs >= 0, got "
                              f"{capture_after} and {max_graphs}")
        self.step, self.device = step, device
        self.capture_after, self.max_graphs = capture_after, max_graphs
        self.backend = backend if backend is not None else CudaCapture(device)
        self.stats = GraphStats()
        self._reads: dict[tuple, frozenset[str]] = {}  # shape key -> counts read by the model
        self._seen: Counter[tuple] = Counter()  # signature -> eager steps run
        self._graphs: dict[tuple, _Graph] = {}

    def __call__(self, batch: Batch) -> Tensor:
        own = next((g for g in self._graphs.values() if g.static is batch), None)
        if own is not None:  # a graph's own inputs (graph_inputs), written in place or not
            return self._replay(own.replay)
        counts = batch.host_counts()
        if counts is None:
            return self._eager(batch.to(self.device, non_blocking=True), None, None)
        shape, key = self._signature(batch, counts)
        graph = self._graphs.get(key) if key is not None else None
        if graph is not None:
            graph.load(batch)
            return self._replay(graph.replay)
        moved = batch.to(self.device, non_blocking=True)
        if key is not None and self._seen[key] >= self.capture_after \
                and len(self._graphs) < self.max_graphs:
            if any(getattr(moved, name) is getattr(batch, name) for name in TENSOR_FIELDS
                   if getattr(batch, name) is not None):
                moved = moved.clone()  # the graph's inputs are its own, not the caller's
            return self._capture(moved, shape, key)
        return self._eager(moved, shape, counts)

    def graph_inputs(self, batch: Batch) -> Batch | None:
        """The static batch of the graph that ``batch`` would replay (None: no graph yet).
        Passing that very batch replays the graph on whatever its tensors hold now, without
        a copy into them (the GPU benchmark times the bare replay this way)."""
        counts = batch.host_counts()
        key = self._signature(batch, counts)[1] if counts is not None else None
        graph = self._graphs.get(key) if key is not None else None
        return graph.static if graph is not None else None

    def _signature(self, batch: Batch, counts: HostCounts) -> tuple[tuple, tuple | None]:
        """``batch``'s shape key, and its signature (None until a step of that shape ran)."""
        shape = shape_key(batch)
        read = self._reads.get(shape)
        return shape, None if read is None else signature(shape, counts, read)

    def _replay(self, replay: Callable[[], Tensor]) -> Tensor:
        """Run a recorded step; its loss as a copy the next replay does not overwrite."""
        self.stats.replayed += 1
        return replay().detach().clone()

    def _run(self, batch: Batch, shape: tuple | None, run: Callable[[Callable[[], Tensor]], Any]
             ) -> tuple[Any, set[str]]:
        """``run(step on batch)`` with the counts the step reads recorded under ``shape``."""
        recorder = None if shape is None or batch.host is None else _ReadRecorder(batch.host)
        if recorder is not None:
            batch.host = recorder  # type: ignore[assignment] - read like HostCounts
        try:
            out = run(lambda: self.step(batch))
        finally:
            if recorder is not None:
                batch.host = recorder.counts
        read = recorder.read if recorder is not None else set()
        if shape is not None:
            self._reads[shape] = self._reads.get(shape, frozenset()) | read
        return out, read

    def _eager(self, batch: Batch, shape: tuple | None, counts: HostCounts | None) -> Tensor:
        loss, _ = self._run(batch, shape, self.backend.eager)
        self.stats.eager += 1
        if shape is not None and counts is not None and len(self._graphs) < self.max_graphs:
            self._seen[signature(shape, counts, self._reads[shape])] += 1
            if len(self._seen) > MEMORY:  # batches that never repeat (PR-Net's histories)
                self._seen = Counter({k: n for k, n in self._seen.items() if n > 1})
        if len(self._reads) > MEMORY:
            self._reads = {shape: read for shape, read in self._reads.items()
                           if any(key[0] == shape for key in self._graphs)}
        return loss

    def _capture(self, batch: Batch, shape: tuple, key: tuple) -> Tensor:
        """Record the step on ``batch`` (its tensors become the graph's static inputs) and
        replay it once for this batch; keep it unless the capture read more counts."""
        try:
            replay, read = self._run(batch, shape, self.backend.capture)
        except RuntimeError as err:
            raise TrainingError(
                f"the training step could not be recorded as a CUDA graph ({err}); train "
                "without cuda_graphs"
            ) from err
        if read <= {name for name, _ in key[1]}:
            self._graphs[key] = _Graph(batch, replay)
            self.stats.graphs += 1
        else:  # the signature missed a count this step depends on: never replay it again
            self.stats.dropped += 1
        return self._replay(replay)
