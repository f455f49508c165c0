"""Videos: a short run streams a GIF or an MP4 with one frame per frame period, readable back."""

from __future__ import annotations

import gc
import math
from pathlib import Path

import imageio.v2 as iio
import numpy as np
import pytest
from PIL import Image
from spatialmath import SE3

from robocell.cell.cell import Cell
from robocell.errors import ScenarioError
from robocell.record.video import VideoRecorder

TICK = 0.002  # s


def _cell() -> Cell:
    cell = Cell(seed=1)
    cell.add_robot("ur5e", base=SE3(0.0, 0.0, 0.0))
    cell.world.add_box([1.0, 0.3, 0.1], SE3(0.6, 0.0, 0.45))
    body = cell.world.add_box(
        [0.05, 0.05, 0.05], SE3(0.4, 0.0, 0.6), mass=0.1, color=(0.9, 0.1, 0.1, 1)
    )
    cell.parts.spawn(body, "box")
    return cell


def _run(cell: Cell, seconds: float) -> None:
    for _ in range(round(seconds / TICK)):
        cell.step()


@pytest.mark.parametrize(
    ("suffix", "fps", "speed"),
    [("gif", 10.0, 1.0), ("mp4", 20.0, 1.0), ("gif", 10.0, 2.0)],
    ids=["gif", "mp4", "gif-double-speed"],
)
def test_a_short_run_writes_a_readable_video(
    tmp_path: Path, suffix: str, fps: float, speed: float
) -> None:
    path = tmp_path / "sub" / f"run.{suffix}"
    cell = _cell()
    video = VideoRecorder(path, fps=fps, size=(160, 120), speed=speed)
    cell.add_device(video)
    duration = 0.5
    _run(cell, duration)
    video.close()
    video.close()  # a second close does nothing
    assert video.closed
    expected = math.floor(duration * fps / speed + 1e-9) + 1  # one at t = 0
    assert video.frames == expected and video.kpis() == {"frames": expected}
    if suffix == "gif":
        with Image.open(path) as im:
            assert im.n_frames == expected and im.size == (160, 120)
            assert im.info["duration"] == pytest.approx(1000 / fps, abs=10)
            im.seek(expected - 1)
            last = np.asarray(im.convert("RGB"))
    else:
        with iio.get_reader(path) as reader:
            assert reader.count_frames() == expected
            assert reader.get_meta_data()["fps"] == pytest.approx(fps)
            last = reader.get_data(expected - 1)
    assert last.shape == (120, 160, 3)
    assert last.std() > 5  # a picture, not a blank frame
    cell.close()


def test_a_video_that_is_not_closed_is_finished_when_collected(tmp_path: Path) -> None:
    path = tmp_path / "lost.gif"
    cell = _cell()
    cell.add_device(VideoRecorder(path, size=(64, 48), camera=([2, 2, 2], [0, 0, 0.5])))
    _run(cell, 0.1)
    cell.close()
    del cell
    gc.collect()
    assert path.read_bytes().endswith(b";")  # the GIF trailer
    with Image.open(path) as im:
        assert im.n_frames == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"path": "run.avi"}, "video"),
        ({"path": "run"}, "video"),
        ({"path": "run.gif", "fps": 0}, "video.fps"),
        ({"path": "run.gif", "speed": -1}, "video.speed"),
        ({"path": "run.mp4", "size": (641, 480)}, "video.size"),
        ({"path": "run.gif", "camera": ([1, 1, 1], [1, 1, 1])}, "video.camera"),
    ],
    ids=["avi", "no-suffix", "zero-fps", "negative-speed", "odd-mp4-size", "eye-on-target"],
)
def test_bad_video_settings_raise_scenario_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(ScenarioError) as err:
        VideoRecorder(**kwargs)
    assert err.value.field == field
