"""Video of a run: frames rendered by pybullet's TinyRenderer (headless, CPU) and streamed to a
GIF (Pillow) or MP4 (imageio + the ffmpeg binary of imageio-ffmpeg) as the cell runs.

Frames are written as they are rendered; the whole video is never held in memory. The file is
complete after :meth:`VideoRecorder.close` (the cell calls it at the end of a run; a weakref
finalizer closes it as a fallback when the recorder is garbage-collected).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pybullet as pb

from robocell.cell.devices import Device
from robocell.errors import ScenarioError

if TYPE_CHECKING:
    from robocell.cell.cell import Cell

#: file suffixes and the writer that handles them
VIDEO_FORMATS = {".gif": "GIF (Pillow)", ".mp4": "MP4 H.264 (imageio-ffmpeg)"}


def render_rgb(
    client: int,
    eye: Sequence[float],
    target: Sequence[float],
    up: Sequence[float],
    size: tuple[int, int],
    fov_deg: float,
    near: float = 0.01,
    far: float = 20.0,
) -> np.ndarray:
    """Render the world of pybullet client ``client`` with the TinyRenderer (no display, no GPU).

    Args:
        client: pybullet physics client id.
        eye: camera position, world frame [m].
        target: a point the camera looks at, world frame [m].
        up: the world direction that appears up in the image.
        size: (width, height) [px].
        fov_deg: vertical field of view [deg].
        near: near clipping distance [m].
        far: far clipping distance [m].

    Returns:
        RGB image, shape (height, width, 3), uint8.
    """
    w, h = int(size[0]), int(size[1])
    view = pb.computeViewMatrix(
        [float(v) for v in eye],
        [float(v) for v in target],
        [float(v) for v in up],
        physicsClientId=client,
    )
    proj = pb.computeProjectionMatrixFOV(
        float(fov_deg), w / h, float(near), float(far), physicsClientId=client
    )
    _, _, rgba, _, _ = pb.getCameraImage(
        w,
        h,
        view,
        proj,
        renderer=pb.ER_TINY_RENDERER,
        flags=pb.ER_NO_SEGMENTATION_MASK,
        physicsClientId=client,
    )
    return np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3].copy()


def scene_view(
    client: int,
    skip: Sequence[int] = (),
    fov_deg: float = 50.0,
    aspect: float = 4 / 3,
    azimuth_deg: float = -50.0,
    elevation_deg: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A 3/4 view that frames every body of a pybullet world: (eye, target), world frame [m].

    The axis-aligned bounds of the bodies (all links; bodies in ``skip`` and unbounded ones such
    as a ground plane left out) are fitted into the field of view (5 % margin), seen from
    ``azimuth_deg`` about z from the +x axis and ``elevation_deg`` above the horizon.
    """
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    skipped = set(skip)
    for i in range(pb.getNumBodies(physicsClientId=client)):
        body = pb.getBodyUniqueId(i, physicsClientId=client)
        if body in skipped:
            continue
        for link in range(-1, pb.getNumJoints(body, physicsClientId=client)):
            a, b = pb.getAABB(body, link, physicsClientId=client)
            a, b = np.asarray(a), np.asarray(b)
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or np.any(b - a > 100):
                continue  # a plane: unbounded
            lo = np.minimum(lo, a)
            hi = np.maximum(hi, b)
    if not np.all(np.isfinite(lo)):
        lo, hi = np.array([-1.0, -1.0, 0.0]), np.array([1.0, 1.0, 1.0])
    target = (lo + hi) / 2.0
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    direction = np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)])
    right = np.cross(-direction, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, -direction)
    tan_v = math.tan(math.radians(fov_deg) / 2.0)
    tan_h = tan_v * aspect
    # the distance at which each corner of the bounds is just inside the view; the farthest wins
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    off = corners - target
    need = off @ direction + np.maximum(np.abs(off @ right) / tan_h, np.abs(off @ up) / tan_v)
    dist = 1.05 * max(float(need.max()), 0.2)
    return target + dist * direction, target


