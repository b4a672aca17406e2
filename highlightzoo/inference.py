"""Highlights for one new video: per-step scores, top-k segments in seconds, explanations.

:class:`Detector` wraps any zoo model (a trained checkpoint or a registered
name) and turns raw arrays into a :class:`~highlightzoo.data.dataset.Sample`,
which :func:`~highlightzoo.data.dataset.collate` makes a one-row
:class:`~highlightzoo.batch.Batch` exactly as in training and evaluation, so it
works for every model without knowing which one it holds.

Long videos are scored in windows of ``window_steps`` steps, each seen with
``context_steps`` extra steps on both sides that are scored but thrown away, so
memory does not grow with the video's length; a video no longer than one
window is scored whole, exactly as evaluation scores it. Models whose output
has ``attention`` / ``user_weight`` / ``generic_weight`` (PR-Net, Eq. 3 and 5)
also get an explanation per chosen segment, as in Fig. 7 of the PR-Net paper:
the history segments it attended to most, and how much the user-specific vs the
generic preference weighed inside it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from highlightzoo import metrics
from highlightzoo.batch import check_output, model_name
from highlightzoo.checks import int_at_least, is_real
from highlightzoo.data.dataset import Sample, collate
from highlightzoo.data.store_format import FEATURES_INFO_SHAPE
from highlightzoo.device import autocast, check_precision, feature_dtype, resolve_device
from highlightzoo.errors import ConfigError, DataFormatError
from highlightzoo.models.registry import create_model
from highlightzoo.shapes import shape_problem
from highlightzoo.training.checkpoint import (
    check_run_checkpoint,
    checkpoint_history_cap,
    load_checkpoint,
    model_from_checkpoint,
)

# ModelOutput extras that explanations use (per step: attention (T, N), weights (T,)).
EXPLANATION_KEYS = ("attention", "user_weight", "generic_weight")
#: what ``Detector.predict(**segment_options)`` may pass to ``metrics.top_k_segments``
SEGMENT_OPTIONS = tuple(
    p for p in inspect.signature(metrics.top_k_segments).parameters if p not in ("scores", "rate", "k")
)


@dataclass(frozen=True)
class SegmentExplanation:
    """Why one chosen segment was chosen (PR-Net paper Fig. 7).

    ``history``: ``(history segment index, mean attention a^u inside the
    segment)`` for the most attended history segments, highest first (empty
    with no history or for models without attention). ``user_weight`` /
    ``generic_weight``: the normalised ``q^c1`` / ``q^c2`` of Eq. 5 averaged
    over the segment's steps (None for models that do not give them).
    """

    start_s: float
    end_s: float
    history: list[tuple[int, float]]
    user_weight: float | None
    generic_weight: float | None


@dataclass
class Prediction:
    """Output of :meth:`Detector.predict` for one video.

    ``scores``: (T,) per-step scores (higher = more highlight); ``segments``:
    the top-k segments (``start_s``, ``end_s``, ``score``) in seconds, best
    first; ``explanations``: one per segment, or None for models without
    explanation outputs.
    """

    scores: np.ndarray
    rate: float
    segments: list[Any]
    explanations: list[SegmentExplanation] | None
    model: str

    def to_dict(self, with_scores: bool = True) -> dict[str, Any]:
        """Plain JSON-able data."""
        out: dict[str, Any] = {
            "model": self.model,
            "rate": self.rate,
            "n_steps": int(self.scores.shape[0]),
            "segments": [
                {"start_s": float(s.start_s), "end_s": float(s.end_s), "score": float(s.score)}
                for s in self.segments
            ],
            "explanations": (
                None if self.explanations is None else [asdict(e) for e in self.explanations]
            ),
        }
        if with_scores:
            out["scores"] = [float(x) for x in self.scores]
        return out


class Detector:
    """Score a video for a user with any zoo model.

    ``history_cap``: the most history segments given to the model (first ones
    kept), as in training; ``window_steps=None`` scores every video whole;
    ``features``: how the features the model was trained on were made (a checkpoint's
    ``features``, when its store said), so that ``predict`` refuses another rate.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device = "cpu",
        history_cap: int | None = None,
        window_steps: int | None = 4096,
        context_steps: int = 512,
        precision: str = "fp32",
        features: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"Detector needs a torch.nn.Module (create_model(...), or "
                              f"Detector.from_checkpoint(path)), got {model!r}")
        window_steps = int_at_least(window_steps, 1, "window_steps", allow_none=True)
        context_steps = int_at_least(context_steps, 0, "context_steps")
        history_cap = int_at_least(history_cap, 0, "history_cap", allow_none=True)
        self.device = resolve_device(device)
        precision = check_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.history_cap = history_cap
        self.window_steps, self.context_steps, self.precision = window_steps, context_steps, precision
        self.feature_dim = _feature_dim(model)
        problem = features is not None and shape_problem(features, FEATURES_INFO_SHAPE,
                                                         "features")
        if problem:  # an int or text was an AttributeError in predict
            raise ConfigError(f"features must be None or a description of how the features "
                              f"were made (a checkpoint's 'features'): {problem}")
        self.features = features

    @property
    def name(self) -> str:
        """The model's registered name (or its class name)."""
        return model_name(self.model)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str = "auto", **kwargs: Any) -> Detector:
        """A detector from a checkpoint file or a run folder (its best checkpoint).

        The history cap the model was trained with is applied. Bad checkpoints
        raise :class:`~highlightzoo.errors.CheckpointError`.
        """
        payload = load_checkpoint(path)
        check_run_checkpoint(payload)
        model = model_from_checkpoint(payload)
        kwargs.setdefault("history_cap", checkpoint_history_cap(payload))
        kwargs.setdefault("features", payload.get("features"))
        return cls(model, device=device, **kwargs)

    @classmethod
    def from_model(
        cls,
        name_or_module: str | nn.Module,
        *,
        feature_dim: int | None = None,
        device: str = "cpu",
        detector_args: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Detector:
        """A detector around a registered model (fresh weights) or a module you built.

        ``overrides`` go to :func:`~highlightzoo.models.registry.create_model`;
        ``detector_args`` to :class:`Detector` (e.g. ``window_steps``). The
        model card's history cap is applied unless ``detector_args`` sets one.
        """
        detector_args = dict(detector_args or {})
        if isinstance(name_or_module, nn.Module):
            if overrides:
                raise ConfigError("model overrides only apply when building a model by name")
            model = name_or_module
        else:
            if feature_dim is None:
                raise ConfigError(f"Detector.from_model({name_or_module!r}) needs feature_dim=")
            model = create_model(name_or_module, feature_dim=feature_dim, **overrides)
        card = getattr(model, "card", None)
        detector_args.setdefault("history_cap", card.history_cap if card is not None else None)
        return cls(model, device=device, **detector_args)

    # ------------------------------------------------------------------ prediction

    @torch.inference_mode()
    def predict(
        self,
        video_features: np.ndarray | torch.Tensor,
        history_segments: Sequence[np.ndarray | torch.Tensor] = (),
        rate: float = 1.0,
        top_k: int = 5,
        *,
        history_video: Sequence[int] | None = None,
        explain_top: int = 3,
        **segment_options: Any,
    ) -> Prediction:
        """Scores, top-k segments and explanations for one video and one user's history.

        ``video_features``: (T, D); ``history_segments``: N arrays of shape
        (L_j, D), possibly none; ``rate``: feature steps per second;
        ``history_video``: the history-video index of each segment (default:
        every segment its own video). ``segment_options`` go to
        :func:`highlightzoo.metrics.top_k_segments`.
        """
        if not (is_real(rate) and math.isfinite(float(rate)) and float(rate) > 0):
            raise ConfigError(f"rate must be a positive number of steps per second, got {rate!r}")
        trained = (self.features or {}).get("rate")
        if trained is not None and not math.isclose(float(rate), trained, rel_tol=1e-6):
            raise ConfigError(  # another rate puts every segment at other seconds
                f"rate {float(rate):g} differs from the {trained:g} steps/s of the features "
                f"model {self.name!r} was trained on ({self.features.get('backbone')}); "
                f"features at another rate are not what it learnt from"
            )
        int_at_least(top_k, 1, "top_k")
        int_at_least(explain_top, 0, "explain_top")
        unknown = sorted(set(segment_options) - set(SEGMENT_OPTIONS))
        if unknown:  # before the model runs, not as top_k_segments' TypeError after it
            raise ConfigError(
                f"unknown segment option {', '.join(map(repr, unknown))}; the options: "
                f"{', '.join(SEGMENT_OPTIONS)} (highlightzoo.metrics.top_k_segments)"
            )
        video = as_features(video_features, self.feature_dim, "video features")
        segments = [] if history_segments is None else _as_list(history_segments, "history_segments")
        owners = (
            _history_owners(history_video, len(segments))
            if history_video is not None else list(range(len(segments)))
        )  # fmt: skip
        if self.history_cap is not None:
            segments, owners = segments[: self.history_cap], owners[: self.history_cap]
        history = [
            as_features(h, self.feature_dim, f"history segment {j}") for j, h in enumerate(segments)
        ]
        scores, extras = self._score(video, history, owners, float(rate))
        if not np.isfinite(scores).all():  # e.g. huge feature values overflowing inside the model
            raise DataFormatError(
                f"model {self.name!r} gave non-finite scores for these inputs (largest |feature| "
                f"{float(video.abs().max()):.3g}); check the feature scale"
            )
        chosen = metrics.top_k_segments(scores, float(rate), top_k, **segment_options)
        explanations = None
        if extras:
            explanations = [explain(seg, extras, float(rate), explain_top) for seg in chosen]
        return Prediction(scores, float(rate), list(chosen), explanations, self.name)

    def _score(
        self, video: torch.Tensor, history: list[torch.Tensor], owners: list[int], rate: float
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Per-step scores (T,) and explanation extras, window by window.

        Each window is one :class:`Sample` (no labels: zeros) made a Batch by
        :func:`collate`, the only producer of batches (docs/architecture.md).
        """
        n_steps = video.shape[0]
        scores = np.empty(n_steps, dtype=np.float32)
        extras: dict[str, np.ndarray] = {}
        for start, stop, lo, hi in windows(n_steps, self.window_steps, self.context_steps):
            sample = Sample(
                video=video[lo:hi], labels=torch.zeros(hi - lo), history=history,
                history_video=owners, rate=rate, user_id="user", video_id="video", offset=lo,
            )  # fmt: skip
            batch = collate([sample], feature_dtype(self.precision)).to(self.device)
            with autocast(self.device, self.precision):
                output = check_output(self.model(batch), batch, self.model)
            keep = slice(start - lo, stop - lo)
            scores[start:stop] = output.scores[0, keep].float().cpu().numpy()
            for key in EXPLANATION_KEYS:
                if key in output.extras:
                    value = output.extras[key][0, keep].float().cpu().numpy()
                    if key not in extras:
                        extras[key] = np.zeros((n_steps, *value.shape[1:]), dtype=np.float32)
                    extras[key][start:stop] = value
        return scores, extras


def windows(
    n_steps: int, window: int | None, context: int
) -> list[tuple[int, int, int, int]]:
    """``(start, stop, lo, hi)`` per window: keep steps ``start:stop``, run the model on ``lo:hi``.

    One window ``(0, T, 0, T)`` when ``window`` is None or ``T <= window``.
    """
    if window is None or n_steps <= window:
        return [(0, n_steps, 0, n_steps)]
    out = []
    for start in range(0, n_steps, window):
        stop = min(start + window, n_steps)
        out.append((start, stop, max(0, start - context), min(n_steps, stop + context)))
    return out


def explain(segment: Any, extras: dict[str, np.ndarray], rate: float, top: int) -> SegmentExplanation:
    """Average attention and preference weights over the steps of one chosen segment."""
    n_steps = next(iter(extras.values())).shape[0]
    first = min(max(int(math.floor(segment.start_s * rate)), 0), n_steps - 1)
    stop = min(max(int(math.ceil(segment.end_s * rate)), first + 1), n_steps)
    history: list[tuple[int, float]] = []
    attention = extras.get("attention")
    if attention is not None and attention.shape[-1] > 0:
        mean = attention[first:stop].mean(axis=0)
        order = np.argsort(-mean, kind="stable")[:top]
        history = [(int(j), float(mean[j])) for j in order]

    def avg(key: str) -> float | None:
        return float(extras[key][first:stop].mean()) if key in extras else None

    return SegmentExplanation(
        float(segment.start_s), float(segment.end_s), history, avg("user_weight"), avg("generic_weight")
    )


def _as_list(items: Any, what: str) -> list[Any]:
    """A list of the items of a sequence (a (N, L, D) array gives N segments)."""
    if not isinstance(items, str | bytes) and hasattr(items, "__iter__"):
        try:
            return list(items)
        except TypeError:  # e.g. a 0-d array
            pass
    raise DataFormatError(f"{what} must be a sequence, got {type(items).__name__}")


def _history_owners(history_video: Any, n_segments: int) -> list[int]:
    """History-video index of each segment: integers in [0, n_segments), one per segment.

    An integral float (2.0) is taken as its integer; 2.5, a negative or a too
    large index is an error, never truncated or clipped.
    """
    values = _as_list(history_video, "history_video")
    if len(values) != n_segments:
        raise DataFormatError(
            f"history_video has {len(values)} entries for {n_segments} history segments"
        )
    owners = []
    for j, v in enumerate(values):
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        if not is_real(v) or not math.isfinite(float(v)) or float(v) != int(v):
            raise DataFormatError(f"history_video[{j}] = {v!r} is not an integer video index")
        if not 0 <= int(v) < n_segments:
            raise DataFormatError(
                f"history_video[{j}] = {int(v)} is outside [0, {n_segments}): number the history "
                "videos 0, 1, ... in order of first appearance"
            )
        owners.append(int(v))
    return owners


def _feature_dim(model: nn.Module) -> int | None:
    """The feature dim a zoo model was built for (None for a bare module)."""
    build_args = getattr(model, "build_args", None) or {}
    return build_args.get("feature_dim")


def as_features(
    array: np.ndarray | torch.Tensor, dim: int | None, what: str, path: str | None = None
) -> torch.Tensor:
    """A (T, D) float32 CPU tensor, checked: numbers, 2-D, T >= 1, D = ``dim`` (None: any),
    finite, and within float32's range (a larger value would silently become infinite).

    ``what`` names the array in the :class:`DataFormatError` (``"video features"``), and
    ``path`` the file it came from, when there is one (``highlightzoo predict`` checks what
    it loads here, so its errors name the file).
    """
    def refuse(message: str) -> DataFormatError:
        return DataFormatError(message, path=path)

    if isinstance(array, torch.Tensor):
        if array.is_complex() or array.dtype == torch.bool:
            raise refuse(f"{what}: not real numbers (a {array.dtype} tensor)")
        tensor = array.detach().cpu()
        if tensor.is_floating_point():
            _check_float32_values(bool(tensor.isfinite().all()),
                                  float(tensor.abs().max()) if tensor.numel() else 0.0, what, path)
    else:
        try:  # ragged lists, strings and objects are refused, never guessed at
            values = np.asarray(array)
        except (ValueError, TypeError) as err:
            raise refuse(f"{what}: not a rectangular array of numbers ({err})") from None
        if values.dtype.kind not in "fiu":
            raise refuse(f"{what}: not real numbers (dtype {values.dtype})")
        if values.dtype.kind == "f":
            _check_float32_values(bool(np.isfinite(values).all()),
                                  float(np.abs(values).max()) if values.size else 0.0, what, path)
        tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    if tensor.ndim != 2 or tensor.shape[0] < 1:
        raise refuse(f"{what}: a (steps >= 1, D) array is needed, got shape {tuple(tensor.shape)}")
    if dim is not None and tensor.shape[1] != dim:
        raise refuse(f"{what}: {tensor.shape[1]}-d features, but the model expects {dim}-d")
    return tensor.to(torch.float32)


def _check_float32_values(finite: bool, largest: float, what: str, path: str | None) -> None:
    """A typed error when the values are not all ``finite``, or when the ``largest``
    magnitude is beyond float32's range (the cast would make it infinite)."""
    if not finite:
        raise DataFormatError(f"{what}: NaN or infinite values", path=path)
    limit = float(np.finfo(np.float32).max)
    if largest > limit:
        raise DataFormatError(f"{what}: values beyond float32's range (|x| > {limit:.3g})",
                              path=path)

