"""The one training loop of the zoo: any registered model, CPU or CUDA, one process or torchrun.

The loop knows only :func:`create_model`, the model card (``default_loss``,
``history_cap``), :func:`get_loss`, :class:`Batch` and :class:`ModelOutput`.
It counts its budget in optimiser steps: train on clips of the training users
(Adam), score the validation users' whole videos every ``eval_every`` steps,
keep the best checkpoint by validation mAP and stop by the rule of
:mod:`highlightzoo.training.stopping` (patience after ``min_steps``, or the
``max_steps`` cap). At the end the best checkpoint is evaluated once on the
test users, and :class:`~highlightzoo.training.results.TrainResult` is returned
and written to ``results.json``. A model without trainable parameters (a
floor) is validated once and tested.

Determinism: everything is seeded from ``config.seed``; the shuffling of pass
``e`` and the clip sampling come from ``(seed, e)`` alone and the RNG states are
saved with every checkpoint (one per validation, with the position inside the
pass), so a CPU run interrupted after a validation and resumed ends with
bit-identical weights to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler, Subset

# Plain tqdm, not tqdm.auto: the latter calls iter() on a DataLoader when the bar is made,
# which starts worker processes twice and draws from the sampler once too often.
from tqdm import tqdm

from highlightzoo.batch import Batch, ModelOutput, check_output, model_name
from highlightzoo.data.dataset import HighlightDataset, collate
from highlightzoo.data.store import FeatureStore
from highlightzoo.device import autocast, check_precision, feature_dtype
from highlightzoo.errors import ConfigError, RunFolderError, TrainingError, WriteError
from highlightzoo.io import folder_lock
from highlightzoo.losses import get_loss
from highlightzoo.models.registry import create_model, get_model_card
from highlightzoo.training import graphs, runs
from highlightzoo.training.checkpoint import capture_rng_state, restore_rng_state, save_checkpoint
from highlightzoo.training.config import TrainConfig
from highlightzoo.training.distributed import DistContext, setup
from highlightzoo.training.evaluation import EvalResult, evaluate_model
from highlightzoo.training.optim import make_adam
from highlightzoo.training.results import Selection, TrainResult
from highlightzoo.training.resume import (
    TrainerState,
    load_resume_point,
    resolve_run_config,
)
from highlightzoo.training.stopping import StoppingRule, StopState, observe


class _SkipSampler(Sampler):
    """The indices of another sampler for one pass, minus the first ``skip`` (a resume)."""

    def __init__(self, indices: list[int], skip: int) -> None:
        self.indices = indices[skip:]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s shuffling: a function of (seed, epoch) only."""
    return (seed * 1_000_003 + epoch * 7_919) % 2**63


def zero_tie(model: nn.Module) -> torch.Tensor:
    """0 * (sum of every trainable parameter): joins all parameters to a loss's graph.

    Under DDP every parameter must get a gradient in every step; adding this to
    the loss gives unused ones an exact zero gradient (and gives a loss without
    a graph one, so ``backward`` works).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return torch.zeros(())
    return torch.stack([p.sum() for p in params]).sum() * 0.0


def training_step(
    forward: Callable[[Batch], ModelOutput],
    model: nn.Module,
    loss_fn: Callable[[ModelOutput, Batch], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    device: torch.device,
    precision: str = "fp32",
    tie: bool = False,
    autocast_cache: bool = True,
) -> torch.Tensor:
    """One optimisation step: forward, loss, backward, Adam; the trainer's and the GPU
    benchmark's one definition of a step.

    ``forward``: ``model`` itself, its DDP wrapper or its ``torch.compile`` form.
    ``tie``: add :func:`zero_tie` (under DDP; a loss without a graph always gets it).
    ``autocast_cache=False``: as a CUDA graph capture needs (:mod:`~highlightzoo.training.graphs`).
    The model's output is checked (:func:`~highlightzoo.batch.check_output`), and a loss that
    does not reach the trainable parameters is a :class:`TrainingError` (both host-side only).
    Returns the loss as a detached float32 tensor on the device (no host copy: no sync;
    detached, so a caller that keeps it does not keep the step's autograd graph alive,
    which under ``cuda_graphs`` made the next side-stream step warn of a stream mismatch).
    """
    with autocast(device, precision, cache=autocast_cache):
        loss = loss_fn(check_output(forward(batch), batch, model), batch)
    if not loss.requires_grad and any(p.requires_grad for p in model.parameters()):
        # zero_tie would make backward work and every step would change nothing: a model
        # that never learns, reported as trained (metadata only: no device read)
        raise TrainingError(
            f"model {model_name(model)!r}: its loss does not depend on its trainable "
            "parameters, so training would change nothing; its outputs are cut from the "
            "autograd graph (computed under torch.no_grad, .detach()ed, or integer scores) or "
            "the loss returned a constant (a loss with nothing to learn from in a batch should "
            "return 0 * output.scores.sum())"
        )
    if tie or not loss.requires_grad:
        loss = loss + zero_tie(model)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach().float()


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: seed NumPy and Python from the worker's torch seed."""
    base = torch.initial_seed() % 2**32
    np.random.seed(base)
    random.seed(base)


