"""Feature backbones and streamed extraction from video files (the ``[video]`` extra)."""

from __future__ import annotations

import math
import re

import h5py
import numpy as np
import pytest
import torch
from video_support import write_video

from highlightzoo.errors import CheckpointError, ConfigError, DataFormatError, VideoDecodeError
from highlightzoo.features import (
    BACKBONES,
    Extractor,
    extract_features,
    features_mismatch,
    load_backbone,
)
from highlightzoo.features.backbones import build_network
from highlightzoo.features.video import resampled_times


# Parameter counts torchvision publishes for these networks (with their classifier):
# equal counts and layer names mean torchvision's weights load unchanged.
@pytest.mark.parametrize(
    "name, n_params", [("r3d_18", 33_371_472), ("r2plus1d_18", 31_505_325), ("resnet18", 11_689_512)]
)
def test_networks_have_the_published_parameter_counts(name, n_params):
    assert sum(p.numel() for p in build_network(name).parameters()) == n_params


def test_every_backbone_keeps_the_paper_feature_rate():
    for spec in BACKBONES.values():
        assert spec.rate == pytest.approx(1.875) and spec.feature_dim == 512


def test_random_weights_are_the_same_on_every_call_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, ident = load_backbone("resnet18", "none")
    b, _ = load_backbone("resnet18", "none")
    assert torch.rand(1) == before  # the caller's random stream is untouched
    assert "random" in ident
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_weights_from_a_file_load_and_a_wrong_file_is_refused(tmp_path):
    net, _ = load_backbone("resnet18", "none")
    good = tmp_path / "r18.pt"
    torch.save(net.state_dict(), good)
    loaded, ident = load_backbone("resnet18", str(good))
    assert ident.startswith("file r18.pt sha256:")
    assert torch.equal(loaded.conv1.weight, net.conv1.weight)
    other = tmp_path / "r3d.pt"
    torch.save(build_network("r3d_18").state_dict(), other)
    with pytest.raises(CheckpointError, match="r3d.pt"):
        load_backbone("resnet18", str(other))
    with pytest.raises(ConfigError, match="unknown backbone"):
        load_backbone("c3d", "none")


def test_resampled_frame_count():
    assert resampled_times(10.0, 30.0) == 300
    assert resampled_times(4.05, 7.5) == 31  # times 0, 1/7.5, ... < 4.05
    assert resampled_times(0.01, 7.5) == 1


@pytest.mark.parametrize("backbone", ["resnet18", "r3d_18"])
def test_a_10_second_video_gives_duration_times_rate_steps(tmp_path, backbone):
    video = tmp_path / "clip.mp4"
    write_video(video, 10.0)
    extractor = Extractor.create(backbone, "none", crop=32, chunk_steps=4)  # several chunks
    feats, duration = extractor.extract(video)
    assert duration == pytest.approx(10.0)
    assert feats.shape == (math.ceil(10.0 * extractor.rate), 512) == (19, 512)
    assert np.isfinite(feats).all() and feats.std() > 0
    whole = Extractor.create(backbone, "none", crop=32, chunk_steps=64)
    np.testing.assert_allclose(whole.extract(video)[0], feats, rtol=1e-4, atol=1e-5)  # chunking is invisible


