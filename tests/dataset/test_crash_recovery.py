"""What a killed writer leaves behind, and how repair brings it back."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from dataset_helpers import write_dataset

from robostack.dataset.reader import DatasetReader
from robostack.dataset.repair import repair
from robostack.dataset.validate import validate
from robostack.drivers.cameras.pattern import read_frame_counter

HERE = Path(__file__).parent

WRITE_THEN_DIE = """
import os, signal, sys, time, resource
sys.path.insert(0, {here!r})
from dataset_helpers import add_frames, small_spec
from robostack.dataset.writer import DatasetWriter
spec = small_spec()
w = DatasetWriter({root!r}, spec)
ep = w.begin_episode("first"); add_frames(ep, spec, 30); ep.save()
{before}
ep = w.begin_episode("second")
for k in range({frames}):
    add_frames(ep, spec, 1, start=k)
    time.sleep(1 / 30)
print("WROTE", {frames}, flush=True)
{end}
"""


def run_writer(root, frames, end, before=""):
    code = WRITE_THEN_DIE.format(here=str(HERE), root=str(root), frames=frames, end=end, before=before)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_sigkilled_writer_loses_at_most_a_second_and_never_an_earlier_episode(tmp_path):
    out = run_writer(tmp_path, 75, "os.kill(os.getpid(), signal.SIGKILL)")
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert DatasetReader(tmp_path).num_episodes == 1  # metadata never counts the unfinished episode
    assert "unrecovered episode journal" in " ".join(validate(tmp_path).problems)
    report = repair(tmp_path)
    assert len(report.recovered) == 1
    rec = report.recovered[0]
    assert rec.recovered and rec.episode_index == 1 and rec.task == "second"
    assert 75 - 30 <= rec.length <= 75, report.lines()
    assert "recovered episode 1" in report.lines()[0]
    assert validate(tmp_path, decode_videos=True).problems == []
    reader = DatasetReader(tmp_path)
    first = reader.load_episode(0)
    assert first.length == 30 and np.array_equal(first.columns["frame_index"], np.arange(30))
    second = reader.load_episode(1)
    for key in reader.video_keys:
        assert [read_frame_counter(img) for _, img in reader.frames(1, key)] == list(range(rec.length))
    assert np.array_equal(second.columns["observation.state"][:, 0], np.arange(rec.length, dtype=np.float32))
    assert reader.episodes[1]["robostack/recovered"] is True
    assert repair(tmp_path).lines() == [f"{tmp_path}: nothing to repair"]


def test_writer_stopped_by_a_full_file_system_keeps_earlier_episodes(tmp_path):
    # RLIMIT_FSIZE makes the kernel refuse writes past 120 kB with EFBIG, like a full disk would.
    before = "resource.setrlimit(resource.RLIMIT_FSIZE, (120_000, 120_000)); signal.signal(signal.SIGXFSZ, signal.SIG_IGN)"
    out = run_writer(tmp_path, 3000, "ep.save()", before=before)
    assert out.returncode == 1
    assert "DatasetStorageError" in out.stderr and "too large" in out.stderr
    repair(tmp_path)
    reader = DatasetReader(tmp_path)
    assert reader.load_episode(0).length == 30
    assert validate(tmp_path).problems == []


def test_repair_removes_a_stale_journal_and_orphan_files_and_fixes_info_totals(tmp_path):
    write_dataset(tmp_path, [12, 9])
    stale = tmp_path / ".journal/episode-000001"
    stale.mkdir(parents=True)
    (stale / "episode.json").write_text(json.dumps({"episode_index": 1, "task": "x"}))
    orphan = tmp_path / "data/chunk-000/file-002.parquet"
    orphan.write_bytes(b"PAR1 half written")
    info = json.loads((tmp_path / "meta/info.json").read_text())
    info["total_episodes"] = 5
    (tmp_path / "meta/info.json").write_text(json.dumps(info))
    assert len(validate(tmp_path).problems) >= 2
    lines = repair(tmp_path).lines()
    assert any("already committed" in line for line in lines)
    assert any("file-002.parquet" in line for line in lines)
    assert any("rewrote it to 2 / 21" in line for line in lines)
    assert not stale.exists() and not orphan.exists()
    assert validate(tmp_path).problems == []


def test_journal_with_no_complete_frame_is_dropped(tmp_path):
    write_dataset(tmp_path, [5])
    j = tmp_path / ".journal/episode-000001"
    j.mkdir(parents=True)
    (j / "episode.json").write_text(json.dumps({"episode_index": 1, "task": "x"}))
    (j / "rows.arrows").write_bytes(b"\xff\xff\xff\xff\x10")
    report = repair(tmp_path)
    assert report.recovered == [] and "held no complete frame" in report.lines()[0]
    assert DatasetReader(tmp_path).num_episodes == 1


def test_repair_of_a_missing_directory_is_a_clear_error(tmp_path):
    from robostack.dataset import DatasetError

    with pytest.raises(DatasetError, match="no such dataset directory"):
        repair(tmp_path / "nope")
