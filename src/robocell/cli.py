"""The ``robocell`` command line.

Exit codes: 0 success, 2 bad input (scenario, arguments), 1 anything else. Errors are one line on
stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from robocell.scenario.loader import LoadedScenario


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 with usage, keep it one line
        self.exit(2, f"robocell: error: {message}\n")


def _positive(text: str) -> float:
    """An option that must be a finite number > 0 (argparse reports it with exit code 2)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (0 < v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return v


def _seed(text: str) -> int:
    """A seed: a whole number 0 .. 2**32 - 1, as the scenario's ``seed``."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"must be 0 .. 4294967295, got {text!r}")
    return v


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="robocell", description="Simulate and test industrial robot cells.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run a scenario headless and print its KPIs")
    r.add_argument("scenario")
    r.add_argument("--duration", type=_positive, help="cell time to simulate [s]")
    r.add_argument("--seed", type=_seed, help="override the scenario seed")
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
    r.add_argument(
        "--video-fps", type=_positive, default=10.0, help="frames per second of cell time"
    )
    r.add_argument(
        "--video-size", default="480x360", help="frame size WIDTHxHEIGHT in px (default 480x360)"
    )

    c = sub.add_parser(
        "compare", help="run scenarios (strategies) on the same seeds and tabulate their KPIs"
    )
    c.add_argument("scenarios", nargs="+")
    c.add_argument("--duration", type=_positive, help="cell time of each run [s]")
    c.add_argument(
        "--seeds", default=None, help="comma-separated seeds (default: each scenario's own)"
    )
    c.add_argument("--json", action="store_true", help="print the rows as JSON")

    v = sub.add_parser("validate", help="check a scenario file (exit 2 on any error)")
    v.add_argument("scenario")
    sub.add_parser("schema", help="print the JSON Schema of the scenario format")
    sub.add_parser("robots", help="list the robot library")
    sub.add_parser("materials", help="list the workpiece materials of machining stations")

    sv = sub.add_parser(
        "serve", help="serve a scenario's cell over the ZeroMQ bridge (lockstep or real time)"
    )
    sv.add_argument("scenario")
    sv.add_argument("--bind", default="tcp://127.0.0.1:5555", help="request endpoint")
    sv.add_argument("--mode", choices=["lockstep", "realtime"], default="lockstep")
    sv.add_argument(
        "--profile", help="interface profile: ur_rtde, ur_rtde_cb3, franka_fci, kuka_rsi"
    )
    sv.add_argument("--pub", help="state publisher endpoint (default: real time on a free port)")
    sv.add_argument("--keys", metavar="SECRET", help="the server's CurveZMQ .key_secret file")
    sv.add_argument("--allow", metavar="DIR", help="allowed client public keys (dir or .key file)")
    sv.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback bind without CurveZMQ"
    )
    sv.add_argument("--watchdog", type=_positive, help="real time: stale-command timeout [s]")
    sv.add_argument("--duration", type=_positive, help="cell time to serve [s] (default: no limit)")
    sv.add_argument(
        "--idle-timeout", type=_positive, help="stop after this long without requests [s]"
    )
    sv.add_argument("--seed", type=_seed, help="override the scenario seed")
    sv.add_argument("--out", help="run directory (default: runs/<scenario name>-bridge)")
    sv.add_argument("--ready-file", help=argparse.SUPPRESS)  # tests: written once bound

    d = sub.add_parser(
        "drive", help="run a scenario's controller against a lockstep server (another process)"
    )
    d.add_argument("scenario")
    d.add_argument("--connect", default="tcp://127.0.0.1:5555", help="the server's endpoint")
    d.add_argument("--duration", type=_positive, help="cell time [s] (default: the scenario's)")
    d.add_argument("--seed", type=_seed, help="override the scenario seed")
    d.add_argument("--key", metavar="SECRET", help="this client's CurveZMQ .key_secret file")
    d.add_argument("--server-key", metavar="PUBLIC", help="the server's public .key file")
    d.add_argument("--timeout", type=_positive, default=10.0, help="reply timeout [s]")
    d.add_argument("--json", action="store_true", help="print the KPIs as JSON")

    sr = sub.add_parser(
        "serve-robot",
        help="serve one simulated robot of a scenario as a stand-in for real hardware",
    )
    sr.add_argument("scenario")
    sr.add_argument("--robot", help="the robot's name in the scenario (default: the first)")
    sr.add_argument("--bind", default="tcp://127.0.0.1:6000", help="request endpoint")
    sr.add_argument("--mode", choices=["lockstep", "realtime"], default="lockstep")
    sr.add_argument("--profile", help="interface profile (see robocell serve)")
    sr.add_argument("--keys", metavar="SECRET", help="the server's CurveZMQ .key_secret file")
    sr.add_argument("--allow", metavar="DIR", help="allowed client public keys (dir or .key file)")
    sr.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback bind without keys"
    )
    sr.add_argument("--watchdog", type=_positive, help="real time: stale-command timeout [s]")
    sr.add_argument(
        "--idle-timeout", type=_positive, help="stop after this long without requests [s]"
    )
    sr.add_argument("--ready-file", help=argparse.SUPPRESS)

    gc = sub.add_parser("gcode", help="interpret a G-code program (LinuxCNC) and summarise it")
    gc.add_argument("file")
    gc.add_argument("--lenient", action="store_true", help="skip unsupported words with a warning")
    gc.add_argument(
        "--rapid-mm-min", type=_positive, default=10000.0, help="speed of rapid moves [mm/min]"
    )
    gc.add_argument(
        "--g28-mm", metavar="X,Y,Z", help="the G28 position in program coordinates [mm]"
    )
    gc.add_argument("--json", action="store_true", help="print the summary as JSON (SI units)")
    gc.add_argument(
        "--scenario",
        help="a machining scenario: check reach, joint limits and feeds of the program over "
        "its robot and stock (the rapid speed is the station's)",
    )
    gc.add_argument("--station", help="the machining station of --scenario (default: the only one)")

    from robocell.bridge.security import add_keys_parser

    add_keys_parser(sub)
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
        try:
            video = VideoRecorder(a.video, fps=a.video_fps, size=(w, h))
        except ScenarioError as exc:  # named by the option the user typed
            option = {"video.size": "--video-size", "video.fps": "--video-fps"}
            raise ScenarioError(
                f"{option.get(exc.field or '', '--video')}: {exc.message}"
            ) from None
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
            + (", machining.npz" if (res.out_dir / "machining.npz").exists() else "")
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

#: the columns of ``robocell compare`` when every scenario is a machining cell
MACHINING_COMPARE_COLUMNS = (
    ("cycle s", ("machining", "cycle_time_s"), "{:.2f}"),
    ("surface RMS mm", ("machining", "surface_error_rms_mm"), "{:.4f}"),
    ("floor RMS mm", ("machining", "floor_error_rms_mm"), "{:.4f}"),
    ("over-cut mm³", ("machining", "overcut_volume_mm3"), "{:.1f}"),
    ("under-cut mm³", ("machining", "undercut_volume_mm3"), "{:.1f}"),
    ("path dev RMS mm", ("machining", "path_deviation_rms_mm"), "{:.4f}"),
    ("peak force N", ("machining", "peak_force_n"), "{:.1f}"),
    ("mean power W", ("machining", "mean_spindle_power_w"), "{:.0f}"),
    ("crashes", ("machining", "tool_crashes"), "{}"),
    ("collisions", ("collisions_environment",), "{}"),
)

#: the columns of ``robocell compare`` for other cells (or a mix of kinds): the cell-wide KPIs
MOTION_COMPARE_COLUMNS = (
    ("cycles", ("cycles",), "{}"),
    ("cycle s", ("cycle_time_s",), "{:.3f}"),
    ("energy J", ("energy_j",), "{:.0f}"),
    ("limit violations", ("limit_violations",), "{}"),
    ("collisions", ("collisions_environment",), "{}"),
    ("self-collisions", ("collisions_self",), "{}"),
)


def _scenario_kind(ld: LoadedScenario) -> str:
    types = {st.type for st in ld.scenario.stations}
    if "machining" in types:
        return "machining"
    if ld.scenario.parts:
        return "pick-and-place"
    return "motion"


def _cmd_compare(a: argparse.Namespace) -> int:
    from robocell.api import run
    from robocell.errors import ScenarioError
    from robocell.scenario.loader import load_scenario

    if a.duration is not None and not (a.duration > 0 and a.duration < float("inf")):
        raise ScenarioError(f"--duration must be > 0 s, got {a.duration}")
    seeds: list[int | None] = [None]
    if a.seeds:
        try:
            seeds = [_seed(x) for x in a.seeds.split(",")]
        except argparse.ArgumentTypeError:
            raise ScenarioError(
                f"--seeds must be whole numbers 0 .. 4294967295, got {a.seeds!r}"
            ) from None
    from robocell.cell.build import cell_from_scenario

    loaded = [load_scenario(f) for f in a.scenarios]
    for ld in loaded:  # every cell is built (and its programs planned) before any run
        cell_from_scenario(ld).close()
    names = [ld.file.name for ld in loaded]
    # rows are named by file name, or by path where two files share a name
    label = {
        ld.file: str(ld.file) if names.count(ld.file.name) > 1 else ld.file.name for ld in loaded
    }
    kinds = {_scenario_kind(ld) for ld in loaded}
    kind = next(iter(kinds)) if len(kinds) == 1 else "mixed"
    columns = {
        "machining": MACHINING_COMPARE_COLUMNS,
        "pick-and-place": COMPARE_COLUMNS,
    }.get(kind, MOTION_COMPARE_COLUMNS)
    if kind == "mixed":
        print("(cells of different kinds: comparing the cell-wide KPIs)", file=sys.stderr)
    rows = []
    for ld in loaded:
        for seed in seeds:
            print(
                f"running {ld.file.name} (seed {ld.scenario.seed if seed is None else seed}) ...",
                file=sys.stderr,
            )
            res = run(ld, duration=a.duration, seed=seed, write=False)
            row: dict[str, object] = {
                "scenario": label[ld.file],
                "seed": ld.scenario.seed if seed is None else seed,
            }
            for head, path, _ in columns:
                v: object = res.kpis
                for k in path:
                    v = v.get(k) if isinstance(v, dict) else None
                row[head] = v
            rows.append(row)
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    heads = ["scenario", "seed", *(h for h, _, _ in columns)]
    fmts = {h: f for h, _, f in columns}
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
    from robocell.machining.device import crash_summary
    from robocell.scenario.loader import load_scenario

    loaded = load_scenario(a.scenario)
    cell = cell_from_scenario(loaded)  # models, URDFs, controller and its planned paths
    jobs = [
        (n, d) for n, d in cell.devices.items() if getattr(d, "plan", None) is not None
    ]  # machining stations: their programs are planned in full by now
    cell.close()
    s = loaded.scenario
    print(
        f"{a.scenario}: valid ({len(s.robots)} robot(s), {len(s.objects)} object(s), "
        f"{s.duration} s)"
    )
    for name, st in jobs:
        plan = st.plan
        held = (
            "every feed held"
            if not plan.feed_limits
            else "feed not held on line(s) " + ", ".join(str(f.line) for f in plan.feed_limits)
        )
        print(
            f"  machining '{name}': {Path(st.program.file).name} reachable at all "
            f"{len(plan.points)} path points, {plan.duration:.1f} s at full feed, {held}"
        )
        if plan.duration > s.duration:
            print(f"  warning: the program needs {plan.duration:.1f} s, duration is {s.duration} s")
        for text in crash_summary(st.crash_lines):
            print(f"  warning: the program {text} (a tool crash)")
        if st.rapid_cuts:
            print(
                f"  warning: rapid moves cut material on lines {', '.join(map(str, st.rapid_cuts))}"
            )
    return 0


def _cmd_gcode(a: argparse.Namespace) -> int:
    from robocell.errors import ScenarioError
    from robocell.machining.gcode import parse_file
    from robocell.machining.gcode_report import format_summary, summarize

    if not (a.rapid_mm_min > 0 and a.rapid_mm_min < float("inf")):
        raise ScenarioError(f"--rapid-mm-min must be > 0, got {a.rapid_mm_min}")
    home = None
    if a.g28_mm:
        try:
            home = [float(v) * 1e-3 for v in a.g28_mm.split(",")]
        except ValueError:
            home = []
        if len(home) != 3:
            raise ScenarioError(f"--g28-mm must be X,Y,Z in mm, got {a.g28_mm!r}")
    if a.station and not a.scenario:
        raise ScenarioError("--station names a station of --scenario; give --scenario too")
    program = parse_file(a.file, lenient=a.lenient, g28_home=home)
    check = None
    rapid = a.rapid_mm_min / 6e4
    if a.scenario:
        from robocell.cell.check import check_program

        check = check_program(a.scenario, a.file, a.station)
        rapid = check["rapid_speed_m_per_s"]
    summary = summarize(program, rapid_speed=rapid)
    if a.json:
        if check is not None:
            summary["scenario_check"] = check
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
        if check is not None:
            from robocell.cell.check import format_check

            print()
            print(format_check(check))
    return 0


def _cmd_materials() -> int:
    from robocell.machining.forces import ISCAR_TABLE, MATERIALS

    print(f"{'material':<22}{'kc1.1 [N/mm²]':>14}{'mc':>7}  source")
    for m in MATERIALS.values():
        src = m.source.replace(ISCAR_TABLE + ",", "[1]")
        print(f"{m.name:<22}{m.kc11 * 1e-6:>14.0f}{m.mc:>7.2f}  {src}")
    print(f"\n[1] {ISCAR_TABLE}")
    print("Kienzle law: kc = kc1.1 * h^-mc (h = chip thickness in mm); see docs/machining.md")
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


def _cmd_serve(a: argparse.Namespace) -> int:
    from pathlib import Path

    from robocell.api import default_out_dir
    from robocell.bridge.server import SimServer
    from robocell.cell.build import cell_from_scenario
    from robocell.scenario.loader import load_scenario

    loaded = load_scenario(a.scenario)
    security = _security(a)
    out = (
        Path(a.out)
        if a.out
        else default_out_dir(loaded).with_name(default_out_dir(loaded).name + "-bridge")
    )
    cell = cell_from_scenario(loaded, seed=a.seed)
    scn = loaded.scenario
    server = SimServer(
        cell,
        bind=a.bind,
        mode=a.mode,
        profile=a.profile,
        pub=a.pub,
        security=security,
        insecure=a.insecure,
        watchdog_s=a.watchdog,
        out_dir=out if scn.outputs.record else None,
        record_period=scn.outputs.record_period,
        duration=a.duration,
        idle_timeout=a.idle_timeout,
        metadata={"scenario": scn.name, "scenario_file": loaded.file.name},
        plots=scn.outputs.plots,
    )
    try:
        server.open()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: server.stop())
        pub = f", states on {server.pub_endpoint}" if server.pub_endpoint else ""
        prof = f", profile {server.profile.name}" if server.profile else ""
        print(
            f"serving '{scn.name}' on {server.endpoint} ({a.mode}{prof}{pub}); Ctrl-C ends",
            file=sys.stderr,
            flush=True,
        )
        if a.ready_file:
            Path(a.ready_file).write_text(server.endpoint + "\n" + (server.pub_endpoint or ""))
        rep = server.serve()
    finally:
        server.close()
    res = server.result
    print(f"{scn.name}  (seed {cell.seed}, bridge {a.mode})")
    if res is not None:
        print(res.table())
    print(_bridge_summary(rep))
    if res is not None and res.out_dir is not None:
        print(f"\nwritten to {res.out_dir}/: kpis.json, bridge.json, recording.arrows, ...")
    return 0


def _security(a: argparse.Namespace) -> object:
    from robocell.errors import BridgeError

    if not (a.keys or a.allow):
        return None
    if not (a.keys and a.allow):
        raise BridgeError("CurveZMQ needs both --keys and --allow", exit_code=2)
    from robocell.bridge.security import ServerSecurity

    return ServerSecurity(a.keys, a.allow)


def _cmd_serve_robot(a: argparse.Namespace) -> int:
    from pathlib import Path

    from robocell.bridge.remote import standin_robot_server
    from robocell.errors import ScenarioError
    from robocell.robot.library import load_model
    from robocell.scenario.loader import load_scenario

    loaded = load_scenario(a.scenario)
    scn = loaded.scenario
    names = [r.name for r in scn.robots]
    name = a.robot or names[0]
    if name not in names:
        raise ScenarioError(f"--robot: no robot '{name}' in the scenario ({', '.join(names)})")
    i = names.index(name)
    rs = scn.robots[i]
    from robocell.cell.build import _robot_tool

    model = load_model(rs.model, str(loaded.base_dir))
    server = standin_robot_server(
        model,
        name=name,
        base=rs.base.se3(),
        tool=_robot_tool(loaded, i),
        control_period=rs.control_period,
        q0=None if rs.q0_deg is None else __import__("numpy").radians(rs.q0_deg),
        physics_step=scn.world.physics_step,
        bind=a.bind,
        mode=a.mode,
        profile=a.profile,
        security=_security(a),
        insecure=a.insecure,
        watchdog_s=a.watchdog,
        idle_timeout=a.idle_timeout,
    )
    try:
        server.open()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: server.stop())
        print(
            f"robot '{name}' ({model.name}, simulated stand-in) on {server.endpoint} ({a.mode})",
            file=sys.stderr,
            flush=True,
        )
        if a.ready_file:
            Path(a.ready_file).write_text(server.endpoint + "\n")
        rep = server.serve()
    finally:
        server.close()
    print(_bridge_summary(rep))
    return 0


def _bridge_summary(rep: dict) -> str:
    lines = [f"bridge: {rep['ticks']} ticks, {rep['messages']} messages, errors {rep['errors']}"]
    tm = rep.get("timing")
    if tm:
        skipped = ""
        if tm["skipped_periods"]:
            skipped = (
                f" + {tm['skipped_periods']} periods skipped after"
                f" {tm['schedule_restarts']} stall(s)"
            )
        lines.append(
            f"  pacing: {tm['deadline_misses']} deadline misses{skipped}"
            f" ({tm['deadline_miss_share']:.3%} of periods),"
            f" jitter p99 {tm['jitter_p99_s'] * 1e6:.0f} us, max {tm['jitter_max_s'] * 1e6:.0f} us"
        )
    for n, r in rep["robots"].items():
        pr = r.get("profile")
        extra = ""
        if pr:
            extra = "  " + ", ".join(f"{k} {v}" for k, v in pr.items() if k.endswith("margin"))
        lines.append(f"  {n}: periods {r['periods']}, fault {r['fault']}{extra}")
    return "\n".join(lines)


def _cmd_drive(a: argparse.Namespace) -> int:
    from robocell.bridge.client import Client, context_from_scenario, drive
    from robocell.bridge.security import check_endpoint
    from robocell.scenario.loader import load_scenario

    load_scenario(a.scenario)  # a broken file is reported before any connection is tried
    check_endpoint(a.connect)
    with Client(
        a.connect,
        name="robocell-drive",
        timeout=a.timeout,
        secret_key=a.key,
        server_key=a.server_key,
    ) as client:
        hello = client.hello()
        spec = context_from_scenario(a.scenario, a.seed, hello)
        duration = a.duration if a.duration is not None else spec.duration
        out = drive(client, spec.controller, spec.ctx, duration, spec.end_when_done)
    if a.json:
        print(json.dumps(out["kpis"], indent=2, sort_keys=True))
        return 0
    from robocell.cell.cell import RunResult

    print(RunResult(kpis=out["kpis"], events=[]).table())
    print(_bridge_summary(out["bridge"]))
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _cmd_schema(args: argparse.Namespace) -> int:
    from robocell.scenario.loader import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command ``args.cmd``; its exit code."""
    commands = {
        "run": _cmd_run,
        "validate": _cmd_validate,
        "compare": _cmd_compare,
        "schema": _cmd_schema,
        "robots": _cmd_robots,
        "materials": lambda a: _cmd_materials(),
        "gcode": _cmd_gcode,
        "serve": _cmd_serve,
        "drive": _cmd_drive,
        "serve-robot": _cmd_serve_robot,
        "keys": lambda a: int(a.func(a)),
    }
    command = commands.get(args.cmd)
    return command(args) if command is not None else 1


def _drop_stdout() -> None:
    """Point stdout at /dev/null (so that the interpreter does not retry, and report again,
    output that stdout could not take when it exits)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE") and argv is None:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `robocell schema | head` ends quietly
    words = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in words  # (accepted after the command too)
    words = [w for w in words if w != "--debug"]
    if not words:
        _parser().print_help(sys.stderr)
        return 2
    try:
        args = _parser().parse_args(words)
        args.debug = debug
    except SystemExit as exc:  # a bad option (exit 2, already reported) or --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    terminate = argv is None and args.cmd in ("run", "compare", "drive", "validate", "gcode")
    if terminate:
        # stopped by `timeout`, CI or `docker stop`: end like Ctrl-C (the recording is closed)
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _run_command(args)
    finally:
        if terminate:  # the command is over: a later SIGTERM ends the process the usual way
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_command(args: argparse.Namespace) -> int:
    """Run the command; every failure becomes one line on stderr and an exit code."""
    from robocell.errors import RobocellError

    try:
        code = _dispatch(args)
        sys.stdout.flush()  # (a full disk or a closed pipe shows here, not at exit)
        return code
    except RobocellError as exc:
        if args.debug:
            raise
        print(f"robocell: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if isinstance(exc, _Terminated):
            print("robocell: terminated (SIGTERM)", file=sys.stderr)
            return 143
        print("robocell: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the machine's, not robocell's: a full disk, a closed stream
        if args.debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            _drop_stdout()  # what stdout could not take is lost; do not retry it at exit
        print(f"robocell: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
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
