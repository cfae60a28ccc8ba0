import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_robostack_pulls_in_no_heavy_dependency():
    code = (
        "import sys, robostack, robostack.node, robostack.transport, robostack.graph, robostack.launcher, "
        "robostack.cli, robostack.diagnostics, robostack.chunks\n"
        "robostack.cli.build_parser()\n"
        "heavy = [m for m in ('torch', 'mujoco', 'cv2', 'onnxruntime', 'pybullet') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported by the core: {out.stdout}"


def test_every_package_directory_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for prefix, directory in mapping.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / directory)
            found.add(".".join([prefix, *rel.parts]))
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {sorted(found - listed)}"
