"""``robostack dataset info|validate|repair|view|control DIR``: inspect, check, recover and watch
datasets, and control a running recorder. Only the standard library is imported at the top."""

from __future__ import annotations

import argparse
import json
import sys


def _progress(total: int, desc: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="ep" if "episode" in desc else "frame", file=sys.stderr, leave=False, disable=not sys.stderr.isatty())
    return bar


def _cmd_info(args: argparse.Namespace) -> int:
    from robostack.dataset.errors import DatasetError
    from robostack.dataset.reader import DatasetReader

    try:
        summary = DatasetReader(args.dir).summary()
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{summary['root']}: LeRobot {summary['codebase_version']}, {summary['episodes']} episodes, "
          f"{summary['frames']} frames ({summary['duration_s']} s) at {summary['fps']} fps")
    print(f"  cameras: {', '.join(f'{k} {v[1]}x{v[0]}' for k, v in summary['cameras'].items()) or 'none'}")
    print(f"  state: {summary['state']}\n  action: {summary['action']}")
    print(f"  tasks: {summary['tasks']}")
    if summary["recovered_episodes"]:
        print(f"  recovered after a crash: episodes {summary['recovered_episodes']}")
    print(f"  duplicated rows per stream: {summary['duplicated_frames']}")
    print(f"  dropped samples per stream: {summary['dropped_samples']}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from robostack.dataset.metadata import read_episodes
    from robostack.dataset.validate import validate

    try:
        total = len(read_episodes(__import__("pathlib").Path(args.dir)))
    except Exception:  # noqa: BLE001 - validate reports the details
        total = 0
    bar = _progress(total, "validating episodes")
    report = validate(args.dir, decode_videos=args.decode, progress=bar.update)
    bar.close()
    if args.json:
        print(json.dumps({"ok": report.ok, "problems": report.problems, "episodes": report.episodes_checked, "frames": report.frames_checked}, indent=2))
    elif report.ok:
        print(f"{args.dir}: ok ({report.episodes_checked} episodes, {report.frames_checked} frames)")
    else:
        print(f"{args.dir}: {len(report.problems)} problem(s)")
        for line in report.problems:
            print(f"  - {line}")
    return 0 if report.ok else 1


def _cmd_repair(args: argparse.Namespace) -> int:
    from robostack.dataset.errors import DatasetError
    from robostack.dataset.repair import repair

    try:
        report = repair(args.dir)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from robostack.dataset.episode_view import render_episode
    from robostack.dataset.errors import DatasetError
    from robostack.dataset.reader import DatasetReader

    try:
        length = int(DatasetReader(args.dir)._meta(args.episode)["length"])
        out = args.out or f"episode_{args.episode:06d}.mp4"
        bar = _progress(length, "rendering frames")
        path = render_episode(args.dir, args.episode, out, progress=bar.update)
        bar.close()
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _cmd_control(args: argparse.Namespace) -> int:
    from robostack.drivers.recorder.commands import CommandError
    from robostack.drivers.recorder.control import RecorderNotRunning, format_status, interactive, send_command

    try:
        if args.command is None:
            return interactive(args.dir)
        status = send_command(args.dir, args.command, args.task)
    except (RecorderNotRunning, CommandError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(status) if args.json else format_status(status))
    return 0 if status.get("ok", True) else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("dataset", help="inspect, validate, repair and view datasets; control a recorder")
    sub = p.add_subparsers(dest="dataset_command", required=True)

    q = sub.add_parser("info", help="episodes, frames, cameras, tasks of a dataset")
    q.add_argument("dir")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_info)

    q = sub.add_parser("validate", help="check a dataset against the LeRobot v3.0 layout (exit 1 on problems)")
    q.add_argument("dir")
    q.add_argument("--decode", action="store_true", help="decode every video frame too")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_validate)

    q = sub.add_parser("repair", help="recover what a crash left (interrupted episode, stale files) and say what was done")
    q.add_argument("dir")
    q.set_defaults(func=_cmd_repair)

    q = sub.add_parser("view", help="render an episode to mp4 with state/action traces beside the frames")
    q.add_argument("dir")
    q.add_argument("--episode", type=int, default=0)
    q.add_argument("--out", default=None, help="output mp4 (default episode_NNNNNN.mp4)")
    q.set_defaults(func=_cmd_view)

    q = sub.add_parser("control", help="control the recorder writing DIR: keys in this terminal, or one command")
    q.add_argument("dir")
    q.add_argument("command", nargs="?", choices=["start", "stop", "rerecord", "discard", "quit", "task", "status"])
    q.add_argument("--task", default=None, help="task instruction for the next episodes")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_cmd_control)
