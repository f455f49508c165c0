"""Recording of a bridge session, next to the cell's own recording.

``bridge_commands.arrows`` holds one row per accepted joint command: the cell time it was received
at ``t`` [s], the wall-clock receive time ``wall_rx`` [s since the Unix epoch], the tick it answered
(``tick_ref``, -1 when the client did not say), whether it was late, the mode (0 position,
1 velocity, 2 torque) and its values. ``bridge_ticks.arrows`` holds one row per control tick: cell
time, the wall-clock time the tick started, its lateness against the schedule (real time) and per
robot the period's outcome (0 ok, 1 late, 2 missed, -1 not commanded). Both are Arrow IPC streams
like ``recording.arrows``, flushed about once a second (every 50 ms in real time), so a killed
server keeps what came before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from robocell.bridge.protocol import COMMAND_MODES
from robocell.record.recorder import warm_up_arrow
from robocell.robot.interface import JointCommand

COMMANDS_FILE = "bridge_commands.arrows"
TICKS_FILE = "bridge_ticks.arrows"
OUTCOME_CODES = {"ok": 0, "late": 1, "missed": 2, None: -1}


class _Stream:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)
        self._rows: list[list[float]] = []

    def add(self, row: list[float]) -> None:
        self._rows.append(row)

    def flush(self) -> None:
        if not self._rows:
            return
        cols = list(zip(*self._rows, strict=True))
        arrays = []
        for f, c in zip(self.schema, cols, strict=True):
            if pa.types.is_fixed_size_list(f.type):
                flat = pa.array(np.asarray(c, float).reshape(-1))
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, f.type.list_size))
            else:
                arrays.append(pa.array(c, type=f.type))
        self._writer.write_batch(pa.record_batch(arrays, schema=self.schema))
        self._sink.flush()
        self._rows.clear()

    def close(self) -> None:
        self.flush()
        self._writer.close()
        self._sink.close()


class SessionRecorder:
    """Streams a bridge session's commands and ticks to ``out_dir``."""

    def __init__(
        self,
        out_dir: str | Path,
        dofs: Mapping[str, int],
        metadata: Mapping[str, str],
        flush_period: float = 1.0,
        defer_flush: bool = False,
    ) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.robots = list(dofs)
        self._index = {n: i for i, n in enumerate(self.robots)}
        self._dofs = dict(dofs)
        width = max(dofs.values(), default=1)
        self._width = width
        meta = {**metadata, "robots": ",".join(self.robots)}
        self.commands = _Stream(
            out / COMMANDS_FILE,
            pa.schema(
                [
                    pa.field("t", pa.float64()),
                    pa.field("wall_rx", pa.float64()),
                    pa.field("robot", pa.int32()),
                    pa.field("tick_ref", pa.int64()),
                    pa.field("late", pa.bool_()),
                    pa.field("mode", pa.int8()),
                    pa.field("values", pa.list_(pa.float64(), width)),
                    pa.field("velocity", pa.list_(pa.float64(), width)),
                ],
                metadata={**meta, "robot_index": "robot names in order of the robots key"},
            ),
        )
        self.ticks = _Stream(
            out / TICKS_FILE,
            pa.schema(
                [
                    pa.field("t", pa.float64()),
                    pa.field("wall", pa.float64()),
                    pa.field("lateness", pa.float64()),
                    pa.field("outcome", pa.list_(pa.float64(), max(1, len(self.robots)))),
                ],
                metadata=meta,
            ),
        )
        self.flush_period = flush_period
        #: the driver calls :meth:`flush` when :attr:`flush_due` (else every tick checks)
        self.defer_flush = defer_flush
        # half a period out of phase with the cell's own flushes, which fall on whole periods
        self._last_flush = -flush_period / 2
        self._t = 0.0
        warm_up_arrow()

    def command(
        self, t: float, wall: float, robot: str, cmd: JointCommand, tick_ref: int, late: bool
    ) -> None:
        pad = [math.nan] * self._width
        vals = list(np.asarray(cmd.values, float)) + pad
        vel = pad if cmd.velocity is None else list(np.asarray(cmd.velocity, float)) + pad
        self.commands.add(
            [
                t,
                wall,
                self._index[robot],
                tick_ref,
                late,
                COMMAND_MODES[cmd.mode],
                vals[: self._width],
                vel[: self._width],
            ]
        )

    def tick(
        self, t: float, wall: float, lateness: float, outcomes: Mapping[str, str | None]
    ) -> None:
        codes = [float(OUTCOME_CODES[outcomes.get(n)]) for n in self.robots] or [-1.0]
        self.ticks.add([t, wall, lateness, codes])
        self._t = t
        if not self.defer_flush and self.flush_due:
            self.flush()

    @property
    def flush_due(self) -> bool:
        return self._t - self._last_flush >= self.flush_period

    def flush(self) -> None:
        self.commands.flush()
        self.ticks.flush()
        self._last_flush = self._t

    def close(self) -> None:
        self.commands.close()
        self.ticks.close()