def train(
    config: TrainConfig | None,
    quiet: bool = False,
    *,
    resume: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    stop_after: int | None = None,
    runs_root: str | Path = "runs",
) -> TrainResult:
    """Train, validate, select and test one model; return its :class:`TrainResult`.

    ``resume``: a run folder to continue from its ``checkpoints/last.pt``; its
    saved config is used (``config`` may be None, or must match it), with
    ``overrides`` of :data:`~highlightzoo.training.resume.RESUMABLE_FIELDS` (e.g. a higher
    ``max_steps``; the rules are in :mod:`highlightzoo.training.resume`).
    ``stop_after``: pause after that many validations in this call, leaving a
    resumable run without ``results.json`` (learning-rate sweeps, time-sliced
    clusters, tests); the result then has ``selection.stop_reason == "paused"``
    and no test. A call with ``stop_after`` never reads the test users: if the
    stopping rule fires within it, the stop is kept and the resume tests. ``quiet`` turns off progress bars and console messages; the log
    file ``train.log`` is always written.
    """
    config, resume_dir = resolve_run_config(config, resume, overrides or {})
    ctx, device = setup(config.device)
    held = contextlib.ExitStack()  # the run folder's lock, from when it is known to the end
    try:
        check_precision(config.precision, device)
        if config.cuda_graphs:
            graphs.check_supported(device, ctx.distributed)
        if resume_dir is not None:
            _hold_run_folder(ctx, resume_dir, held)
            config = config.replace(out=str(resume_dir))
            if overrides and ctx.is_main:
                runs.write_json(resume_dir / runs.CONFIG_FILE, config.to_dict())  # e.g. more epochs
        trainer = _Trainer(config, ctx, device, resume_dir, quiet, Path(runs_root), held)
        return trainer.run(stop_after)
    except BaseException as err:  # noqa: B036 - recorded in train.log, then re-raised
        runs.log_to_run_file(logging.getLogger("highlightzoo.training"), f"{type(err).__name__}: {err}")
        raise
    finally:
        runs.close_logger(logging.getLogger("highlightzoo.training"))
        held.close()
        ctx.close()


def _hold_run_folder(ctx: DistContext, run_dir: Path, held: contextlib.ExitStack) -> None:
    """Rank 0 locks the run folder until ``held`` closes (:func:`~highlightzoo.io.folder_lock`:
    a second process training into it, e.g. a resume started twice, is refused); every rank
    learns whether it may go on."""
    answer = ("ok", "")
    if ctx.is_main:
        try:
            held.enter_context(folder_lock(run_dir, "train"))
        except (RunFolderError, WriteError) as err:
            answer = ("error", str(err))
    status, text = ctx.broadcast(answer)
    if status == "error":
        raise RunFolderError(text)


