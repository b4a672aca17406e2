"""Benchmark presets: how big a world and how much training each table run gets.

A preset fixes everything the tables depend on except the model and the
training seed: the synthetic world, the training budget (identical for every
model of a preset) and the evaluation protocol. Presets are sized to machines
(``quick``: this 2-core CPU; ``standard``: one H100/H200; ``paper``: the PR-Net
paper's protocol, Sec. 3.4) and never tuned to make one model win.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from highlightzoo.checks import int_at_least
from highlightzoo.errors import ConfigError
from highlightzoo.models.registry import check_model_overrides
from highlightzoo.training.config import parse_override


@dataclass(frozen=True)
class EvalSettings:
    """Evaluation settings of a preset (the AP itself is the trainer's default,
    the interpolated PHD-GIFs/Video2GIF AP of docs/evaluation.md).

    ``hit_k``: k of hit@k; ``trace_videos``: how many test videos keep their
    per-step scores in results.json for the score-over-time figure.
    """

    hit_k: int = 5
    trace_videos: int = 3


@dataclass(frozen=True)
class BenchPreset:
    """One benchmark preset (plain data; saved in every results.json).

    The training rules are the same for every model of a preset
    (docs/training.md, "Budget and convergence"): a budget of ``max_steps``
    optimiser steps (or ``epochs`` passes when ``max_steps`` is None),
    validation every ``eval_every`` steps, early stopping after ``patience``
    validations without an improvement of more than ``min_delta`` mAP points,
    never before ``min_steps``; ``sampling`` and ``protocol`` as in
    :class:`~highlightzoo.training.TrainConfig`. ``lr_grid``: the learning
    rates swept per model with seed 0 over the first ``sweep_steps`` steps
    (the highest validation mAP in that prefix wins, ties to the smaller rate;
    the chosen run then continues as seed 0's final run); empty = every model
    trains at ``lr``. ``num_workers`` (DataLoader processes) and ``precision``
    ("fp32" or CUDA-only "bf16" autocast) are the machine side.
    ``model_overrides`` only change a model's *size* where the paper's layer
    sizes assume 8192-d C3D input; they are keyed by model name and go to
    ``create_model`` unchanged.
    """

    name: str
    world: str
    world_seed: int
    batch_size: int
    lr: float
    patience: int | None
    clip_len: int
    seeds: int
    device: str
    epochs: int | None = None
    max_steps: int | None = None
    eval_every: int | None = None
    min_steps: int = 0
    min_delta: float = 0.0
    lr_grid: tuple[float, ...] = ()
    sweep_steps: int = 0
    sampling: str = "leave_one_out"
    protocol: str = "avhd"
    num_workers: int = 0
    precision: str = "fp32"
    model_overrides: dict[str, dict] = field(default_factory=dict)
    eval: EvalSettings = field(default_factory=EvalSettings)
    target: str = ""

    def __post_init__(self) -> None:
        for name, flag in (("epochs", "--epochs"), ("max_steps", "--max-steps")):
            int_at_least(getattr(self, name), 1, f"preset {self.name!r}: {name} ({flag})",
                         allow_none=True)
        if self.lr_grid and (self.eval_every is None or self.sweep_steps < self.eval_every):
            raise ConfigError(
                f"preset {self.name!r}: a learning-rate sweep needs eval_every and sweep_steps >= "
                f"eval_every (got {self.eval_every!r}, {self.sweep_steps!r})"
            )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["lr_grid"] = list(self.lr_grid)
        return data

    def overrides_for(self, model: str) -> dict:
        """The ``create_model`` overrides this preset gives ``model`` (often none)."""
        return dict(self.model_overrides.get(model, {}))

    def with_model_overrides(self, items: list[str]) -> BenchPreset:
        """This preset with ``MODEL.KEY=VALUE`` items (``bench tables --model-override``) added to
        its ``model_overrides``; the value is read as JSON when it parses (as ``train --set``).
        The overrides are part of the recorded preset, so a folder run with other overrides is
        refused on resume and the table footnote names them."""
        merged = {model: dict(values) for model, values in self.model_overrides.items()}
        for item in items:
            target, sep, _ = item.partition("=")
            model, dot, key = target.partition(".")
            if not sep or not dot or not model.strip() or not key.strip():
                raise ConfigError(f"model override {item!r} must look like MODEL.KEY=VALUE")
            name, value = parse_override(item[len(model) + 1 :])
            model = model.strip()
            check_model_overrides(model, {name: value})
            merged.setdefault(model, {})[name] = value
        return replace(self, model_overrides=merged)

    def rule_text(self) -> str:
        """The training rules in one line (table footnotes, progress)."""
        budget = f"{self.max_steps} steps" if self.max_steps else f"{self.epochs} passes"
        lrs = "lr " + ("/".join(f"{x:g}" for x in self.lr_grid) + f" chosen on validation after "
                       f"{self.sweep_steps} steps" if self.lr_grid else f"{self.lr:g}")
        return (
            f"cap {budget}, validation every {self.eval_every or 'pass'} steps, patience "
            f"{self.patience} validations after {self.min_steps} steps (min_delta {self.min_delta:g}), "
            f"batch {self.batch_size} clips of {self.clip_len} steps ({self.sampling}), {lrs}, "
            f"protocol {self.protocol}"
        )


# FCSN, A-VHD and Video2GIF keep the reference layer sizes (64..512 conv channels, fc6/fc7 =
# 4096; Video2GIF's C3D fc6 4096 -> 512 -> 128) only for 8192-d C3D input; on 64/256-d
# synthetic features a quarter width (FCSN/A-VHD: 16..128 channels, fc 1024; Video2GIF:
# 1024 -> 128 -> 32) keeps them trainable on a CPU. The same multiplier for all three.
# (At width 1.0 one quick-world FCSN epoch took ~200 s on 2 cores.)
_NARROW_FCN = {m: {"width_mult": 0.25} for m in ("fcsn", "avhd", "video2gif")}

# Learning-rate grid of the sweep: half-decade steps around Adam's default 1e-3 (the PR-Net
# paper's setting). The A-VHD reference trains with 1e-4 at batch 1; at our 16 clips per batch
# the linear scaling rule puts that at ~1.6e-3, inside the grid (docs/training.md).
LR_GRID = (3e-4, 1e-3, 3e-3)

# The fair comparison: every model trained to convergence under the same rules, at a
# learning rate chosen per model on the validation users (seed 0, first 500 steps) from
# LR_GRID. min_steps: on measured learning curves (docs/training.md) the slowest learner,
# FCSN, leaves its initial plateau after 150-250 steps at lr 1e-3; 500 leaves room for 3e-4.
CONVERGED = BenchPreset(
    name="converged",
    world="quick",
    world_seed=0,
    batch_size=16,
    lr=1e-3,
    lr_grid=LR_GRID,
    sweep_steps=500,
    patience=4,
    min_steps=500,
    min_delta=0.1,
    max_steps=3000,
    eval_every=50,
    clip_len=256,
    seeds=3,
    device="cpu",
    model_overrides=_NARROW_FCN,
    target="15 models x 3 seeds + lr sweep, every final run stopped by patience; about "
           "1 h 50 min on a 2-core CPU with --jobs 2 (measured, docs/benchmark.md)",
)

PRESETS: dict[str, BenchPreset] = {
    # A <= 20 min CPU demonstration: one learning rate and a short cap, so rows may not
    # converge; the tables say which (column "converged").
    "quick": BenchPreset(
        name="quick",
        world="quick",
        world_seed=0,
        batch_size=16,
        lr=1e-3,
        patience=3,
        clip_len=256,
        seeds=3,
        device="cpu",
        max_steps=250,
        eval_every=50,
        model_overrides=_NARROW_FCN,
        target="15 models x 3 seeds (+2 floors) in <= 20 min on a 2-core CPU (--jobs 2)",
    ),
    "converged": CONVERGED,
    # The converged rules on one GPU. world="quick" on purpose, not the bigger synthetic
    # world preset also called "standard": the same world as the CPU presets keeps CPU and
    # GPU tables comparable (docs/benchmark.md).
    "standard": replace(
        CONVERGED, name="standard", device="cuda", num_workers=4,
        target="the converged preset on one H100/H200 (time: benchmarks/gpu/run.sh)",
    ),
    # The paper's protocol (Sec. 3.4): 150 passes, 32 clips per batch, Adam with default
    # settings (lr 1e-3), clips of 256 steps, best validation (no early stop), on a world of
    # the paper's split sizes (9,478 / 750 / 675 users). Reference-width FCSN/A-VHD.
    "paper": BenchPreset(
        name="paper",
        world="paper",
        world_seed=0,
        epochs=150,
        batch_size=32,
        lr=1e-3,
        patience=None,
        clip_len=256,
        seeds=3,
        device="cuda",
        num_workers=8,
        model_overrides={},
        target="PR-Net paper Sec. 3.4: 150 passes, batch 32 clips, Adam defaults, 9,478 train users",
    ),
}


def get_preset(name: str) -> BenchPreset:
    """The preset called ``name`` (a typed error lists the choices)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown bench preset {name!r}; choices: {', '.join(PRESETS)}")
    return PRESETS[name]
