"""Tiny generated videos for the tests of the ``[video]`` extra (PyAV writes them)."""

from __future__ import annotations

import numpy as np
import pytest


def write_video(path, seconds: float, fps: int = 10, size=(64, 48), seed: int = 0) -> None:
    """A small random-noise MPEG-4 video of ``seconds`` s (skips the test without PyAV)."""
    av = pytest.importorskip("av")
    rng = np.random.default_rng(seed)
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=fps)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    for _ in range(round(seconds * fps)):
        image = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
