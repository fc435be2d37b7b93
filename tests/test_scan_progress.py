"""The progress bar of a dataset scan (``train.data.scan_folder(progress=True)``): it counts videos,
and shows each video's decoded frame count (it showed ``1 frames``, the first frame's callback,
for videos of any length that decoded in under half a second)."""

from __future__ import annotations

import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from train.data import scan_folder


def write_gif(path: Path, frames: int, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (frames, 16, 16, 3), dtype=np.uint8)
    iio.imwrite(path, pixels, duration=100, loop=0)  # random frames: the writer merges none


def test_the_bar_counts_videos_and_shows_each_videos_frames(tmp_path, capsys):
    write_gif(tmp_path / "a.gif", 7, seed=0)
    write_gif(tmp_path / "b.gif", 12, seed=1)
    scan = scan_folder(tmp_path, 4, 16, progress=True)
    assert [video.shape[1] for video in scan.videos] == [7, 12]
    err = capsys.readouterr().err
    final = re.split(r"[\r\n]+", err.strip())[-1]  # the bar as it was left
    assert final.startswith(f"scanning {tmp_path}: 100%")
    assert " 2/2 [" in final and "video/s" in final
    assert final.endswith(", b.gif: 12 frames]")
    assert not re.search(r": 1 frames", err)
    assert scan_folder(tmp_path, 4, 16) is not None and capsys.readouterr().err == ""  # no bar unless asked