def _new_run_folder(ctx: DistContext, config: TrainConfig, root: Path) -> Path:
    """Rank 0 creates the folder and writes config.json; every rank learns its path (or error)."""
    answer: tuple[str, str]
    if ctx.is_main:
        try:
            path = runs.create_run_folder(config.out, config.model, config.seed, root)
            runs.write_json(path / runs.CONFIG_FILE, config.replace(out=str(path)).to_dict())
            answer = ("ok", str(path))
        except RunFolderError as err:
            answer = ("error", str(err))
        except OSError as err:
            answer = ("error", f"cannot create run folder {config.out or str(root)!r}: {err}")
    else:
        answer = ("", "")
    status, text = ctx.broadcast(answer)
    if status == "error":
        raise RunFolderError(text)
    return Path(text)


class _Trainer:
    """One run's objects and loop (internal; use :func:`train`)."""

    def __init__(
        self,
        config: TrainConfig,
        ctx: DistContext,
        device: torch.device,
        run_dir: Path | None,
        quiet: bool,
        runs_root: Path,
        held: contextlib.ExitStack,
    ) -> None:
        """Open data, build model and optimiser, then (only then) create or reopen the run folder.

        ``run_dir`` None: a new run (folder created once everything else worked,
        so a typo in the data path leaves no run folder behind); else a resume.
        """
        self.config, self.ctx, self.device = config, ctx, device
        self.quiet, self.resumed = quiet, run_dir is not None
        self.show = ctx.is_main and not quiet
        torch.backends.cudnn.benchmark = False
        seed_everything(config.seed)

        self.store = FeatureStore(config.data)
        self.feature_dim = int(self.store.feature_dim)
        self.card = get_model_card(config.model)
        self.history_cap = config.resolved_history_cap(self.card.history_cap)
        self.model = create_model(config.model, self.feature_dim, **config.model_overrides).to(device)
        # a model that encodes history in its source video says how much context the data gives
        self.history_context = getattr(self.model, "history_context_steps", None)
        self.train_set, self.train_base = self._train_dataset()
        self.val_set = self._eval_dataset(config.val_split)
        if len(self.val_set) == 0:
            raise ConfigError(
                f"data {config.data!r} has no {config.val_split!r} users: model selection needs them"
            )

        self.loss_fn = get_loss(self.card.default_loss)
        self.trainable = any(p.requires_grad for p in self.model.parameters())
        self.optimizer = make_adam(  # fused where possible; a floor gets a dummy parameter
            [p for p in self.model.parameters() if p.requires_grad],
            lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
            capturable=config.cuda_graphs,
        )
        self.steps_per_epoch = len(self._train_loader(0))
        self.rule = StoppingRule(
            max_steps=config.max_steps or config.epochs * self.steps_per_epoch,
            patience=config.patience,
            min_delta=config.min_delta,
            min_steps=config.min_steps,
        )
        self.eval_every = config.eval_every or self.steps_per_epoch
        self.state = TrainerState()
        self.best_state: dict[str, torch.Tensor] | None = None
        if run_dir is None:
            run_dir = _new_run_folder(ctx, config, runs_root)
            _hold_run_folder(ctx, run_dir, held)
            self.config = config = config.replace(out=str(run_dir))
        self.run_dir = run_dir
        self.log = runs.run_logger(run_dir, main=ctx.is_main)
        if self.resumed:
            self._load_resume_point()
        elif ctx.distributed:
            seed_everything(config.seed + ctx.rank)  # different dropout per rank, same init
        self.ddp: nn.Module = self.model
        if ctx.distributed:
            # find_unused_parameters stays off: _step ties every parameter into the loss
            # with weight 0, so parameters a step does not use (history parts on a
            # cold-start batch, say) still get a (zero) gradient and DDP's reducer never
            # waits for them. Same effect, without its extra graph walk and warning.
            self.ddp = DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=False,
            )
        if config.compile:  # the training forward only; checkpoints keep self.model's keys
            self.ddp = torch.compile(self.ddp)
        self.graphs = graphs.GraphedSteps(self._step, device) if config.cuda_graphs else None

    # ------------------------------------------------------------------ data

    def _train_dataset(self) -> tuple[Dataset, Any]:
        base = HighlightDataset(
            self.store,
            self.config.train_split,
            mode="train",
            history_cap=self.history_cap,
            clip_len=self.config.clip_len,
            min_fraction=self.config.min_fraction,
            seed=self.config.seed,
            sampling=self.config.sampling,
            history_context=self.history_context,
            history_order=self.config.history_order,
        )
        if len(base) == 0:
            raise ConfigError(f"data {self.config.data!r} has no {self.config.train_split!r} samples")
        limit = self.config.max_train_users
        dataset: Dataset = Subset(base, range(min(limit, len(base)))) if limit else base
        return dataset, base

    def _eval_dataset(self, split: str) -> Dataset:
        return HighlightDataset(
            self.store,
            split,
            mode="eval",
            history_cap=self.history_cap,
            clip_len=self.config.clip_len,
            min_fraction=self.config.min_fraction,
            seed=self.config.seed,
            history_context=self.history_context,
            history_order=self.config.history_order,
        )

    def _train_loader(self, epoch: int, skip: int = 0) -> DataLoader:
        """Pass ``epoch``'s loader, less its first ``skip`` batches: order and worker seeds
        depend on (seed, epoch) only."""
        self.train_base.set_epoch(epoch)
        # Two generators: the loader's draws worker seeds (how many depends on
        # num_workers), the sampler's draws only the order, so the order is the
        # same with any number of workers.
        seed = epoch_seed(self.config.seed, epoch)
        generator = torch.Generator().manual_seed(seed)
        order = torch.Generator().manual_seed(seed + 1)
        if self.ctx.distributed:
            sampler: Any = DistributedSampler(
                self.train_set,
                num_replicas=self.ctx.world_size,
                rank=self.ctx.rank,
                shuffle=True,
                seed=self.config.seed,
            )
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(self.train_set, generator=order)
        if skip:
            sampler = _SkipSampler(list(sampler), skip * self.config.batch_size)
        return DataLoader(
            self.train_set,
            batch_size=self.config.batch_size,
            sampler=sampler,
            collate_fn=functools.partial(collate, feature_dtype=feature_dtype(self.config.precision),
                                         bucket_history=self.config.cuda_graphs),
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_seed_worker,
            generator=generator,
        )

    # ------------------------------------------------------------------ resume

    def _load_resume_point(self) -> None:
        """Weights, optimiser, trainer state and this rank's RNG state from ``last.pt``."""
        point = load_resume_point(
            self.run_dir, self.model, self.optimizer, self.config, self.feature_dim,
            self.ctx.world_size, self.ctx.rank, store_features=self.store.metadata.get("features"),
        )  # fmt: skip
        for note in point.notes:
            self._say(note)
        self.state, self.best_state = point.state, point.best_state
        restore_rng_state(point.rng)
        self._say(f"resumed {self.run_dir} after step {self.state.step}")

    # ------------------------------------------------------------------ loop

    def run(self, stop_after: int | None) -> TrainResult:
        cfg, rule = self.config, self.rule
        self._say(
            f"run {self.run_dir}: model {cfg.model} ({self.n_parameters:,} parameters, loss "
            f"{self.card.default_loss}, history cap {self.history_cap}), {len(self.train_set)} train "
            f"samples ({cfg.sampling}, {self.steps_per_epoch} steps per pass) / {len(self.val_set)} "
            f"val users, protocol {cfg.protocol}, up to {rule.max_steps} steps (validate every "
            f"{self.eval_every}, patience {rule.patience}, min_steps {rule.min_steps}), device "
            f"{self.device}, world size {self.ctx.world_size}"
        )
        if rule.patience is not None and rule.min_steps > rule.max_steps:
            self._say(f"note: min_steps {rule.min_steps} is above the cap of {rule.max_steps} "
                      f"steps, so patience cannot stop this run: it runs to the cap and is "
                      f"reported as not converged")
        if not self.trainable:
            if not self.state.curve:
                self._validate(0.0, 0, untrained=True)
            return self._finish()
        bar = tqdm(
            total=rule.max_steps, initial=self.state.step, desc=f"{cfg.model} steps",
            disable=not self.show, dynamic_ncols=True,
        )
        validations = 0
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        rows = 0
        with bar:
            while self.state.stop.stop_reason is None:
                start = time.perf_counter()
                self.ddp.train()
                for batch in self._train_loader(self.state.epoch, self.state.batch_in_epoch):
                    loss = self._step_on(batch)
                    loss_sum += loss.detach().double() * len(batch)
                    rows += len(batch)
                    self.state.step += 1
                    self.state.batch_in_epoch += 1
                    bar.update(1)
                    if self.state.step % self.eval_every and self.state.step < rule.max_steps:
                        continue
                    mean = self.ctx.mean(float(loss_sum.item() / max(rows, 1)), rows)
                    self.state.train_time_s += time.perf_counter() - start
                    self._validate(mean, rows)
                    start = time.perf_counter()
                    loss_sum.zero_()
                    rows = 0
                    validations += 1
                    bar.set_postfix(loss=f"{mean:.4f}", val_map=f"{self.state.curve[-1]['val_map']:.2f}")
                    self.ddp.train()
                    if self.state.stop.stop_reason is not None:
                        break
                    if stop_after is not None and validations >= stop_after:
                        self._say(f"paused after {validations} validation(s) as asked; resume to continue")
                        return self._result(None, None)
                else:
                    self.state.train_time_s += time.perf_counter() - start
                    self.state.epoch += 1
                    self.state.batch_in_epoch = 0
        if stop_after is not None and validations:
            # a paused call (a sweep prefix) never reads the test users, even when the rule
            # fired inside it: the stop is saved and a resume goes straight to the test
            self._say(f"stopped ({self.state.stop.stop_reason}) within the paused call; "
                      "resume to test")
            return self._result(None, None)
        return self._finish()

    def _validate(self, train_loss: float, rows: int, untrained: bool = False) -> None:
        """Score the validation users, update the stopping state, save checkpoints, log."""
        if not math.isfinite(train_loss):
            raise TrainingError(
                f"model {self.config.model!r}: the training loss became {train_loss} by step "
                f"{self.state.step}; lower the learning rate (now {self.config.lr}) or check the data"
            )
        start = time.perf_counter()
        val = self.evaluate(self.val_set, desc=f"val @{self.state.step}", selection_only=True)
        if val.n_pairs == 0:
            raise ConfigError(
                f"no {self.config.val_split!r} video of {self.config.data!r} has a positive step "
                f"({val.n_skipped} skipped): validation mAP, and so model selection, is undefined"
            )
        stop, improved = observe(self.rule, self.state.stop, self.state.step, val.map)
        if untrained:
            stop = StopState(val.map, 0, val.map, 0, "untrained")
        self.state.stop = stop
        if improved or untrained:
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        self.state.curve.append(
            {
                "step": self.state.step,
                "epoch": self.state.step / max(self.steps_per_epoch, 1),
                "train_loss": train_loss,
                "train_rows": rows,
                "val_map": val.map,
                "val_user_map": val.user_map,
                "val_skipped": val.n_skipped,
                "val_seconds": time.perf_counter() - start,
            }
        )
        self._save(improved or untrained)
        note = f", stop: {stop.stop_reason}" if stop.stop_reason else ""
        self._say(
            f"step {self.state.step}/{self.rule.max_steps}: train loss {train_loss:.5f}, val mAP "
            f"{val.map:.3f}{' (best)' if improved else ''}{note}"
        )
        if self.graphs is not None:
            self._say(f"{self.graphs.stats.summary()} (this process)")

    def _step_on(self, batch: Batch) -> torch.Tensor:
        """One step on a collated (host) batch: replayed from a CUDA graph where one fits."""
        if self.graphs is not None:
            return self.graphs(batch)
        return self._step(batch.to(self.device, non_blocking=True))

    def _step(self, batch: Batch) -> torch.Tensor:
        """Forward, loss, backward, Adam step (:func:`training_step`) on a device batch."""
        return training_step(self.ddp, self.model, self.loss_fn, self.optimizer, batch,
                             self.device, self.config.precision, tie=self.ctx.distributed,
                             autocast_cache=not self.config.cuda_graphs)

    def evaluate(
        self, dataset: Dataset, desc: str, keep_scores: int = 0, selection_only: bool = False
    ) -> EvalResult:
        """Whole-video evaluation of the current weights, sharded over ranks.

        ``selection_only`` (validation): only the mAP that model selection reads, no
        bootstrap CI, nMSD, hit@k or second protocol.
        """
        return evaluate_model(
            self.model,
            dataset,
            self.device,
            batch_size=self.config.eval_batch_size,
            precision=self.config.precision,
            hit_k=self.config.hit_k,
            keep_scores=keep_scores,
            ctx=self.ctx,
            progress=self.show,
            desc=desc,
            with_ci=not selection_only,
            protocol=self.config.protocol,
            selection_only=selection_only,
        )

    # ------------------------------------------------------------------ files

    def _payload(self, with_optimizer: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "build_args": dict(self.model.build_args),
            "model_card": self.card.to_dict(),
            "config": self.config.to_dict(),
            "step": self.state.step,
            "trainer_state": self.state.to_dict(),
            "history_cap": self.history_cap,
            "features": self.store.metadata.get("features"),  # how the store's features were made
        }
        if with_optimizer:
            optimizer = payload["optimizer_state"] = self.optimizer.state_dict()
            # which parameters have moments: a deleted entry cannot be told from a parameter
            # that never had a gradient without it (docs/training.md, resume)
            payload["optimizer_stateful"] = sorted(optimizer["state"])
        return payload

    def _save(self, improved: bool) -> None:
        """``last.pt`` every epoch (with every rank's RNG state); ``best.pt`` when improved."""
        rng = self.ctx.gather(capture_rng_state())
        if not self.ctx.is_main:
            return
        ckpt_dir = self.run_dir / runs.CHECKPOINT_DIR
        if improved:
            best = self._payload(with_optimizer=False)
            best["val_map"] = self.state.stop.best_value
            save_checkpoint(ckpt_dir / "best.pt", best)
        save_checkpoint(ckpt_dir / "last.pt", {**self._payload(with_optimizer=True), "rng": rng})

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def _finish(self) -> TrainResult:
        """Test the best checkpoint once (unless ``test_split`` is None); write results.json."""
        cfg, stop = self.config, self.state.stop
        if self.best_state is None:
            raise TrainingError(f"model {cfg.model!r}: no validation finished, nothing to test")
        self.model.load_state_dict(self.best_state)
        test, test_s = None, None
        if cfg.test_split is not None:
            start = time.perf_counter()
            test = self.evaluate(self._eval_dataset(cfg.test_split), desc="test", keep_scores=cfg.trace_videos)
            test_s = time.perf_counter() - start
        result = self._result(test, test_s)
        if self.ctx.is_main:
            runs.write_json(self.run_dir / runs.RESULTS_FILE, result.to_dict())
        tested = (
            f"test mAP {test.map:.3f} (95% CI {test.ci_text()}, {test.n_pairs} videos, "
            f"{test.n_skipped} skipped)" if test is not None else "no test split read"
        )
        self._say(
            f"{tested} from step {stop.best_step} (stopped: {result.selection.stop_reason} after "
            f"{self.state.step} steps); results in {self.run_dir / runs.RESULTS_FILE}"
        )
        self.ctx.barrier()
        return result

    def _result(self, test: EvalResult | None, test_s: float | None) -> TrainResult:
        """The run as it stands (``stop_reason`` "paused" while the stopping rule has not fired)."""
        cfg, stop = self.config, self.state.stop
        return TrainResult(
            run_dir=self.run_dir,
            config=cfg,
            card=self.card.to_dict(),
            build_args=dict(self.model.build_args),
            history_cap=self.history_cap,
            n_parameters=self.n_parameters,
            selection=Selection(
                best_step=stop.best_step,
                best_val_map=stop.best_value,
                steps_run=self.state.step,
                stop_reason=stop.stop_reason or "paused",
                steps_per_epoch=self.steps_per_epoch,
                curve=list(self.state.curve),
            ),
            test=test,
            training_time_s=self.state.train_time_s,
            test_time_s=test_s,
            provenance=runs.provenance(self.device, cfg.seed, self.ctx.world_size),
            features=self.store.metadata.get("features"),
            graphs=self.graphs.stats.summary() if self.graphs is not None else None,
        )

    def _say(self, message: str) -> None:
        """Log to train.log (rank 0) and, unless quiet, to the console."""
        if not self.ctx.is_main:
            return
        self.log.info(message)
        if self.show:
            tqdm.write(message)
