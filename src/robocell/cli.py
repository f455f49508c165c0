"""The ``robocell`` command line.

Exit codes: 0 success, 2 bad input (scenario, arguments), 1 anything else. Errors are one line on
stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 with usage, keep it one line
        self.exit(2, f"robocell: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="robocell", description="Simulate and test industrial robot cells.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run a scenario headless and print its KPIs")
    r.add_argument("scenario")
    r.add_argument("--duration", type=float, help="cell time to simulate [s]")
    r.add_argument("--seed", type=int, help="override the scenario seed")
    r.add_argument("--out", help="run directory (default: runs/<scenario name>)")
    r.add_argument("--gui", action="store_true", help="show pybullet's GUI")
    r.add_argument(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal)",
    )
    r.add_argument("--json", action="store_true", help="print the KPIs as JSON")
    r.add_argument(
        "--video",
        metavar="FILE",
        help="render the run headless to FILE (.mp4 or .gif; TinyRenderer, ~0.1 s per frame)",
    )
    r.add_argument("--video-fps", type=float, default=10.0, help="frames per second of cell time")
    r.add_argument(
        "--video-size", default="480x360", help="frame size WIDTHxHEIGHT in px (default 480x360)"
    )

    c = sub.add_parser(
        "compare", help="run scenarios (strategies) on the same seeds and tabulate their KPIs"
    )
    c.add_argument("scenarios", nargs="+")
    c.add_argument("--duration", type=float, help="cell time of each run [s]")
    c.add_argument(
        "--seeds", default=None, help="comma-separated seeds (default: each scenario's own)"
    )
    c.add_argument("--json", action="store_true", help="print the rows as JSON")

    v = sub.add_parser("validate", help="check a scenario file (exit 2 on any error)")
    v.add_argument("scenario")
    sub.add_parser("schema", help="print the JSON Schema of the scenario format")
    sub.add_parser("robots", help="list the robot library")
    return p


def _cmd_run(a: argparse.Namespace) -> int:
    from robocell.api import default_out_dir, run
    from robocell.errors import ScenarioError
    from robocell.scenario.loader import load_scenario

    if a.duration is not None and not (a.duration > 0 and a.duration < float("inf")):
        raise ScenarioError(f"--duration must be > 0 s, got {a.duration}")
    loaded = load_scenario(a.scenario)
    progress = sys.stderr.isatty() if a.progress == "auto" else a.progress == "on"
    out = a.out or str(default_out_dir(loaded))
    video = None
    if a.video:
        from robocell.record.video import VideoRecorder

        try:
            w, h = (int(v) for v in a.video_size.lower().split("x"))
        except ValueError:
            raise ScenarioError(
                f"--video-size must be WIDTHxHEIGHT, got {a.video_size!r}"
            ) from None
        video = VideoRecorder(a.video, fps=a.video_fps, size=(w, h))
    res = run(
        loaded,
        duration=a.duration,
        seed=a.seed,
        out_dir=out,
        gui=a.gui,
        progress=progress,
        devices=[video] if video is not None else (),
    )
    if a.json:
        print(json.dumps(res.kpis, indent=2, sort_keys=True))
        return 0
    seed = a.seed if a.seed is not None else loaded.scenario.seed
    print(f"{loaded.scenario.name}  (seed {seed})")
    print(res.table())
    if res.out_dir is not None:
        print(
            f"\nwritten to {res.out_dir}/: kpis.json, recording.arrows, events.jsonl"
            + "".join(f", {p.name}" for p in res.plots)
        )
    if video is not None:
        print(f"video: {video.path} ({video.frames} frames)")
    return 0


#: the columns of ``robocell compare``: (header, KPI path, format)
COMPARE_COLUMNS = (
    ("throughput/h", ("pick_and_place", "throughput_per_h"), "{:.0f}"),
    ("cycle s", ("pick_and_place", "cycle_time_mean_s"), "{:.2f}"),
    ("cycle p95 s", ("pick_and_place", "cycle_time_p95_s"), "{:.2f}"),
    ("success", ("pick_and_place", "pick_success_rate"), "{:.1%}"),
    ("dropped", ("pick_and_place", "parts_dropped"), "{}"),
    ("missed", ("pick_and_place", "parts_missed"), "{}"),
    ("busy", ("pick_and_place", "busy_share"), "{:.0%}"),
    ("OEE", ("pick_and_place", "oee"), "{:.0%}"),
    ("J/part", ("pick_and_place", "energy_per_part_j"), "{:.1f}"),
    ("collisions", ("collisions_environment",), "{}"),
    ("energy J", ("energy_j",), "{:.0f}"),
)


def _cmd_compare(a: argparse.Namespace) -> int:
    from robocell.api import run
    from robocell.errors import ScenarioError
    from robocell.scenario.loader import load_scenario

    if a.duration is not None and not (a.duration > 0 and a.duration < float("inf")):
        raise ScenarioError(f"--duration must be > 0 s, got {a.duration}")
    seeds: list[int | None] = [None]
    if a.seeds:
        try:
            seeds = [int(x) for x in a.seeds.split(",")]
        except ValueError:
            raise ScenarioError(f"--seeds must be integers, got {a.seeds!r}") from None
    loaded = [load_scenario(f) for f in a.scenarios]  # every file is checked before any run
    rows = []
    for ld in loaded:
        for seed in seeds:
            print(
                f"running {ld.file.name} (seed {ld.scenario.seed if seed is None else seed}) ...",
                file=sys.stderr,
            )
            res = run(ld, duration=a.duration, seed=seed, write=False)
            row: dict[str, object] = {
                "scenario": ld.file.name,
                "seed": ld.scenario.seed if seed is None else seed,
            }
            for head, path, _ in COMPARE_COLUMNS:
                v: object = res.kpis
                for k in path:
                    v = v.get(k) if isinstance(v, dict) else None
                row[head] = v
            rows.append(row)
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    heads = ["scenario", "seed", *(h for h, _, _ in COMPARE_COLUMNS)]
    fmts = {h: f for h, _, f in COMPARE_COLUMNS}
    table = [
        [str(r["scenario"]), str(r["seed"])]
        + ["n/a" if r[h] is None else fmts[h].format(r[h]) for h in heads[2:]]
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(heads)]
    print(
        "  ".join(
            h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(heads, widths))
        )
    )
    for t in table:
        print(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths))
            )
        )
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from robocell.cell.build import cell_from_scenario
    from robocell.scenario.loader import load_scenario

    loaded = load_scenario(a.scenario)
    cell = cell_from_scenario(loaded)  # models, URDFs, controller and its planned paths
    cell.close()
    s = loaded.scenario
    print(
        f"{a.scenario}: valid ({len(s.robots)} robot(s), {len(s.objects)} object(s), "
        f"{s.duration} s)"
    )
    return 0


def _cmd_robots(a: argparse.Namespace) -> int:
    from robocell.robot.library import available_models, load_model

    rows = [("name", "robot", "DoF", "reach", "payload", "estimates")]
    for name in available_models():
        m = load_model(name)
        rows.append(
            (
                name,
                f"{m.vendor} {m.model}".strip(),
                str(m.dof),
                f"{m.reach_m:.3f} m" if m.reach_m else "-",
                f"{m.payload_kg:g} kg" if m.payload_kg else "-",
                ", ".join(m.estimates) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE") and argv is None:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `robocell schema | head` ends quietly
    args = _parser().parse_args(argv)
    from robocell.errors import RobocellError

    try:
        if args.cmd == "run":
            return _cmd_run(args)
        if args.cmd == "validate":
            return _cmd_validate(args)
        if args.cmd == "compare":
            return _cmd_compare(args)
        if args.cmd == "schema":
            from robocell.scenario.loader import json_schema

            print(json.dumps(json_schema(), indent=2))
            return 0
        if args.cmd == "robots":
            return _cmd_robots(args)
    except RobocellError as exc:
        if args.debug:
            raise
        print(f"robocell: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("robocell: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1
        if args.debug:
            raise
        print(
            f"robocell: internal error: {type(exc).__name__}: {exc} (run with --debug)",
            file=sys.stderr,
        )
        return 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