class _GifSink:
    """Streams frames into an animated GIF: the header with the first frame, then one block per
    frame (its own 256-colour palette), the trailer at close. Uses Pillow's GIF block encoders,
    so only one frame is in memory at a time."""

    def __init__(self, path: Path, frame_ms: float) -> None:
        self.path = path
        self.frame_ms = frame_ms
        self._fh = open(path, "wb")  # closed by close()
        self._started = False

    def write(self, rgb: np.ndarray) -> None:
        from PIL import GifImagePlugin, Image

        im = Image.fromarray(rgb, "RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        fh = self._fh
        if not self._started:
            header, _ = GifImagePlugin.getheader(
                im, info={"loop": 0, "duration": self.frame_ms, "optimize": False}
            )
            fh.writelines(header)
            self._started = True
        blocks = GifImagePlugin.getdata(
            im, duration=self.frame_ms, include_color_table=True, optimize=False
        )
        fh.writelines(blocks)

    def close(self) -> None:
        if self._fh.closed:
            return
        if self._started:
            self._fh.write(b";")  # GIF trailer
        self._fh.close()


class _Mp4Sink:
    """Streams frames to ffmpeg (H.264, yuv420p) through imageio's FFMPEG writer."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import imageio.v2 as iio

        self.path = path
        self._writer = iio.get_writer(
            str(path),
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            quality=7,
            macro_block_size=2,  # yuv420p needs even sizes; sizes are checked to be even
            ffmpeg_log_level="error",
        )
        self._closed = False

    def write(self, rgb: np.ndarray) -> None:
        self._writer.append_data(rgb)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()


class VideoRecorder(Device):
    """Renders the cell every ``speed / fps`` seconds of cell time and streams the frames to a
    GIF or MP4 file (chosen by the suffix of ``path``).

    Args:
        path: output file, ``.gif`` or ``.mp4`` (parent folders are created).
        fps: frames per second of the video [1/s].
        size: (width, height) of the frames [px] (even numbers for MP4).
        camera: (eye, target) world points [m] with z up in the image, or None for a 3/4 view
            that frames every body present when the run starts.
        speed: cell seconds per video second (2.0 plays the run twice as fast).
        fov_deg: vertical field of view [deg].

    The first frame is rendered at the start of the run, then one at the first tick at or after
    each ``k * speed / fps`` [s]; a run of ``D`` seconds has ``floor(D * fps / speed) + 1``
    frames. Call :meth:`close` to finish the file.
    """

    name = "video"

    def __init__(
        self,
        path: str | Path,
        fps: float = 10.0,
        size: tuple[int, int] = (640, 480),
        camera: tuple[Sequence[float], Sequence[float]] | None = None,
        speed: float = 1.0,
        fov_deg: float = 50.0,
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_FORMATS:
            choices = ", ".join(f"{k} ({v})" for k, v in VIDEO_FORMATS.items())
            raise ScenarioError(
                f"cannot write video '{self.path.name}': use one of {choices}", field="video"
            )
        self.format = suffix[1:]
        self.fps = _positive(fps, "video.fps")
        self.speed = _positive(speed, "video.speed")
        self.fov_deg = _positive(fov_deg, "video.fov_deg")
        if self.fov_deg >= 170:
            raise ScenarioError(f"fov_deg must be < 170, got {fov_deg!r}", field="video.fov_deg")
        try:
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ScenarioError(
                f"size must be (width, height) in px, got {size!r}", field="video.size"
            ) from None
        if not (16 <= w <= 4096 and 16 <= h <= 4096):
            raise ScenarioError(f"size must be 16..4096 px each, got {size!r}", field="video.size")
        if self.format == "mp4" and (w % 2 or h % 2):
            raise ScenarioError(
                f"an MP4 needs an even width and height, got {size!r}", field="video.size"
            )
        self.size = (w, h)
        self.camera: tuple[np.ndarray, np.ndarray] | None = None
        if camera is not None:
            try:
                eye, target = (np.asarray(v, dtype=float).reshape(3) for v in camera)
            except (TypeError, ValueError):
                raise ScenarioError(
                    f"camera must be (eye xyz, target xyz) in m, got {camera!r}",
                    field="video.camera",
                ) from None
            if not (np.all(np.isfinite(eye)) and np.all(np.isfinite(target))) or np.allclose(
                eye, target
            ):
                raise ScenarioError(
                    f"camera eye and target must be two different finite points, got {camera!r}",
                    field="video.camera",
                )
            self.camera = (eye, target)
        #: cell time between frames [s]
        self.frame_period_s = self.speed / self.fps
        self.frames = 0
        self._client = -1
        self._eye = np.zeros(3)
        self._target = np.zeros(3)
        self._up = np.array([0.0, 0.0, 1.0])
        self._sink: _GifSink | _Mp4Sink | None = None
        self._finalizer: weakref.finalize | None = None

    # -- device hooks ----------------------------------------------------------------------------
    def attach(self, cell: Cell) -> None:
        self._client = cell.world.client

    def start(self, cell: Cell) -> None:
        if self.camera is None:
            skip = [cell.ground] if cell.ground is not None else []
            eye, target = scene_view(self._client, skip, self.fov_deg, self.size[0] / self.size[1])
        else:
            eye, target = self.camera
        self._eye, self._target = eye, target
        view = target - eye
        if np.linalg.norm(np.cross(view, self._up)) < 1e-6 * np.linalg.norm(view):
            self._up = np.array([0.0, 1.0, 0.0])  # looking straight down: world y is up
        try:  # (ffmpeg would find out only at the first frame, and die on a broken pipe)
            if self.path.is_dir():
                raise IsADirectoryError(21, "it is a directory")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb"):
                pass
        except OSError as exc:
            raise ScenarioError(
                f"cannot write video {self.path}: {exc.strerror or exc}", field="video"
            ) from None
        if self.format == "gif":
            sink: _GifSink | _Mp4Sink = _GifSink(self.path, 1000.0 / self.fps)
        else:
            sink = _Mp4Sink(self.path, self.fps, self.size)
        self._sink = sink
        self._finalizer = weakref.finalize(self, sink.close)
        self._write_due(cell)

    def sense(self, cell: Cell) -> None:
        if self._sink is not None and cell.time >= self.frames * self.frame_period_s - 1e-9:
            self._write_due(cell)

    def _write_due(self, cell: Cell) -> None:
        """Render once and write it for every frame time reached by now (more than one when the
        frame period is shorter than the tick)."""
        sink = self._sink
        assert sink is not None
        t = cell.time + 1e-9
        if t < self.frames * self.frame_period_s:
            return
        rgb = self.render()
        while self.frames * self.frame_period_s <= t:
            sink.write(rgb)
            self.frames += 1

    def render(self) -> np.ndarray:
        """The current view, shape (H, W, 3) uint8."""
        return render_rgb(
            self._client,
            self._eye,
            self._target,
            self._up,
            self.size,
            self.fov_deg,
            near=0.05,
            far=max(50.0, 4.0 * float(np.linalg.norm(self._target - self._eye))),
        )

    def close(self, cell: Cell | None = None) -> None:
        """Finish the file (safe to call more than once)."""
        if self._finalizer is not None:
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._finalizer is None or not self._finalizer.alive

    def info(self) -> dict[str, Any]:
        return {"path": str(self.path), "fps": self.fps, "speed": self.speed}

    def kpis(self) -> dict[str, Any]:
        return {"frames": self.frames}


def _positive(value: Any, field: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"expected a number, got {value!r}", field=field) from None
    if not (math.isfinite(x) and x > 0):
        raise ScenarioError(f"must be > 0, got {value!r}", field=field)
    return x


__all__ = ["VIDEO_FORMATS", "VideoRecorder", "render_rgb", "scene_view"]
