"""Feature backbones: networks that turn decoded video frames into one vector per feature step.

Two kinds (docs/your-own-data.md, "Backbones"):

- **clip** backbones (``r3d_18``, ``r2plus1d_18``): 3-D ResNets trained on
  Kinetics-400; one feature step = one clip of ``frames_per_step`` consecutive
  frames, embedded whole (the role C3D plays in the PR-Net paper).
- **frame** backbones (``resnet18``): a 2-D ResNet trained on ImageNet; every
  frame is embedded alone and the ``frames_per_step`` frames of a step are
  mean-pooled.

The networks are written here (no torchvision import, which needs a torch
build that matches it) with the parameter names and shapes of torchvision's
models, so torchvision's published weights load unchanged: ``weights="default"``
downloads them once with torch's usual cache (``torch.hub``), a path loads a
local state dict, ``"none"`` gives seeded random weights (the same for every
call, so tests and ``predict --video`` agree with ``features extract``).
The feature of a step is the 512-d global average pool before the classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from einops import rearrange, reduce
from torch import nn

from highlightzoo.errors import CheckpointError, ConfigError
from highlightzoo.io import file_sha256

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: seed of the random weights of ``--weights none``
RANDOM_WEIGHTS_SEED = 0


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone needs and gives.

    ``fps``: frames per second it is fed (frames are resampled to it);
    ``frames_per_step``: frames per feature step, so the feature rate is
    ``fps / frames_per_step`` steps/s; ``resize``: (height, width) the frame is
    resized to before the centre ``crop`` (``(0, short)``: keep the aspect ratio,
    shorter side ``short``); ``url``: torchvision's published weights.
    """

    name: str
    kind: str  # "clip" or "frame"
    feature_dim: int
    fps: float
    frames_per_step: int
    resize: tuple[int, int]
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str  # identifier of the default weights
    url: str
    description: str

    @property
    def rate(self) -> float:
        """Feature steps per second."""
        return self.fps / self.frames_per_step

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


# The paper's C3D features: one step per 16 frames at 30 fps = 1.875 steps/s; every backbone
# here keeps that rate, so stores made with either kind line up with the paper's.
BACKBONES: dict[str, BackboneSpec] = {
    "r3d_18": BackboneSpec(
        "r3d_18", "clip", 512, 30.0, 16, (128, 171), 112, KINETICS_MEAN, KINETICS_STD,
        "torchvision R3D_18_Weights.KINETICS400_V1",
        "https://download.pytorch.org/models/r3d_18-b3b3357e.pth",
        "3-D ResNet-18 (Kinetics-400), one step per 16-frame clip at 30 fps",
    ),  # fmt: skip
    "r2plus1d_18": BackboneSpec(
        "r2plus1d_18", "clip", 512, 30.0, 16, (128, 171), 112, KINETICS_MEAN, KINETICS_STD,
        "torchvision R2Plus1D_18_Weights.KINETICS400_V1",
        "https://download.pytorch.org/models/r2plus1d_18-91a641e6.pth",
        "(2+1)-D ResNet-18 (Kinetics-400), one step per 16-frame clip at 30 fps",
    ),  # fmt: skip
    "resnet18": BackboneSpec(
        "resnet18", "frame", 512, 7.5, 4, (0, 256), 224, IMAGENET_MEAN, IMAGENET_STD,
        "torchvision ResNet18_Weights.IMAGENET1K_V1",
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        "2-D ResNet-18 (ImageNet), frames at 7.5 fps, 4 frames mean-pooled per step",
    ),  # fmt: skip
}


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec of a backbone, or a :class:`ConfigError` listing the choices."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choices: {', '.join(sorted(BACKBONES))}") from None


# ----------------------------------------------------------------------------- 3-D ResNets


def _conv3d(cin: int, cout: int, mid: int, stride: int) -> nn.Module:
    """A full 3x3x3 convolution (R3D)."""
    return nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv2plus1d(cin: int, cout: int, mid: int, stride: int) -> nn.Module:
    """A 1x3x3 spatial then 3x1x1 temporal convolution through ``mid`` channels (R(2+1)D)."""
    return nn.Sequential(
        nn.Conv3d(cin, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, cout, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
    )


class _Block3d(nn.Module):
    """Residual block of two convolutions; ``mid`` keeps R(2+1)D's parameter count equal to R3D's."""

    def __init__(self, cin: int, cout: int, conv: Callable[..., nn.Module], stride: int) -> None:
        super().__init__()
        mid = (cin * cout * 27) // (cin * 9 + 3 * cout)
        self.conv1 = nn.Sequential(conv(cin, cout, mid, stride), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(cout, cout, mid, 1), nn.BatchNorm3d(cout))
        self.downsample = (
            nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))
            if stride != 1 or cin != cout else None
        )  # fmt: skip
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + skip)