def test_truncated_and_non_video_files_are_typed_errors_naming_the_file(tmp_path):
    video = tmp_path / "whole.mp4"
    write_video(video, 3.0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: len(video.read_bytes()) // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    extractor = Extractor.create("resnet18", "none", crop=32)
    for bad in (cut, text, tmp_path / "missing.mp4"):
        with pytest.raises(VideoDecodeError, match=bad.name):
            extractor.extract(bad)


def test_folder_run_skips_bad_files_and_writes_the_import_layout(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "a.mp4", 2.0, seed=1)
    write_video(folder / "b.mp4", 3.0, seed=2)
    (folder / "c.mp4").write_bytes(b"\x00" * 100)
    (folder / "readme.txt").write_text("ignored")
    extractor = Extractor.create("resnet18", "none", crop=32)
    out = tmp_path / "f.h5"
    report = extract_features([folder], out, extractor, progress=False)
    assert sorted(report.written) == ["a", "b"]
    assert [p for p, _ in report.skipped] == [str(folder / "c.mp4")]
    with h5py.File(out, "r") as f:
        assert f["features/b"].shape == (math.ceil(3.0 * 1.875), 512)
        assert f["features/b"].attrs["duration"] == pytest.approx(3.0)
        assert '"backbone": "resnet18"' in f.attrs["features"]
    with pytest.raises(VideoDecodeError, match="c.mp4"):  # named explicitly: an error
        extract_features([folder / "a.mp4", folder / "c.mp4"], tmp_path / "g.h5", extractor, progress=False)
    assert not (tmp_path / "g.h5").exists()


def test_features_mismatch_names_both_sides():
    run = {"backbone": "resnet18", "feature_dim": 512, "rate": 1.875}
    assert features_mismatch(run, dict(run)) is None
    assert features_mismatch(run, None) is None
    text = features_mismatch(run, {**run, "backbone": "r3d_18"})
    assert "resnet18" in text and "r3d_18" in text


class _FakeExtractor:
    """What ``history_from_csv`` uses of an extractor: a rate and ``extract(path)``."""

    rate = 1.875

    def extract(self, path):
        n = 40
        return np.arange(n, dtype=np.float32)[:, None].repeat(4, axis=1), n / self.rate


@pytest.mark.parametrize("start, end", [(1.2, 3.7), (0.0, 0.2), (5.1, 5.3), (19.0, 21.3), (2.0, 2.6)])
def test_a_history_csv_takes_the_steps_training_takes(tmp_path, start, end):
    """--history-csv took steps floor(start * rate) to ceil(end * rate), wider than the rule
    training took a store's history segments with (segment_steps: midpoints inside)."""
    from highlightzoo.data.labels import segment_steps
    from highlightzoo.features.for_run import history_from_csv

    csv_path = tmp_path / "h.csv"
    csv_path.write_text(f"video,start,end\na.mp4,{start},{end}\nb.mp4,{start},{end}\na.mp4,0,1\n")
    segments, owners = history_from_csv(_FakeExtractor(), csv_path)
    first, stop = segment_steps(start, end, _FakeExtractor.rate, 40)
    assert segments[0][:, 0].tolist() == list(range(first, stop))
    assert owners == [0, 1, 0]


@pytest.mark.parametrize("text, message", [
    ("video,start,end\na.mp4,1,2,3\n", "line 2 has 4 cells, the header 3"),  # was accepted
    ("video,start,end\n\n\na.mp4,x,2\n", "line 4: start/end are not numbers"),  # said line 2
    ("video,start,end\n,1,2\n", "line 2: the video cell is empty"),  # read the CSV's folder
    ("video,start\na.mp4,1\n", "history CSV lacks column(s) ['end']"),
    ("video,start,start,end\na.mp4,1,2,3\n", "names column(s) ['start'] more than once"),
    ("", "history CSV lacks column(s) ['video', 'start', 'end']"),  # was an empty history
])
def test_a_malformed_history_csv_is_named_by_line(tmp_path, text, message):
    from highlightzoo.features.for_run import history_from_csv

    csv_path = tmp_path / "h.csv"
    csv_path.write_text(text)
    with pytest.raises(DataFormatError, match=re.escape(message)):
        history_from_csv(_FakeExtractor(), csv_path)


def test_a_history_csv_from_a_spreadsheet_with_a_byte_order_mark_is_read(tmp_path):
    from highlightzoo.features.for_run import history_from_csv

    csv_path = tmp_path / "h.csv"
    csv_path.write_bytes(b"\xef\xbb\xbfvideo,start,end\r\na.mp4,1,2\r\n")
    segments, owners = history_from_csv(_FakeExtractor(), csv_path)
    assert len(segments) == 1 and owners == [0]
