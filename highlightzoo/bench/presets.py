"""Benchmark presets: how big a world and how much training each table run gets.

A preset fixes everything the tables depend on except the model and the
training seed: the synthetic world, the training budget (identical for every
model of a preset) and the evaluation protocol. Presets are sized to machines
(``quick``: this 2-core CPU; ``standard``: one H100/H200; ``paper``: the PR-Net
paper's protocol, Sec. 3.4) and never tuned to make one model win.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from highlightzoo.errors import ConfigError


@dataclass(frozen=True)
class EvalSettings:
    """Evaluation settings of a preset (the AP itself is the trainer's default,
    the interpolated PHD-GIFs/Video2GIF AP of spec EVALUATION.md).

    ``hit_k``: k of hit@k; ``trace_videos``: how many test videos keep their
    per-step scores in results.json for the score-over-time figure.
    """

    hit_k: int = 5
    trace_videos: int = 3


@dataclass(frozen=True)
class BenchPreset:
    """One benchmark preset (plain data; saved in every results.json).

    The training budget (``epochs``, ``batch_size``, ``lr``, ``patience``,
    ``clip_len``) is the same for every model; ``num_workers`` (DataLoader
    processes) and ``precision`` ("fp32" or CUDA-only "bf16" autocast) are
    the machine side. ``model_overrides`` only change
    a model's *size* where the paper's layer sizes assume 8192-d C3D input
    (e.g. a narrower FCSN/A-VHD ``width`` on small synthetic features); they
    are keyed by model name and go to ``create_model`` unchanged.
    """

    name: str
    world: str
    world_seed: int
    epochs: int
    batch_size: int
    lr: float
    patience: int | None
    clip_len: int
    seeds: int
    device: str
    num_workers: int = 0
    precision: str = "fp32"
    model_overrides: dict[str, dict] = field(default_factory=dict)
    eval: EvalSettings = field(default_factory=EvalSettings)
    target: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def overrides_for(self, model: str) -> dict:
        """The ``create_model`` overrides this preset gives ``model`` (often none)."""
        return dict(self.model_overrides.get(model, {}))


# FCSN and A-VHD keep the reference layer sizes (64..512 conv channels, fc6/fc7 = 4096)
# only for 8192-d C3D input; on 64/256-d synthetic features a quarter width (16..128
# channels, fc 1024) keeps them trainable on a CPU. Same width for both, so their
# comparison stays fair. (At width 1.0 one quick-world FCSN epoch took ~200 s on 2 cores.)
_NARROW_FCN = {"fcsn": {"width": 0.25}, "avhd": {"width": 0.25}}

PRESETS: dict[str, BenchPreset] = {
    "quick": BenchPreset(
        name="quick",
        # Measured: 14 min 08 s wall for 45 runs on the 2-core CPU (docs/performance.md).
        world="quick",
        world_seed=0,
        epochs=8,
        batch_size=16,
        lr=1e-3,
        patience=3,
        clip_len=256,
        seeds=3,
        device="cpu",
        model_overrides=_NARROW_FCN,
        target="15 models x 3 seeds in <= 20 min on a 2-core CPU",
    ),
    # Same world as `quick` (so CPU and GPU tables are comparable) with a longer budget.
    # These models are small: on a GPU an epoch is bound by the input pipeline and
    # per-step overheads, not FLOPs, so a bigger world would not fit 45 runs in 6 min.
    # Estimate from the CPU measurements (docs/performance.md): ~0.65 s/epoch and ~2 s
    # per-run overhead -> 45 x (2 + ~11 x 0.65) s ~ 6.5 min worst case, less with early
    # stops. NOT MEASURED: no GPU was lent to the session that wrote it.
    "standard": BenchPreset(
        name="standard",
        world="quick",
        world_seed=0,
        epochs=12,
        batch_size=16,
        lr=1e-3,
        patience=4,
        clip_len=256,
        seeds=3,
        device="cuda",
        num_workers=4,
        model_overrides=_NARROW_FCN,
        target="15 models x 3 seeds in <= 6 min on one H100/H200 (estimated, not yet measured)",
    ),
    # The paper's protocol (Sec. 3.4): 150 epochs, 32 users per batch, Adam with default
    # settings (lr 1e-3), clips of 256 steps, best epoch on validation (no early stop),
    # on a world of the paper's split sizes (9,478 / 750 / 675 users). Reference-width
    # FCSN/A-VHD (no overrides).
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
        target="PR-Net paper Sec. 3.4: 150 epochs, batch 32 users, Adam defaults, 9,478 train users",
    ),
}


def get_preset(name: str) -> BenchPreset:
    """The preset called ``name`` (a typed error lists the choices)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown bench preset {name!r}; choices: {', '.join(PRESETS)}")
    return PRESETS[name]