class VideoResNet18(nn.Module):
    """A Kinetics-style 3-D ResNet-18: (N, 3, T, H, W) clips -> (N, 512) pooled features."""

    def __init__(self, factorised: bool, num_classes: int = 400) -> None:
        super().__init__()
        conv = _conv2plus1d if factorised else _conv3d
        if factorised:
            self.stem = nn.Sequential(
                nn.Conv3d(3, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                nn.BatchNorm3d(45), nn.ReLU(inplace=True),
                nn.Conv3d(45, 64, (3, 1, 1), padding=(1, 0, 0), bias=False),
                nn.BatchNorm3d(64), nn.ReLU(inplace=True),
            )  # fmt: skip
        else:
            self.stem = nn.Sequential(
                nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
                nn.BatchNorm3d(64), nn.ReLU(inplace=True),
            )  # fmt: skip
        widths = (64, 128, 256, 512)
        cin = 64
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(_Block3d(cin, width, conv, stride), _Block3d(width, width, conv, 1)))
            cin = width
        self.fc = nn.Linear(512, num_classes)  # kept so published weights load; not used

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.stem(clips)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return reduce(x, "n c t h w -> n c", "mean")


# ----------------------------------------------------------------------------- 2-D ResNet


class _Block2d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else None
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + skip)


class ImageResNet18(nn.Module):
    """An ImageNet ResNet-18: (N, 3, H, W) frames -> (N, 512) pooled features."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for i, width in enumerate((64, 128, 256, 512), start=1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(_Block2d(cin, width, stride), _Block2d(width, width, 1)))
            cin = width
        self.fc = nn.Linear(512, num_classes)  # kept so published weights load; not used

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(frames))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return reduce(x, "n c h w -> n c", "mean")


def build_network(name: str) -> nn.Module:
    """The untrained network of backbone ``name``."""
    spec = get_backbone_spec(name)
    if spec.name == "resnet18":
        return ImageResNet18()
    return VideoResNet18(factorised=spec.name == "r2plus1d_18")


# ----------------------------------------------------------------------------- weights


def _load_state(net: nn.Module, state: Any, where: str) -> None:
    """Load a state dict (or ``{"state_dict": ...}``) into ``net``; a mismatch names the file."""
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"weights file {where!r} does not hold a state dict")
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    bad = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or bad:
        raise CheckpointError(
            f"weights file {where!r} does not fit this backbone (missing {missing[:3]}, wrong shape "
            f"{bad[:3]}): weights of another network?"
        )
    net.load_state_dict({k: state[k] for k in own})


def load_backbone(name: str, weights: str = "default", *, progress: bool = True) -> tuple[nn.Module, str]:
    """The network of backbone ``name`` in eval mode, and the identifier of its weights.

    ``weights``: ``"default"`` (torchvision's published weights, downloaded
    once to torch's hub cache), ``"none"`` (random weights, seeded with
    :data:`RANDOM_WEIGHTS_SEED`: the same on every call) or a path to a state dict.
    """
    spec = get_backbone_spec(name)
    if weights == "none":
        state = torch.random.get_rng_state()
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        try:
            net = build_network(name)
        finally:
            torch.random.set_rng_state(state)
        ident = f"none (random, seed {RANDOM_WEIGHTS_SEED})"
    elif weights == "default":
        net = build_network(name)
        try:
            state = torch.hub.load_state_dict_from_url(spec.url, progress=progress, map_location="cpu")
        except (OSError, RuntimeError) as err:  # no network, truncated download
            raise CheckpointError(
                f"cannot download the {name} weights from {spec.url} ({type(err).__name__}: {err}); "
                "download the file elsewhere and pass it with --weights PATH"
            ) from None
        _load_state(net, state, spec.url)
        ident = spec.weights
    else:
        path = Path(weights)
        if not path.is_file():
            raise CheckpointError(f"weights file {weights!r} does not exist (or use 'default' / 'none')")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # any unreadable file: one typed error naming it
            raise CheckpointError(
                f"weights file {str(path)!r} is unreadable ({type(err).__name__}: {err})"
            ) from None
        net = build_network(name)
        _load_state(net, state, str(path))
        ident = f"file {path.name} sha256:{file_sha256(path)[:16]}"
    return net.eval(), ident


def embed_frames(net: nn.Module, spec: BackboneSpec, frames: torch.Tensor) -> torch.Tensor:
    """(S * frames_per_step, 3, H, W) normalised frames -> (S, D) step features."""
    per = spec.frames_per_step
    if spec.kind == "clip":
        clips = rearrange(frames, "(s f) c h w -> s c f h w", f=per)
        return net(clips)
    return reduce(net(frames), "(s f) d -> s d", "mean", f=per)
