"""Video files -> per-video ``(T, D)`` features in an HDF5 file that ``data import-phdgifs`` reads.

Output layout (docs/your-own-data.md, "The features file")::

    /                   attrs: format = "highlightzoo-video-features", features (JSON:
                               backbone, kind, weights, rate, feature_dim, preprocessing)
    /features/<video>   (T, D) float32; attrs duration (s), source (file name), rate

``<video>`` is the file name without its ending (PHD-GIFs uses YouTube ids).
Frames are decoded as a stream (:mod:`highlightzoo.features.video`) and
embedded ``chunk_steps`` feature steps at a time, so memory stays bounded
for any video length. The file is written to a temp name and renamed.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from highlightzoo.data.store_format import (  # noqa: F401 (re-exported)
    FEATURES_ATTR,
    FEATURES_FORMAT,
    features_mismatch,
    read_features_info,
)
from highlightzoo.device import resolve_device
from highlightzoo.errors import ConfigError, DataFormatError, VideoDecodeError, WriteError
from highlightzoo.features.backbones import (
    BackboneSpec,
    embed_frames,
    get_backbone_spec,
    load_backbone,
)
from highlightzoo.features.video import (
    DecodeInfo,
    require_video_file,
    resampled_frames,
    video_files,
)
from highlightzoo.io import commit_temp_file, new_temp_file


@dataclass
class Extractor:
    """A loaded backbone with its preprocessing: ``extract(path)`` gives one video's features."""

    spec: BackboneSpec
    net: nn.Module
    weights: str
    crop: int
    device: torch.device
    chunk_steps: int = 32

    @classmethod
    def create(
        cls, backbone: str, weights: str = "default", *, crop: int | None = None,
        device: str = "cpu", chunk_steps: int = 32, progress: bool = True,
    ) -> Extractor:  # fmt: skip
        """Load ``backbone`` with ``weights`` (see :func:`load_backbone`); ``crop`` overrides its input size."""
        spec = get_backbone_spec(backbone)
        crop = spec.crop if crop is None else int(crop)
        if crop < 32:
            raise ConfigError(f"--crop must be >= 32 pixels, got {crop}")
        if chunk_steps < 1:
            raise ConfigError(f"chunk_steps must be >= 1, got {chunk_steps}")
        dev = resolve_device(device)  # before the weights, which may download
        net, ident = load_backbone(backbone, weights, progress=progress)
        return cls(spec, net.to(dev), ident, crop, dev, chunk_steps)

    @property
    def rate(self) -> float:
        return self.spec.rate

    def info(self) -> dict[str, Any]:
        """Plain data saying how features are made (stored with them, checked by ``predict``)."""
        return {
            "backbone": self.spec.name,
            "kind": self.spec.kind,
            "weights": self.weights,
            "rate": self.rate,
            "feature_dim": self.spec.feature_dim,
            "preprocessing": {
                "fps": self.spec.fps, "frames_per_step": self.spec.frames_per_step,
                "resize": list(self.resize_for(0, 0) if self.spec.resize[0] else (0, self._short())),
                "crop": self.crop, "mean": list(self.spec.mean), "std": list(self.spec.std),
                "last_step": "padded by repeating the last frame",
            },  # fmt: skip
        }

    def _short(self) -> int:
        return round(self.spec.resize[1] * self.crop / self.spec.crop)

    def resize_for(self, width: int, height: int) -> tuple[int, int]:
        """(height, width) a frame is resized to before the centre crop (scaled with ``crop``)."""
        scale = self.crop / self.spec.crop
        if self.spec.resize[0]:  # a fixed size
            return max(self.crop, round(self.spec.resize[0] * scale)), max(self.crop, round(self.spec.resize[1] * scale))
        short = self._short()
        if width >= height:
            return short, max(short, round(width * short / max(height, 1)))
        return max(short, round(height * short / max(width, 1))), short

    def _prepare(self, frames: list[np.ndarray]) -> torch.Tensor:
        """uint8 (H, W, 3) frames -> normalised, centre-cropped (N, 3, crop, crop) floats."""
        x = torch.from_numpy(np.stack(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        h, w = x.shape[-2:]
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        x = x[:, :, top : top + self.crop, left : left + self.crop]
        mean = torch.tensor(self.spec.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.inference_mode()
    def extract(self, path: str | os.PathLike, progress: bool = False) -> tuple[np.ndarray, float]:
        """``(features (T, D) float32, duration s)`` of one video file, in bounded memory.

        ``T = ceil(ceil(duration * fps) / frames_per_step)``: the last step is
        completed by repeating the last frame.
        """
        per = self.spec.frames_per_step
        chunk = self.chunk_steps * per
        info = DecodeInfo()
        out: list[np.ndarray] = []
        buffer: list[np.ndarray] = []

        def size(width: int, height: int) -> tuple[int, int]:
            h, w = self.resize_for(width, height)
            return w, h

        bar = tqdm(desc=Path(path).name, unit="s", disable=not progress, leave=False,
                   bar_format="{desc}: {n:.0f} s decoded [{elapsed}]")  # fmt: skip
        try:
            for frame in resampled_frames(path, self.spec.fps, size, info):
                buffer.append(frame)
                if len(buffer) == chunk:
                    out.append(self._embed(buffer))
                    bar.update(chunk / self.spec.fps)
                    buffer = []
        finally:
            bar.close()
        if buffer:
            buffer += [buffer[-1]] * (-len(buffer) % per)
            out.append(self._embed(buffer))
        feats = np.concatenate(out).astype(np.float32)
        expected = math.ceil(info.frames_out / per)
        assert feats.shape[0] == expected, (feats.shape, expected)
        if not np.isfinite(feats).all():
            raise DataFormatError("backbone gave non-finite features", path=str(path), reason="nan_features")
        return feats, float(info.duration)

    def _embed(self, frames: list[np.ndarray]) -> np.ndarray:
        return embed_frames(self.net, self.spec, self._prepare(frames)).float().cpu().numpy()


@dataclass
class ExtractReport:
    """Videos written (id -> steps, duration) and files skipped (path, reason)."""

    written: dict[str, tuple[int, float]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        steps = sum(n for n, _ in self.written.values())
        return f"{len(self.written)} videos ({steps} steps) written, {len(self.skipped)} skipped"


def videos_to_extract(inputs: list[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """``(file, explicit)`` for every video of ``inputs`` (files, or folders of video files),
    checked before any work: an explicit file that does not exist, no video at all, or two
    videos with one id (file name) are errors naming them. Cheap (no decoding), so the CLI
    runs it before it loads a backbone's weights."""
    files = video_files(list(inputs))
    if not files:
        raise ConfigError(f"no video files found in {[str(i) for i in inputs]}")
    ids: dict[str, Path] = {}
    for path, explicit in files:
        if explicit:
            require_video_file(path)
        if path.stem in ids:
            raise ConfigError(f"two videos have the id {path.stem!r}: {str(ids[path.stem])!r} and {str(path)!r}")
        ids[path.stem] = path
    return files


def extract_features(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    extractor: Extractor,
    *,
    progress: bool = True,
) -> ExtractReport:
    """Extract every video of ``inputs`` (files, or folders of video files) into ``out``.

    A file named explicitly that cannot be decoded raises its
    :class:`VideoDecodeError`; one found in a folder is skipped and reported.
    Two files with the same name (video id) are an error naming both.
    """
    files = videos_to_extract(inputs)
    report = ExtractReport()
    out = Path(out)
    tmp = new_temp_file(out)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FEATURES_FORMAT
            f.attrs[FEATURES_ATTR] = json.dumps(extractor.info(), sort_keys=True)
            group = f.create_group("features")
            for path, explicit in tqdm(files, desc="videos", unit="video", disable=not progress):
                try:
                    feats, duration = extractor.extract(path, progress=progress)
                except VideoDecodeError as err:
                    if explicit:
                        raise
                    report.skipped.append((str(path), str(err)))
                    if progress:
                        tqdm.write(f"skipped {path}: {err}")
                    continue
                ds = group.create_dataset(path.stem, data=feats, chunks=(min(256, len(feats)), feats.shape[1]))
                ds.attrs.update({"duration": duration, "source": path.name, "rate": extractor.rate})
                report.written[path.stem] = (int(feats.shape[0]), duration)
        if not report.written:
            raise VideoDecodeError(
                f"no video could be decoded ({len(report.skipped)} skipped); nothing written",
                path=str(inputs[0]), reason="corrupt_video",
            )  # fmt: skip
        commit_temp_file(tmp, out)
    except OSError as err:
        if isinstance(err, WriteError):
            raise
        raise WriteError(f"cannot write features file {str(out)!r}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return report
