"""Streamed video decoding (PyAV): frames resampled to a fixed rate, one at a time.

:func:`resampled_frames` never holds more than two decoded frames, so memory
does not grow with the video's length; the caller batches them. Every way a
file can be unreadable (missing, not a video, truncated, corrupt) is a
:class:`~highlightzoo.errors.VideoDecodeError` naming the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from highlightzoo.errors import ConfigError, VideoDecodeError

#: file endings ``features extract`` picks up in a folder
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".gif")
#: a stream that decodes to less than this share of its stated duration is truncated
MIN_DECODED_SHARE = 0.9


def _require_av():
    try:
        import av
    except ImportError:
        raise ConfigError(
            "reading video files needs PyAV: pip install 'highlightzoo[video]'"
        ) from None
    return av


@dataclass
class DecodeInfo:
    """What decoding found: source size, frame rate, frames decoded and duration in seconds."""

    width: int = 0
    height: int = 0
    source_fps: float = 0.0
    frames_decoded: int = 0
    frames_out: int = 0
    duration: float = 0.0
    stated_duration: float | None = None


def resampled_times(duration: float, fps: float) -> int:
    """Number of output frames at ``fps`` for a video of ``duration`` s: times ``k / fps < duration``."""
    return max(1, math.ceil(duration * fps - 1e-9))


def resampled_frames(
    path: str | os.PathLike,
    fps: float,
    size: Callable[[int, int], tuple[int, int]],
    info: DecodeInfo | None = None,
) -> Iterator[np.ndarray]:
    """RGB uint8 frames ``(H, W, 3)`` of ``path`` at ``fps``, resized to ``size(width, height)``.

    Output frame ``k`` (time ``k / fps``) is the last decoded frame shown at
    or before that time, so a video of duration ``d`` gives ``ceil(d * fps)``
    frames whatever its own frame rate. ``info`` is filled while decoding.
    """
    av = _require_av()
    info = info if info is not None else DecodeInfo()
    where = str(path)
    require_video_file(path)
    try:
        container = av.open(where)
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise VideoDecodeError(
            f"cannot open as a video: corrupt, truncated or not a video ({err})", path=where,
            reason="corrupt_video",
        ) from None
    try:
        if not container.streams.video:
            raise VideoDecodeError("file has no video stream", path=where, reason="no_video_stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        info.width, info.height = stream.codec_context.width, stream.codec_context.height
        info.source_fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        if stream.duration is not None and stream.time_base is not None:
            info.stated_duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            info.stated_duration = container.duration / 1e6
        out_w, out_h = size(info.width, info.height)
        start: float | None = None
        last: np.ndarray | None = None
        t = 0.0
        try:
            for frame in container.decode(stream):
                t_raw = frame.time if frame.time is not None else info.frames_decoded / info.source_fps
                start = t_raw if start is None else start
                t = t_raw - start
                while last is not None and info.frames_out / fps < t - 1e-9:
                    info.frames_out += 1
                    yield last
                last = frame.to_ndarray(width=out_w, height=out_h, format="rgb24")
                info.frames_decoded += 1
        except (av.error.FFmpegError, ValueError) as err:
            raise VideoDecodeError(
                f"corrupt video: decoding failed after {info.frames_decoded} frames ({err})",
                path=where, reason="corrupt_video",
            ) from None  # fmt: skip
        if last is None:
            raise VideoDecodeError("no frame could be decoded", path=where, reason="corrupt_video")
        info.duration = t + 1.0 / info.source_fps
        stated = info.stated_duration
        if stated is not None and stated > 0 and info.duration < MIN_DECODED_SHARE * stated - 1.0:
            raise VideoDecodeError(
                f"truncated video: decoded {info.duration:.2f} s of the stated {stated:.2f} s",
                path=where, reason="truncated_video",
            )  # fmt: skip
        while info.frames_out < resampled_times(info.duration, fps):
            info.frames_out += 1
            yield last
    finally:
        container.close()


def require_video_file(path: str | os.PathLike) -> None:
    """A :class:`VideoDecodeError` naming ``path`` (reason ``"no_file"``) when it is not a file."""
    if not Path(path).is_file():
        raise VideoDecodeError("video file does not exist", path=str(path), reason="no_file")


def video_files(inputs: list[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """``(file, explicit)`` for every input: a file as given, a folder's video files sorted.

    ``explicit`` is False for files found in a folder (a bad one is skipped, not fatal).
    """
    out: list[tuple[Path, bool]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            out += [(p, False) for p in found]
        else:
            out.append((path, True))
    return out
