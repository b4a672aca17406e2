"""The one training loop of the zoo: any registered model, CPU or CUDA, one process or torchrun.

The loop knows only :func:`create_model`, the model card (``default_loss``,
``history_cap``), :func:`get_loss`, :class:`Batch` and :class:`ModelOutput`.
Per epoch: train on clips of the training users (Adam), score the validation
users' whole videos, keep the best checkpoint by validation mAP, stop early
after ``patience`` epochs without improvement. At the end the best checkpoint
is evaluated once on the test users and ``results.json`` is written.

Determinism: everything is seeded from ``config.seed``; the shuffling of epoch
``e`` and the clip sampling come from ``(seed, e)`` alone and the RNG states are
saved with every checkpoint, so a CPU run interrupted after epoch ``k`` and
resumed ends with bit-identical weights to an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset

# Plain tqdm, not tqdm.auto: the latter calls iter() on a DataLoader when the bar is made,
# which starts worker processes twice and draws from the sampler once too often.
from tqdm import tqdm

from highlightzoo.batch import Batch
from highlightzoo.errors import ConfigError, RunFolderError, TrainingError
from highlightzoo.training import runs
from highlightzoo.training.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_weights,
    restore_rng_state,
    save_checkpoint,
)
from highlightzoo.training.config import TrainConfig
from highlightzoo.training.distributed import DistContext, device_name, setup
from highlightzoo.training.evaluation import EvalResult, autocast, evaluate_model

# Fields a resumed run may change; everything else must stay as the run started.
RESUMABLE_FIELDS = ("epochs", "patience", "device", "num_workers", "eval_batch_size")


@dataclass
class TrainerState:
    """Where training stands after ``epoch`` finished epochs (saved in every checkpoint)."""

    epoch: int = 0
    best_val_map: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    train_time_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        return cls(**data)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s shuffling: a function of (seed, epoch) only."""
    return (seed * 1_000_003 + epoch * 7_919) % 2**63


def _fmt_ci(ci: tuple[float | None, float | None]) -> str:
    return "n/a" if ci[0] is None else f"{ci[0]:.2f}-{ci[1]:.2f}"


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
) -> Path:
    """Train, validate, select and test one model; return the run folder.

    ``resume``: a run folder to continue from its ``checkpoints/last.pt``; its
    saved config is used (``config`` may be None, or must match it), with
    ``overrides`` of :data:`RESUMABLE_FIELDS` (e.g. more ``epochs``).
    ``stop_after``: stop (as if killed) after that many epochs in this call,
    leaving a resumable run without ``results.json`` (time-sliced clusters,
    tests). ``quiet`` turns off progress bars and console messages; the log
    file ``train.log`` is always written.
    """
    config, resume_dir = _resolve_config(config, resume, overrides or {})
    ctx, device = setup(config.device)
    try:
        if config.precision == "bf16" and device.type != "cuda":
            raise ConfigError(
                f"precision 'bf16' means bf16 autocast on CUDA, but this run is on {device}; "
                "use --precision fp32 on CPU"
            )
        if resume_dir is not None:
            config = config.replace(out=str(resume_dir))
            if overrides and ctx.is_main:
                runs.write_json(resume_dir / runs.CONFIG_FILE, config.to_dict())  # e.g. more epochs
        trainer = _Trainer(config, ctx, device, resume_dir, quiet, Path(runs_root))
        return trainer.run(stop_after)
    except BaseException as err:  # noqa: B036 - recorded in train.log, then re-raised
        runs.log_to_run_file(logging.getLogger("highlightzoo.training"), f"{type(err).__name__}: {err}")
        raise
    finally:
        runs.close_logger(logging.getLogger("highlightzoo.training"))
        ctx.close()


