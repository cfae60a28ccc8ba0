"""Writing episodes and reading them back: layout, frame-exact video, stamps, schema checks."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from dataset_helpers import PERIOD_NS, add_frames, small_spec, write_dataset

from robostack.dataset import DatasetError, DatasetStorageError
from robostack.dataset.reader import DatasetReader
from robostack.dataset.validate import validate
from robostack.dataset.writer import DatasetWriter
from robostack.drivers.cameras.pattern import read_frame_counter


def test_written_dataset_has_the_lerobot_v3_layout(tmp_path):
    write_dataset(tmp_path, [20, 25])
    info = json.loads((tmp_path / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 2 and info["total_frames"] == 45 and info["total_tasks"] == 1
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    assert info["features"]["observation.state"] == {"dtype": "float32", "shape": [7], "names": [f"j{i}" for i in range(7)]}
    for rel in ("data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet",
                "videos/observation.images.front/chunk-000/file-001.mp4", "meta/episodes/chunk-000/file-000.parquet",
                "meta/tasks.parquet", "meta/stats.json"):
        assert (tmp_path / rel).is_file(), rel
    schema = pq.read_schema(tmp_path / "data/chunk-000/file-000.parquet")
    state_type = schema.field("observation.state").type
    assert state_type.list_size == 7 and str(state_type.value_type) == "float"
    assert str(schema.field("timestamp").type) == "float"
    episodes = pq.read_table(tmp_path / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, 20), (20, 45)]
    assert episodes[1]["videos/observation.images.front/to_timestamp"] == pytest.approx(25 / 30)
    assert episodes[1]["tasks"] == ["pick the cube"]
    tasks = pq.read_table(tmp_path / "meta/tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0], "task": ["pick the cube"]}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    stats = json.loads((tmp_path / "meta/stats.json").read_text())
    assert stats["observation.state"]["max"] == [24.0] * 7 and stats["observation.state"]["count"] == [45]
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert validate(tmp_path, decode_videos=True).problems == []


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_decoded_video_frame_i_is_recorded_frame_i_and_stamps_match_rows(tmp_path, codec):
    spec = small_spec(codec=codec)
    writer = DatasetWriter(tmp_path, spec)
    ep = writer.begin_episode("t")
    add_frames(ep, spec, 47)
    assert ep.save().length == 47
    reader = DatasetReader(tmp_path)
    rows = reader.load_episode(0).columns
    for key in reader.video_keys:
        decoded = [(i, read_frame_counter(img)) for i, img in reader.frames(0, key)]
        assert [i for i, _ in decoded] == list(range(47))
        assert [c for _, c in decoded] == list(range(47))
    assert np.array_equal(rows["tick_ns"], 1_000_000_000 + np.arange(47) * PERIOD_NS)
    assert np.array_equal(rows["stamp_ns.observation.images.front"], rows["tick_ns"] - 5_000_000)
    assert np.array_equal(rows["seq.action"], np.arange(47))
    assert np.array_equal(rows["observation.state"][:, 3], np.arange(47, dtype=np.float32))


def test_discarded_episode_leaves_nothing_and_the_next_takes_its_index(tmp_path):
    spec = small_spec()
    writer = DatasetWriter(tmp_path, spec)
    ep = writer.begin_episode("t")
    add_frames(ep, spec, 10)
    ep.discard()
    assert not any((tmp_path / ".journal").iterdir())
    ep = writer.begin_episode("t")
    assert ep.index == 0
    add_frames(ep, spec, 5)
    ep.save()
    assert DatasetReader(tmp_path).num_episodes == 1


def test_reopening_appends_and_a_different_schema_is_refused(tmp_path):
    write_dataset(tmp_path, [10])
    spec = small_spec()
    writer = DatasetWriter(tmp_path, spec)
    ep = writer.begin_episode("another task")
    add_frames(ep, spec, 8)
    ep.save()
    reader = DatasetReader(tmp_path)
    assert reader.num_episodes == 2 and reader.tasks == ["pick the cube", "another task"]
    assert np.all(reader.load_episode(1).columns["task_index"] == 1)
    with pytest.raises(DatasetError, match="fps 30 != 15"):
        DatasetWriter(tmp_path, small_spec(fps=15))


def test_bad_frames_are_refused_with_a_message_naming_the_problem(tmp_path):
    spec = small_spec()
    ep = DatasetWriter(tmp_path, spec).begin_episode("t")
    with pytest.raises(DatasetError, match="state has 6 values, the dataset expects 7"):
        ep.add_frame(0, np.zeros(6), np.zeros(7), {}, {})
    with pytest.raises(DatasetError, match=r"observation.images.front: expected \(96, 128, 3\) uint8"):
        ep.add_frame(0, np.zeros(7), np.zeros(7), {"observation.images.front": np.zeros((96, 128), np.uint8)}, {})
    ep.discard()


def test_unwritable_dataset_directory_fails_at_once_with_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(DatasetStorageError, match="not a directory"):
        DatasetWriter(blocker / "ds", small_spec())
