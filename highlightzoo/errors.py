"""Typed errors of highlightzoo: every user-facing failure is one of these.

Each error names what it is about (file, user, video, checkpoint) so that a
message alone tells the user where to look. Catch ``HighlightZooError`` to
handle all of them.
"""

from __future__ import annotations


class HighlightZooError(Exception):
    """Base class of every error raised on purpose by highlightzoo."""


class DataFormatError(HighlightZooError, ValueError):
    """A feature store, CSV or feature file is malformed.

    ``path``, ``user`` and ``video`` say where; ``reason`` is a short tag
    (e.g. ``"nan_features"``) used by lenient readers to count skips.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        user: str | None = None,
        video: str | None = None,
        reason: str = "invalid",
    ) -> None:
        where = ", ".join(
            f"{k}={v!r}" for k, v in (("file", path), ("user", user), ("video", video)) if v
        )
        super().__init__(f"{message} [{where}]" if where else message)
        self.path, self.user, self.video, self.reason = path, user, video, reason


class VideoDecodeError(DataFormatError):
    """A video file is missing, not a video, truncated or corrupt; ``path`` names it."""


class MetricInputError(HighlightZooError, ValueError):
    """Scores/labels given to a metric are unusable (NaN, length mismatch, ...)."""


class NoPositiveLabelError(MetricInputError):
    """A video has no positive step, so its average precision is undefined."""


class ModelNotFoundError(HighlightZooError, KeyError):
    """``create_model`` was asked for a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ConfigError(HighlightZooError, ValueError):
    """A configuration value is invalid or inconsistent."""


class CheckpointError(HighlightZooError):
    """A checkpoint is truncated, of another model, or does not fit the data."""


class RunFolderError(HighlightZooError):
    """A run folder already exists or is not a run folder."""


class TrainingError(HighlightZooError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN/inf); names the model and epoch."""


class WriteError(HighlightZooError, OSError):
    """A file or folder cannot be written (no permission, disk full, ...); names the path.

    Nothing is left under the final name: writes go through a temp file first.
    """


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its type's name when empty): torch's messages can
    carry a C++ stack after it, which a one-line error must not print."""
    return next(iter(str(err).splitlines()), "") or type(err).__name__
