import argparse
import json

import cv2

from robostack.sim.cli import register


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robostack")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench").add_subparsers(dest="bench_command", required=True)
    register(sub, bench)
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_eval_json_reports_success_and_writes_files(tmp_path, capsys):
    out = tmp_path / "eval"
    code = _run(["eval", "--task", "stack", "--episodes", "2", "--seed-start", "5", "--json", "--out", str(out)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["episodes"] == 2
    assert data["summary"]["successes"] == 2
    assert (out / "report.json").exists() and (out / "summary.png").exists()


def test_eval_text_output_lists_every_episode(tmp_path, capsys):
    code = _run(["eval", "--task", "pick_place", "--episodes", "2", "--out", str(tmp_path)])
    assert code == 0
    text = capsys.readouterr().out
    assert "seed     0 ok" in text and "seed     1 ok" in text
    assert "95% Wilson" in text


def test_eval_with_unknown_task_exits_with_an_error(tmp_path, capsys):
    assert _run(["eval", "--task", "juggle", "--out", str(tmp_path)]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_sim_view_writes_a_playable_video(tmp_path, capsys):
    path = tmp_path / "episode.mp4"
    assert _run(["sim", "view", "--task", "stack", "--seed", "1", "--size", "120x160", "--out", str(path)]) == 0
    video = cv2.VideoCapture(str(path))
    ok, frame = video.read()
    assert ok and frame.shape == (120, 160, 3)
    assert "success=True" in capsys.readouterr().out


def test_sim_view_rejects_a_malformed_size(tmp_path, capsys):
    assert _run(["sim", "view", "--size", "big", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "HEIGHTxWIDTH" in capsys.readouterr().err


def test_bench_sim_is_reachable_under_bench_and_sim():
    parser = _parser()
    assert parser.parse_args(["bench", "sim", "--json"]).func.__name__ == "run_bench"
    assert parser.parse_args(["sim", "bench"]).func.__name__ == "run_bench"


def test_cli_module_imports_only_the_standard_library():
    import subprocess
    import sys

    code = "import sys, robostack.sim.cli; heavy = {'mujoco', 'numpy', 'cv2', 'pybullet', 'mink'} & set(sys.modules); print(sorted(heavy))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
