"""Launch graphs: load a YAML launch file, apply arguments and overrides, validate it against
the node classes, and resolve every link to a ZMQ endpoint.

The result, a :class:`Graph`, is what :mod:`robostack.launcher` starts. All problems found are
reported together in one :class:`GraphError`, each naming the node and field at fault.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from robostack import params as params_mod
from robostack.node import Input, InputWiring, Node, OutputWiring, Wiring
from robostack.runtime import STATS_OUTPUT, NodeClassError, NodeSpec, load_node_class
from robostack.transport import CurveConfig, ipc_endpoint
from robostack import terminal_keys

RestartPolicy = Literal["never", "on-failure", "always"]
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_SUBST_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOP_KEYS = {"name", "description", "args", "transport", "bind_host", "base_port", "curve", "nodes"}
_NODE_KEYS = {
    "class", "params", "inputs", "restart", "max_restarts", "backoff_s", "critical",
    "shutdown_on_exit", "enabled", "host", "transport", "log_level", "rt_priority", "doc",
}
_INPUT_KEYS = {"from", "mode", "queue_size", "clock"}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "local"}
LOCAL_HOST = "localhost"


class GraphError(ValueError):
    """A launch file that cannot run; ``problems`` lists every reason."""

    def __init__(self, problems: list[str], source: str = "launch file") -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


# ---------------------------------------------------------------------------------------- loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML silently keeps the last of duplicate keys; a launch file must not."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise GraphError(
                [f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                 f"(first at line {seen[key] + 1})"]
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a launch file, rejecting duplicate keys."""
    p = Path(path)
    if not p.is_file():
        raise GraphError([f"no such launch file: {p}"])
    try:
        data = yaml.load(p.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise GraphError([f"not valid YAML: {exc}"], str(p)) from exc
    except GraphError as exc:
        raise GraphError(exc.problems, str(p)) from None
    if not isinstance(data, dict):
        raise GraphError(["the file must be a mapping with a 'nodes' section"], str(p))
    return data


def parse_set(items: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split ``--set`` items into argument values (``name=v``) and node parameter overrides
    (``node.param=v``). Values are parsed as YAML scalars/lists (``3``, ``true``, ``[1, 2]``)."""
    args: dict[str, Any] = {}
    node_params: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise GraphError([f"--set {item!r}: expected name=value or node.param=value"])
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if "." in key:
            node, _, param = key.partition(".")
            node_params.setdefault(node, {})[param] = value
        else:
            args[key] = value
    return args, node_params


# ---------------------------------------------------------------------------------- data model
@dataclass
class ArgSpec:
    name: str
    default: Any
    choices: list[Any] | None = None
    doc: str = ""


@dataclass
class NodeConfig:
    """One node of a validated graph, before endpoints are assigned."""

    name: str
    class_path: str
    cls: type[Node]
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]  # input -> {from, mode, queue_size, clock}
    restart: RestartPolicy = "on-failure"
    max_restarts: int = 5
    backoff_s: float = 0.5
    critical: bool = True
    shutdown_on_exit: bool = False
    host: str = "localhost"
    transport: Literal["ipc", "tcp"] = "ipc"
    log_level: str = "INFO"
    rt_priority: int | None = None


@dataclass
class Graph:
    """A validated launch graph with every endpoint resolved."""

    name: str
    nodes: dict[str, NodeConfig]
    specs: dict[str, NodeSpec]
    args: dict[str, Any]
    run_dir: Path
    stats_endpoints: dict[str, str] = field(default_factory=dict)  # where to read each node's stats
    source: str = ""
    keys_endpoint: str | None = None  # set when a node reads terminal/keys from the launcher
    keys_readers: int = 0  # inputs wired to terminal/keys

    def local_nodes(self, host: str | None = None) -> list[str]:
        """Names of the nodes this machine starts (``host`` selects another host's share)."""
        if host is None:
            return [n for n, c in self.nodes.items() if c.host == LOCAL_HOST]
        return [n for n, c in self.nodes.items() if c.host == host]


# ----------------------------------------------------------------------------------- substitution
def _substitute(value: Any, args: Mapping[str, Any], where: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        whole = _SUBST_RE.fullmatch(value)
        if whole:
            name = whole.group(1)
            if name not in args:
                problems.append(f"{where}: unknown argument ${{{name}}}")
                return value
            return args[name]

        def repl(m: re.Match) -> str:
            if m.group(1) not in args:
                problems.append(f"{where}: unknown argument ${{{m.group(1)}}}")
                return m.group(0)
            return str(args[m.group(1)])

        return _SUBST_RE.sub(repl, value)
    if isinstance(value, dict):
        if "$select" in value:
            arg = value["$select"]
            if arg not in args:
                problems.append(f"{where}: $select names unknown argument {arg!r}")
                return None
            choice = args[arg]
            cases = {k: v for k, v in value.items() if k != "$select"}
            if choice not in cases:
                problems.append(f"{where}: $select on {arg}={choice!r} has no case; cases: {sorted(map(str, cases))}")
                return None
            return _substitute(cases[choice], args, where, problems)
        return {k: _substitute(v, args, f"{where}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, args, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _parse_args(raw: Any, problems: list[str]) -> dict[str, ArgSpec]:
    specs: dict[str, ArgSpec] = {}
    if raw is None:
        return specs
    if not isinstance(raw, dict):
        problems.append("'args' must be a mapping of name: default or name: {default, choices, doc}")
        return specs
    for name, value in raw.items():
        if isinstance(value, dict):
            extra = set(value) - {"default", "choices", "doc"}
            if extra:
                problems.append(f"argument {name!r}: unknown field(s) {sorted(extra)}")
            specs[name] = ArgSpec(name, value.get("default"), value.get("choices"), value.get("doc", ""))
        else:
            specs[name] = ArgSpec(name, value)
    return specs


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------------------- building
def build(
    data: Mapping[str, Any],
    *,
    set_args: Mapping[str, Any] | None = None,
    set_params: Mapping[str, Mapping[str, Any]] | None = None,
    run_dir: str | os.PathLike | None = None,
    source: str = "launch file",
) -> Graph:
    """Validate ``data`` (a parsed launch file) with overrides applied and resolve endpoints."""
    problems: list[str] = []
    extra = set(data) - _TOP_KEYS
    if extra:
        problems.append(f"unknown top-level field(s) {sorted(extra)}; known: {sorted(_TOP_KEYS)}")
    arg_specs = _parse_args(data.get("args"), problems)
    args = {n: a.default for n, a in arg_specs.items()}
    for name, value in (set_args or {}).items():
        if name not in arg_specs:
            problems.append(f"--set {name}: no such argument{_suggest(name, arg_specs)}; arguments: {sorted(arg_specs)}")
            continue
        args[name] = value
    for name, spec in arg_specs.items():
        if spec.choices is not None and args[name] not in spec.choices:
            problems.append(f"argument {name}={args[name]!r} is not one of {spec.choices}")

    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        problems.append("'nodes' must be a non-empty mapping of node name -> node")
        raise GraphError(problems, source)
    default_transport = data.get("transport", "ipc")
    if default_transport not in ("ipc", "tcp"):
        problems.append(f"'transport' must be ipc or tcp, got {default_transport!r}")

    nodes: dict[str, NodeConfig] = {}
    for name, raw in raw_nodes.items():
        cfg = _build_node(str(name), raw, args, default_transport, problems)
        if cfg is not None:
            nodes[cfg.name] = cfg

    for node, overrides in (set_params or {}).items():
        if node not in raw_nodes:
            problems.append(f"--set {node}.…: no node named {node!r}{_suggest(node, raw_nodes)}")
        elif node in nodes:
            cfg = nodes[node]
            merged = {**cfg.params, **overrides}
            try:
                params_mod.build_params(cfg.cls.Params, merged)
                cfg.params = merged
            except params_mod.ParamError as exc:
                problems.append(f"--set on node {node!r}: {exc}")

    _check_links(nodes, problems)
    _check_cycles(nodes, problems)
    if problems:
        raise GraphError(problems, source)

    graph_name = str(data.get("name") or Path(source).stem or "graph")
    if run_dir is None:
        run_dir = Path(f"/tmp/robostack-{os.getuid()}") / f"{graph_name}-{os.getpid()}"
    curve = _curve_from(data.get("curve"))
    base_port = data.get("base_port")
    if base_port is None and any(c.host != LOCAL_HOST for c in nodes.values()):
        raise GraphError(["nodes on other hosts need 'base_port' so every host derives the same tcp ports"], source)
    specs, stats_eps = _resolve(nodes, Path(run_dir), data.get("bind_host", "127.0.0.1"), curve, base_port)
    keys_readers = 0 if terminal_keys.SOURCE in nodes else sum(
        link["from"] == terminal_keys.TOPIC for c in nodes.values() for link in c.inputs.values()
    )
    keys_ep = ipc_endpoint(Path(run_dir), terminal_keys.TOPIC.replace("/", ".")) if keys_readers else None
    return Graph(graph_name, nodes, specs, args, Path(run_dir), stats_eps, source, keys_ep, keys_readers)


def _build_node(name: str, raw: Any, args: Mapping[str, Any], transport: str, problems: list[str]) -> NodeConfig | None:
    where = f"node {name!r}"
    if not _NAME_RE.match(name):
        problems.append(f"{where}: names use letters, digits, '_' and '-' and start with a letter")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping with at least 'class'")
        return None
    raw = _substitute(raw, args, where, problems)
    extra = set(raw) - _NODE_KEYS
    if extra:
        problems.append(f"{where}: unknown field(s) {sorted(extra)}{_suggest(sorted(extra)[0], _NODE_KEYS)}")
    enabled = raw.get("enabled", True)
    if isinstance(enabled, str):
        enabled = enabled.strip().lower() not in ("false", "0", "no", "off", "")
    if not enabled:
        return None
    class_path = raw.get("class")
    if not isinstance(class_path, str):
        problems.append(f"{where}: 'class' must be 'package.module:ClassName'")
        return None
    try:
        cls = load_node_class(class_path)
    except NodeClassError as exc:
        problems.append(f"{where}: {exc}")
        return None
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        problems.append(f"{where}: 'params' must be a mapping")
        params = {}
    try:
        params_mod.build_params(cls.Params, params)
    except params_mod.ParamError as exc:
        problems.append(f"{where} ({class_path}): {exc}")

    inputs: dict[str, dict[str, Any]] = {}
    raw_inputs = raw.get("inputs") or {}
    if not isinstance(raw_inputs, dict):
        problems.append(f"{where}: 'inputs' must map input names to 'node/output'")
        raw_inputs = {}
    for in_name, link in raw_inputs.items():
        if in_name not in cls.inputs:
            problems.append(
                f"{where}: {class_path} has no input {in_name!r}{_suggest(in_name, cls.inputs)}; "
                f"inputs: {sorted(cls.inputs)}"
            )
            continue
        declared: Input = cls.inputs[in_name]
        entry = {"from": link} if isinstance(link, str) else link
        if not isinstance(entry, dict) or not isinstance(entry.get("from"), str):
            problems.append(f"{where}: input {in_name!r} must be 'node/output' or {{from: node/output, ...}}")
            continue
        bad = set(entry) - _INPUT_KEYS
        if bad:
            problems.append(f"{where}: input {in_name!r}: unknown field(s) {sorted(bad)}")
        inputs[in_name] = {
            "from": entry["from"],
            "mode": entry.get("mode", declared.mode),
            "queue_size": entry.get("queue_size", declared.queue_size),
            "clock": entry.get("clock", "monotonic"),
        }
        if inputs[in_name]["mode"] not in ("latest", "queue"):
            problems.append(f"{where}: input {in_name!r}: mode must be latest or queue")
        if inputs[in_name]["clock"] not in ("monotonic", "wall"):
            problems.append(f"{where}: input {in_name!r}: clock must be monotonic or wall")
    for in_name, declared in cls.inputs.items():
        if declared.required and in_name not in raw_inputs:
            problems.append(f"{where}: required input {in_name!r} is not connected")

    rt = raw.get("rt_priority")
    if rt is not None and (type(rt) is not int or not 1 <= rt <= 99):
        problems.append(f"{where}: rt_priority must be an integer 1..99, got {rt!r}")
    restart = raw.get("restart", "on-failure")
    if restart not in ("never", "on-failure", "always"):
        problems.append(f"{where}: restart must be never, on-failure or always, got {restart!r}")
    node_transport = raw.get("transport", transport)
    if node_transport not in ("ipc", "tcp"):
        problems.append(f"{where}: transport must be ipc or tcp")
    host = str(raw.get("host", "localhost"))
    host = LOCAL_HOST if host in LOCAL_HOSTS else host  # one name per host: same host = equal names
    return NodeConfig(
        name=name,
        class_path=class_path,
        cls=cls,
        params=params,
        inputs=inputs,
        restart=restart,
        max_restarts=int(raw.get("max_restarts", 5)),
        backoff_s=float(raw.get("backoff_s", 0.5)),
        critical=bool(raw.get("critical", True)),
        shutdown_on_exit=bool(raw.get("shutdown_on_exit", False)),
        host=host,
        transport="tcp" if host != LOCAL_HOST else node_transport,
        log_level=str(raw.get("log_level", "INFO")),
        rt_priority=raw.get("rt_priority"),
    )


def _check_links(nodes: Mapping[str, NodeConfig], problems: list[str]) -> None:
    for cfg in nodes.values():
        for in_name, link in cfg.inputs.items():
            src, sep, out = link["from"].partition("/")
            where = f"node {cfg.name!r} input {in_name!r}"
            if link["from"] == terminal_keys.TOPIC and terminal_keys.SOURCE not in nodes:
                continue  # the launcher's own key source
            if not sep or not out:
                problems.append(f"{where}: {link['from']!r} must be 'node/output'")
            elif src not in nodes:
                problems.append(f"{where}: no node named {src!r}{_suggest(src, nodes)}")
            elif out not in nodes[src].cls.outputs:
                problems.append(
                    f"{where}: node {src!r} ({nodes[src].class_path}) has no output {out!r}"
                    f"{_suggest(out, nodes[src].cls.outputs)}; outputs: {sorted(nodes[src].cls.outputs)}"
                )
            if src in nodes and nodes[src].host != cfg.host and nodes[src].transport != "tcp":
                problems.append(f"{where}: crosses hosts, so {src!r} must use transport tcp")


def _check_cycles(nodes: Mapping[str, NodeConfig], problems: list[str]) -> None:
    """A node can run if it is periodic, or one of its trigger inputs comes from a node that can
    run. Event-driven nodes that only trigger each other in a loop never start."""
    can_run: set[str] = set()
    changed = True
    while changed:
        changed = False
        for cfg in nodes.values():
            if cfg.name in can_run:
                continue
            try:
                periodic = cfg.cls.free_running or (
                    cfg.cls.rate_hz_of(params_mod.build_params(cfg.cls.Params, cfg.params)) is not None
                )
            except params_mod.ParamError:
                periodic = True  # already reported
            triggers = [i for i in cfg.inputs if cfg.cls.inputs[i].trigger]
            sources = [cfg.inputs[i]["from"].partition("/")[0] for i in triggers]
            if periodic or not sources or any(s in can_run or s not in nodes for s in sources):
                can_run.add(cfg.name)
                changed = True
    stuck = [n for n in nodes if n not in can_run and _on_trigger_cycle(n, nodes)]
    if stuck:
        problems.append(
            f"nodes {stuck} can never start: they are event-driven and only triggered by each other "
            "(a cycle with no periodic node in it)"
        )


def _on_trigger_cycle(start: str, nodes: Mapping[str, NodeConfig]) -> bool:
    """True if ``start`` is reachable from itself along trigger links (upstream direction)."""
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        cfg = nodes.get(frontier.pop())
        if cfg is None:
            continue
        for i, link in cfg.inputs.items():
            src = link["from"].partition("/")[0]
            if not cfg.cls.inputs[i].trigger:
                continue
            if src == start:
                return True
            if src not in seen:
                seen.add(src)
                frontier.append(src)
    return False


def _curve_from(raw: Any) -> dict[str, CurveConfig] | None:
    """Graph-level CURVE: ``{server_secret, server_public, client_secret, authorized_keys}``."""
    if not raw:
        return None
    for key in ("server_secret", "server_public", "client_secret"):
        if key not in raw:
            raise GraphError([f"curve: missing {key!r} (make keys with 'robostack keys new NAME')"])
    return {
        "server": CurveConfig(raw["server_secret"], authorized_keys_dir=raw.get("authorized_keys")),
        "client": CurveConfig(raw["client_secret"], server_public_key_file=raw["server_public"]),
    }


def _free_tcp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _resolve(
    nodes: Mapping[str, NodeConfig],
    run_dir: Path,
    bind_host: str,
    curve: dict[str, CurveConfig] | None,
    base_port: int | None,
) -> tuple[dict[str, NodeSpec], dict[str, str]]:
    """Give every output (and each node's stats) an endpoint; wire inputs to them. With
    ``base_port``, tcp ports are ``base_port + i`` over outputs in sorted order, so launchers on
    different hosts agree; without it, free local ports are picked."""
    bind_eps: dict[str, str] = {}
    connect_eps: dict[str, str] = {}
    if terminal_keys.SOURCE not in nodes:
        connect_eps[terminal_keys.TOPIC] = ipc_endpoint(run_dir, terminal_keys.TOPIC.replace("/", "."))
    tcp_keys = sorted(
        f"{c.name}/{out}" for c in nodes.values() if c.transport == "tcp" for out in [*c.cls.outputs, STATS_OUTPUT]
    )
    for cfg in nodes.values():
        for out in [*cfg.cls.outputs, STATS_OUTPUT]:
            key = f"{cfg.name}/{out}"
            if cfg.transport == "ipc":
                ep = ipc_endpoint(run_dir, f"{cfg.name}.{out}")
                bind_eps[key] = connect_eps[key] = ep
            else:
                local = cfg.host == LOCAL_HOST
                port = base_port + tcp_keys.index(key) if base_port is not None else _free_tcp_port(bind_host)
                bind_eps[key] = f"tcp://{bind_host if local else '*'}:{port}"
                connect_eps[key] = f"tcp://{bind_host if local else cfg.host}:{port}"
    readers: dict[str, int] = {}
    queued: dict[str, int] = {}  # largest queue any reader of an output asks for (0: all latest)
    for cfg in nodes.values():
        for link in cfg.inputs.values():
            if link["mode"] == "queue":
                queued[link["from"]] = max(queued.get(link["from"], 0), int(link["queue_size"]))
            else:
                queued.setdefault(link["from"], 0)
            src_node = nodes.get(link["from"].partition("/")[0])
            if src_node is None:  # terminal/keys
                continue
            if src_node.host == cfg.host:
                readers[link["from"]] = readers.get(link["from"], 0) + 1  # remote readers may start later
    specs: dict[str, NodeSpec] = {}
    for cfg in nodes.values():
        tcp_curve = curve if cfg.transport == "tcp" else None
        wiring = Wiring(
            inputs={
                name: InputWiring(
                    endpoints=[connect_eps[link["from"]]],
                    topic=link["from"],
                    mode=link["mode"],
                    queue_size=int(link["queue_size"]),
                    clock=link["clock"],
                    curve=(curve or {}).get("client") if connect_eps[link["from"]].startswith("tcp") else None,
                )
                for name, link in cfg.inputs.items()
            },
            outputs={
                out: OutputWiring(
                    bind_eps[f"{cfg.name}/{out}"],
                    curve=(tcp_curve or {}).get("server"),
                    expected_subscribers=readers.get(f"{cfg.name}/{out}", 0),
                    hwm=_send_hwm(queued.get(f"{cfg.name}/{out}")),
                )
                for out in cfg.cls.outputs
            },
            stats_endpoint=bind_eps[f"{cfg.name}/{STATS_OUTPUT}"],
        )
        specs[cfg.name] = NodeSpec(cfg.name, cfg.class_path, cfg.params, wiring, cfg.log_level, cfg.rt_priority)
    stats = {n: connect_eps[f"{n}/{STATS_OUTPUT}"] for n in nodes}
    return specs, stats


def _send_hwm(largest_queue: int | None) -> int:
    """Publisher send queue for an output: at least 1000 and the largest queue of its readers.
    Never small: ZMQ drops the newest messages when a queue is full, which would hand a reader
    that only wants the latest sample a stale one."""
    return max(1000, largest_queue or 0)


def load(
    path: str | os.PathLike,
    sets: list[str] | None = None,
    run_dir: str | os.PathLike | None = None,
) -> Graph:
    """Load, override (``--set`` items) and validate a launch file."""
    data = load_yaml(path)
    set_args, set_params = parse_set(sets or [])
    return build(data, set_args=set_args, set_params=set_params, run_dir=run_dir, source=str(path))
