"""Streaming recorder: samples go to disk as the run goes, so a killed run loses at most the last
flush period (one second of cell time by default).

Format: the Apache Arrow IPC *streaming* format (``recording.arrows``). Each flush appends one
record batch; the stream has no footer, so a file cut short by SIGKILL is still readable up to its
last complete batch. pyarrow, polars, pandas (through pyarrow) and DuckDB read it without robocell.
Events stream to ``events.jsonl`` (one JSON object per line), flushed with the samples.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

RECORDING_FILE = "recording.arrows"
EVENTS_FILE = "events.jsonl"

#: Per-robot columns: name -> width (the robot's DoF where None).
ROBOT_COLUMNS: dict[str, int | None] = {
    "q": None,
    "dq": None,
    "tau": None,
    "q_cmd": None,
    "tcp": 3,
    "tcp_quat": 4,
}


def robot_columns(name: str, dof: int) -> list[tuple[str, int]]:
    """Column names and widths of one robot: ``r1.q`` [rad], ``r1.dq`` [rad/s], ``r1.tau``
    [N·m], ``r1.q_cmd`` [rad] (NaN when not position-commanded), ``r1.tcp`` [m, world] and
    ``r1.tcp_quat`` (x, y, z, w; world)."""
    return [(f"{name}.{c}", dof if w is None else w) for c, w in ROBOT_COLUMNS.items()]


#: Files a run writes into its directory (``joints_<robot>.png`` too): a new run removes those
#: an earlier run left there, so the directory never mixes two runs.
RUN_OUTPUTS = (
    "kpis.json",
    RECORDING_FILE,
    EVENTS_FILE,
    "events.csv",
    "machining.npz",
    "bridge.json",
    "bridge_commands.arrows",
    "bridge_ticks.arrows",
    "bridge_jitter.png",
    "tcp_path.png",
    "throughput.png",
    "cycle_times.png",
    "activity.png",
    "surface_error.png",
    "cutting_force.png",
    "toolpath.png",
)


def clear_run_outputs(out_dir: str | Path) -> None:
    """Create ``out_dir`` and remove the outputs of an earlier run in it (other files stay)."""
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise NotADirectoryError(20, "it is a file, not a directory")
    d.mkdir(parents=True, exist_ok=True)
    for p in [*(d / n for n in RUN_OUTPUTS), *d.glob("joints_*.png")]:
        if p.is_file():
            p.unlink()


def warm_up_arrow() -> None:
    """pyarrow sets up its conversions on first use, 10-20 ms: done when a recording opens,
    not in its first flush in the middle of a run (where a real-time session would stall)."""
    pa.array(np.zeros(1))
    pa.array([0.0], type=pa.float64())


class Recorder:
    """Appends blocks of samples to an Arrow stream and events to a JSON-lines file.

    Args:
        out_dir: run directory (created).
        columns: (name, width) of every vector column besides the time column ``t``.
        metadata: written into the stream's schema (scenario name, seed, periods ...).
    """

    def __init__(
        self,
        out_dir: str | Path,
        columns: Sequence[tuple[str, int]],
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / RECORDING_FILE
        self.events_path = self.out_dir / EVENTS_FILE
        self._cols = list(columns)
        fields = [pa.field("t", pa.float64())]
        fields += [pa.field(n, pa.list_(pa.float64(), w)) for n, w in self._cols]
        self.schema = pa.schema(fields, metadata=dict(metadata or {}))
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, self.schema)
        self._events = open(self.events_path, "w", encoding="utf-8")  # noqa: SIM115
        self._pending_events: list[str] = []
        self.samples = 0
        self.closed = False
        warm_up_arrow()

    def write(self, t: np.ndarray, data: Mapping[str, np.ndarray]) -> None:
        """Append a block: times ``t`` (k,) and every column as a (k, width) array, then flush
        it (and the queued events) to disk."""
        k = len(t)
        if k:
            arrays = [pa.array(np.asarray(t, float))]
            for n, w in self._cols:
                flat = pa.array(np.ascontiguousarray(data[n], dtype=float).reshape(-1))
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, w))
            self._writer.write_batch(pa.record_batch(arrays, schema=self.schema))
            self._sink.flush()
            self.samples += k
        self.flush_events()

    def event(self, record: Mapping[str, Any]) -> None:
        """Queue one event (a JSON-serialisable mapping with at least ``t`` and ``kind``)."""
        self._pending_events.append(json.dumps(record, sort_keys=True, default=_json_default))

    def flush_events(self) -> None:
        if self._pending_events:
            self._events.write("\n".join(self._pending_events) + "\n")
            self._pending_events.clear()
        self._events.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.flush_events()
        self._writer.close()
        self._sink.close()
        self._events.close()
        self.closed = True


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def iter_batches(path: str | Path) -> Iterator[pa.RecordBatch]:
    """Record batches of a recording, stopping cleanly at a truncated tail (killed run)."""
    with pa.OSFile(str(path), "rb") as src:
        try:
            reader = pa.ipc.open_stream(src)
        except (pa.ArrowInvalid, OSError):
            return
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError):
                return  # partial batch at the end of a killed run


def read_recording(path: str | Path) -> pa.Table:
    """The recording of a run (file or run directory) as a pyarrow Table, complete batches
    only — also for a run that was killed."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORDING_FILE
    batches = list(iter_batches(path))
    if batches:
        return pa.Table.from_batches(batches)
    with pa.OSFile(str(path), "rb") as src:
        try:
            return pa.ipc.open_stream(src).schema.empty_table()
        except (pa.ArrowInvalid, OSError):
            return pa.table({"t": pa.array([], pa.float64())})


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Events of a run (file or run directory), complete lines only."""
    path = Path(path)
    if path.is_dir():
        path = path / EVENTS_FILE
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out


def column(table: pa.Table, name: str) -> np.ndarray:
    """A column as a numpy array, shape (rows,) or (rows, width)."""
    col = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(col.type):
        return col.flatten().to_numpy().reshape(len(col), col.type.list_size)
    return col.to_numpy()
