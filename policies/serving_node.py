"""The policy server as a graph node: a launch file starts it like any other node, and its
counters appear in the node's stats (``extra_stats``). Clients reach it at ``bind``."""

from __future__ import annotations

from dataclasses import dataclass

from robostack.node import Node


@dataclass
class PolicyServerParams:
    package: str = ""
    bind: str = "tcp://127.0.0.1:5555"
    providers: str = "cpu"
    steps: int | None = None
    threads: int | None = None
    workers: int = 1
    fp16: bool = False
    batch_window_ms: float = 2.0
    max_batch: int = 32
    max_obs_age_ms: float | None = None
    curve_secret: str | None = None
    authorized_keys: str | None = None
    rate_hz: float = 2.0  # how often the node checks that the server threads are alive


class PolicyServerNode(Node):
    """Serves ``package`` at ``bind`` (request/reply, see docs/serving.md); no stream inputs or outputs."""

    Params = PolicyServerParams

    def setup(self) -> None:
        from robostack.policies.server import PolicyServer, ServerConfig
        from robostack.policies.serving_engine import EngineConfig, parse_providers
        from robostack.transport import CurveConfig

        p = self.params
        if not p.package:
            raise ValueError(f"node {self.name!r}: param 'package' (a policy package directory) is required")
        curve = CurveConfig(secret_key_file=p.curve_secret, authorized_keys_dir=p.authorized_keys) if p.curve_secret else None
        config = ServerConfig(
            package=p.package,
            bind=p.bind,
            engine=EngineConfig(providers=parse_providers(p.providers), threads=p.threads, steps=p.steps, fp16=p.fp16),
            batch_window_ms=p.batch_window_ms,
            max_batch=p.max_batch,
            max_obs_age_ms=p.max_obs_age_ms,
            workers=p.workers,
            curve=curve,
        )
        self.server = PolicyServer(config).start()
        self.log.info("policy server ready at %s", self.server.endpoint)

    def step(self) -> None:
        if not self.server.alive:
            raise RuntimeError(f"policy server stopped: {self.server.failure!r}")

    def extra_stats(self) -> dict:
        return self.server.stats()

    def close(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
