"""Benchmarks behind ``robostack bench ...``: each prints its numbers (JSON with ``--json``)."""
