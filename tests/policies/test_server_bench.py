"""``robostack bench serve``: a short real run (server child processes over ipc and tcp) prints
the numbers it promises."""

from __future__ import annotations

import argparse
import json
import os

import pytest

pytest.importorskip("onnx")

from test_package import write_foreign_package  # noqa: E402


@pytest.mark.slow
def test_bench_serve_reports_overhead_round_trips_concurrent_throughput_and_a_bare_zeromq_floor(tmp_path, capsys):
    from robostack.policies import serve_bench

    write_foreign_package(tmp_path / "pkg")
    parser = argparse.ArgumentParser()
    serve_bench.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "pkg"), "--duration", "0.5", "--clients", "3", "--json"])
    assert serve_bench.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["transports"]) == {"ipc", "tcp"}
    assert report["package"]["providers"]["graphs"]["step"] == ["CPUExecutionProvider"]
    threads = max(1, (os.cpu_count() or 1) // 2)  # the default two workers share the cores
    assert report["package"]["server"] == {"workers": 2, "threads": threads, "spin": True, "inline": True}
    for result in report["transports"].values():
        one, many = result["one_client"], result["3_clients"]
        assert one["chunks"] > 10 and many["chunks"] > 10
        assert 0 < one["server_overhead_ms"]["p50"] < one["round_trip_ms"]["p50"]
        assert many["round_trip_ms"]["p99"] >= many["round_trip_ms"]["p50"] > 0
        assert result["throughput_ratio"] == pytest.approx(many["chunks_per_s"] / one["chunks_per_s"], rel=1e-2)
        floor = result["zeromq_floor"]  # the same-run baseline: bare ZeroMQ, the same sizes and hold
        assert floor["round_trips"] > 10 and floor["hold_ms"] == one["compute_ms"]["p50"]
        assert 0 < floor["floor_ms"]["p50"] < one["server_overhead_ms"]["p50"]  # robostack's path only adds work
        assert floor["overhead_above_floor_ms"] == pytest.approx(one["server_overhead_ms"]["p50"] - floor["floor_ms"]["p50"], abs=1e-3)


def test_bench_serve_refuses_an_unknown_transport(tmp_path):
    from robostack.policies import serve_bench

    parser = argparse.ArgumentParser()
    serve_bench.add_arguments(parser)
    with pytest.raises(SystemExit, match="unknown transport 'udp'"):
        serve_bench.run(parser.parse_args([str(tmp_path), "--transports", "udp"]))
