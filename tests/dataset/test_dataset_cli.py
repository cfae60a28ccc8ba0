"""``robostack dataset info|validate|repair|view|control`` through the argparse registration."""

import argparse
import json

from dataset_helpers import write_dataset

from robostack.dataset.video import probe
from robostack.drivers import dataset_cli


def run(argv):
    parser = argparse.ArgumentParser()
    dataset_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_info_validate_repair_report_on_a_dataset(tmp_path, capsys):
    write_dataset(tmp_path, [12, 8])
    assert run(["dataset", "info", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 2 and info["frames"] == 20 and info["tasks"] == ["pick the cube"]
    assert run(["dataset", "validate", str(tmp_path)]) == 0
    assert "ok (2 episodes, 20 frames)" in capsys.readouterr().out
    assert run(["dataset", "repair", str(tmp_path)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_validate_exits_1_and_names_each_problem(tmp_path, capsys):
    write_dataset(tmp_path, [10])
    (tmp_path / "videos/observation.images.wrist/chunk-000/file-000.mp4").unlink()
    assert run(["dataset", "validate", str(tmp_path)]) == 1
    assert "video videos/observation.images.wrist/chunk-000/file-000.mp4 is missing" in capsys.readouterr().out


def test_view_renders_frames_and_traces_into_one_video(tmp_path, capsys):
    write_dataset(tmp_path, [15])
    out = tmp_path / "view.mp4"
    assert run(["dataset", "view", str(tmp_path), "--episode", "0", "--out", str(out)]) == 0
    p = probe(out)
    assert p["frames"] == 15 and p["width"] == 128 + 96 + 640


def test_commands_on_a_missing_dataset_or_recorder_are_clear_errors(tmp_path, capsys):
    assert run(["dataset", "info", str(tmp_path / "none")]) == 2
    assert "no such dataset directory" in capsys.readouterr().err
    assert run(["dataset", "control", str(tmp_path), "status"]) == 2
    assert "no recorder is recording into" in capsys.readouterr().err