def _resolve_config(
    config: TrainConfig | None, resume: str | Path | None, overrides: dict[str, Any]
) -> tuple[TrainConfig, Path | None]:
    """The config to run: the given one, or the resumed run's with allowed overrides."""
    if resume is None:
        if config is None:
            raise ConfigError("train() needs a TrainConfig or a run folder to resume")
        return (config.replace(**overrides) if overrides else config), None
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise RunFolderError(f"cannot resume {str(run_dir)!r}: no such run folder")
    if (run_dir / runs.RESULTS_FILE).exists():
        raise RunFolderError(
            f"run {str(run_dir)!r} already finished (it has {runs.RESULTS_FILE}); start a new run"
        )
    saved = TrainConfig.from_dict(runs.read_json(run_dir / runs.CONFIG_FILE, "run config"))
    bad = sorted(set(overrides) - set(RESUMABLE_FIELDS))
    if bad:
        raise ConfigError(f"a resumed run cannot change {bad}; only {list(RESUMABLE_FIELDS)}")
    if config is not None:
        differ = sorted(
            k
            for k, v in config.to_dict().items()
            if k not in (*RESUMABLE_FIELDS, "out") and saved.to_dict()[k] != v
        )
        if differ:
            raise ConfigError(f"cannot resume {str(run_dir)!r} with a different config: {differ}")
    return saved.replace(**overrides), run_dir


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
    ) -> None:
        """Open data, build model and optimiser, then (only then) create or reopen the run folder.

        ``run_dir`` None: a new run (folder created once everything else worked,
        so a typo in the data path leaves no run folder behind); else a resume.
        """
        from highlightzoo.data.store import FeatureStore
        from highlightzoo.losses import get_loss
        from highlightzoo.models.registry import create_model, get_model_card

        self.config, self.ctx, self.device = config, ctx, device
        self.quiet, self.resumed = quiet, run_dir is not None
        self.show = ctx.is_main and not quiet
        torch.backends.cudnn.benchmark = False
        seed_everything(config.seed)

        self.store = FeatureStore(config.data)
        self.feature_dim = int(self.store.feature_dim)
        self.card = get_model_card(config.model)
        self.history_cap = config.resolved_history_cap(self.card.history_cap)
        self.train_set, self.train_base = self._train_dataset()
        self.val_set = self._eval_dataset(config.val_split)
        if len(self.val_set) == 0:
            raise ConfigError(
                f"data {config.data!r} has no {config.val_split!r} users: model selection needs them"
            )

        self.model = create_model(config.model, self.feature_dim, **config.model_overrides).to(device)
        self.loss_fn = get_loss(self.card.default_loss)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.state = TrainerState()
        self.best_state: dict[str, torch.Tensor] | None = None
        if run_dir is None:
            run_dir = _new_run_folder(ctx, config, runs_root)
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

    # ------------------------------------------------------------------ data

    def _train_dataset(self) -> tuple[Dataset, Any]:
        from highlightzoo.data.dataset import HighlightDataset

        base = HighlightDataset(
            self.store,
            self.config.train_split,
            mode="train",
            history_cap=self.history_cap,
            clip_len=self.config.clip_len,
            min_fraction=self.config.min_fraction,
            seed=self.config.seed,
        )
        if len(base) == 0:
            raise ConfigError(f"data {self.config.data!r} has no {self.config.train_split!r} samples")
        limit = self.config.max_train_users
        dataset: Dataset = Subset(base, range(min(limit, len(base)))) if limit else base
        return dataset, base

    def _eval_dataset(self, split: str) -> Dataset:
        from highlightzoo.data.dataset import HighlightDataset

        return HighlightDataset(
            self.store,
            split,
            mode="eval",
            history_cap=self.history_cap,
            clip_len=self.config.clip_len,
            min_fraction=self.config.min_fraction,
            seed=self.config.seed,
        )

    def _train_loader(self, epoch: int) -> DataLoader:
        """Epoch ``epoch``'s loader: order and worker seeds depend on (seed, epoch) only."""
        from highlightzoo.data.dataset import collate

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
        return DataLoader(
            self.train_set,
            batch_size=self.config.batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_seed_worker,
            generator=generator,
        )

    # ------------------------------------------------------------------ resume

    def _load_resume_point(self) -> None:
        """Weights, optimiser, trainer state and this rank's RNG state from ``last.pt``."""
        ckpt_dir = self.run_dir / runs.CHECKPOINT_DIR
        last = load_checkpoint(ckpt_dir / "last.pt")
        self._check_same_model(last)
        load_weights(self.model, last["model_state"], where=last["path"])
        self.optimizer.load_state_dict(last["optimizer_state"])
        self.state = TrainerState.from_dict(last["trainer_state"])
        rng = last["rng"]
        if len(rng) != self.ctx.world_size:
            raise ConfigError(
                f"run {str(self.run_dir)!r} was trained with {len(rng)} process(es); resume it "
                f"with the same number (now {self.ctx.world_size}) to continue exactly"
            )
        restore_rng_state(rng[self.ctx.rank])
        if self.state.best_epoch:
            best = load_checkpoint(ckpt_dir / "best.pt")
            self._check_same_model(best)
            self.best_state = best["model_state"]
        self._say(f"resumed {self.run_dir} after epoch {self.state.epoch}")

    def _check_same_model(self, payload: dict[str, Any]) -> None:
        from highlightzoo.errors import CheckpointError

        if payload["model_card"].get("name") != self.config.model:
            raise CheckpointError(
                f"checkpoint {payload['path']!r} holds model {payload['model_card'].get('name')!r}, "
                f"but the run trains {self.config.model!r}"
            )
        if payload["build_args"].get("feature_dim") != self.feature_dim:
            raise CheckpointError(
                f"checkpoint {payload['path']!r} was trained on "
                f"{payload['build_args'].get('feature_dim')}-d features but {self.config.data!r} "
                f"has {self.feature_dim}-d features"
            )

    # ------------------------------------------------------------------ loop

    def run(self, stop_after: int | None) -> Path:
        cfg = self.config
        self._say(
            f"run {self.run_dir}: model {cfg.model} ({sum(p.numel() for p in self.model.parameters()):,} "
            f"parameters, loss {self.card.default_loss}, history cap {self.history_cap}), "
            f"{len(self.train_set)} train / {len(self.val_set)} val samples, device {self.device}, "
            f"world size {self.ctx.world_size}"
        )
        epochs = tqdm(
            total=cfg.epochs, initial=self.state.epoch, desc=f"{cfg.model} epochs",
            disable=not self.show, dynamic_ncols=True,
        )
        done_here = 0
        with epochs:
            while self.state.epoch < cfg.epochs and not self._patience_ran_out():
                if stop_after is not None and done_here >= stop_after:
                    self._say(f"stopping after {done_here} epoch(s) as asked; resume to continue")
                    return self.run_dir
                self._one_epoch()
                done_here += 1
                epochs.update(1)
                last = self.state.history[-1]
                epochs.set_postfix(loss=f"{last['train_loss']:.4f}", val_map=f"{last['val_map']:.2f}")
        return self._finish()

    def _patience_ran_out(self) -> bool:
        patience = self.config.patience
        return patience is not None and self.state.bad_epochs >= patience

    def _one_epoch(self) -> None:
        epoch = self.state.epoch
        start = time.perf_counter()
        loss, steps = self._train_epoch(epoch)
        train_s = time.perf_counter() - start
        val = self.evaluate(self.val_set, desc=f"val {epoch + 1}", with_ci=False)
        if val.n_pairs == 0:
            raise ConfigError(
                f"no {self.config.val_split!r} video of {self.config.data!r} has a positive step "
                f"({val.n_skipped} skipped): validation mAP, and so model selection, is undefined"
            )
        seconds = time.perf_counter() - start
        improved = val.map > self.state.best_val_map
        self.state.epoch = epoch + 1
        self.state.train_time_s += seconds
        if improved:
            self.state.best_val_map, self.state.best_epoch, self.state.bad_epochs = val.map, epoch + 1, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        else:
            self.state.bad_epochs += 1
        self.state.history.append(
            {
                "epoch": epoch + 1,
                "train_loss": loss,
                "train_steps": steps,
                "val_map": val.map,
                "val_user_map": val.user_map,
                "val_skipped": val.n_skipped,
                "train_seconds": train_s,
                "seconds": seconds,
            }
        )
        self._save(improved)
        self._say(
            f"epoch {epoch + 1}/{self.config.epochs}: train loss {loss:.5f} ({steps} steps, "
            f"{train_s:.1f}s), val mAP {val.map:.3f}{' (best)' if improved else ''}"
        )

    def _train_epoch(self, epoch: int) -> tuple[float, int]:
        """One pass over the training clips; returns (mean loss over rows, optimiser steps)."""
        self.ddp.train()
        loader = self._train_loader(epoch)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        rows = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not self.show, dynamic_ncols=True)
        steps = 0
        for steps, batch in enumerate(bar, start=1):
            loss = self._step(batch.to(self.device, non_blocking=True))
            total += loss.detach().double() * len(batch)
            rows += len(batch)
            if self.show and steps % 10 == 0:
                bar.set_postfix(loss=f"{total.item() / rows:.4f}")
        mean = float(total.item() / max(rows, 1))
        mean = self.ctx.mean(mean, rows)
        if not math.isfinite(mean):
            raise TrainingError(
                f"model {self.config.model!r}: the training loss became {mean} in epoch {epoch + 1}; "
                f"lower the learning rate (now {self.config.lr}) or check the data"
            )
        return mean, steps

    def _step(self, batch: Batch) -> torch.Tensor:
        """Forward, loss, backward, Adam step."""
        with autocast(self.device, self.config.precision):
            output = self.ddp(batch)
            loss = self.loss_fn(output, batch)
        if self.ctx.distributed or not loss.requires_grad:
            loss = loss + zero_tie(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.float()

    def evaluate(
        self, dataset: Dataset, desc: str, keep_scores: int = 0, with_ci: bool = True
    ) -> EvalResult:
        """Whole-video evaluation of the current weights, sharded over ranks."""
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
            with_ci=with_ci,
        )

    # ------------------------------------------------------------------ files

    def _payload(self, with_optimizer: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "build_args": dict(self.model.build_args),
            "model_card": self.card.to_dict(),
            "config": self.config.to_dict(),
            "epoch": self.state.epoch,
            "trainer_state": self.state.to_dict(),
            "history_cap": self.history_cap,
        }
        if with_optimizer:
            payload["optimizer_state"] = self.optimizer.state_dict()
        return payload

    def _save(self, improved: bool) -> None:
        """``last.pt`` every epoch (with every rank's RNG state); ``best.pt`` when improved."""
        rng = self.ctx.gather(capture_rng_state())
        if not self.ctx.is_main:
            return
        ckpt_dir = self.run_dir / runs.CHECKPOINT_DIR
        if improved:
            best = self._payload(with_optimizer=False)
            best["val_map"] = self.state.best_val_map
            save_checkpoint(ckpt_dir / "best.pt", best)
        save_checkpoint(ckpt_dir / "last.pt", {**self._payload(with_optimizer=True), "rng": rng})

    def _finish(self) -> Path:
        """Test the best checkpoint once and write results.json (rank 0)."""
        cfg = self.config
        stopped_early = self.state.epoch < cfg.epochs
        if self.best_state is None:
            raise TrainingError(f"model {cfg.model!r}: no epoch finished, nothing to test")
        self.model.load_state_dict(self.best_state)
        test_set = self._eval_dataset(cfg.test_split)
        start = time.perf_counter()
        test = self.evaluate(test_set, desc="test", keep_scores=cfg.trace_videos)
        test_s = time.perf_counter() - start
        if self.ctx.is_main:
            results = {
                "kind": "highlightzoo-train-results",
                "schema_version": 1,
                "model": cfg.model,
                "data": cfg.data,
                "split": cfg.test_split,
                **test.summary(),
                "ap_mode": "interpolated",
                "best_epoch": self.state.best_epoch,
                "best_val_map": self.state.best_val_map,
                "epochs_run": self.state.epoch,
                "stopped_early": stopped_early,
                "training_time_s": self.state.train_time_s,
                "test_time_s": test_s,
                "history": self.state.history,
                "records": test.to_dict()["records"],
                "skipped": test.skipped,
                "scores": test.scores,
                "history_cap": self.history_cap,
                "model_card": self.card.to_dict(),
                "build_args": dict(self.model.build_args),
                "config": cfg.to_dict(),
                "provenance": runs.provenance(
                    self.device, device_name(self.device), cfg.seed, self.ctx.world_size
                ),
            }
            runs.write_json(self.run_dir / runs.RESULTS_FILE, results)
        self._say(
            f"test mAP {test.map:.3f} (95% CI {_fmt_ci(test.ci)}, {test.n_pairs} videos, "
            f"{test.n_skipped} skipped) from epoch {self.state.best_epoch}; "
            f"results in {self.run_dir / runs.RESULTS_FILE}"
        )
        self.ctx.barrier()
        return self.run_dir

    def _say(self, message: str) -> None:
        """Log to train.log (rank 0) and, unless quiet, to the console."""
        if not self.ctx.is_main:
            return
        self.log.info(message)
        if self.show:
            tqdm.write(message)
