"""A serving box has numpy + onnxruntime, not torch: the package loader, the ONNX policy and the
CLI modules must not import torch."""

from __future__ import annotations

import subprocess
import sys


def test_serving_side_modules_do_not_import_torch():
    code = (
        "import sys, argparse\n"
        "import robostack.policies, robostack.policies.package, robostack.policies.onnx_policy, robostack.policies.tokenizer, "
        "robostack.policies.preprocessing, robostack.policies.sampling, robostack.policies.normalization, "
        "robostack.policies.cli, robostack.policies.bench, robostack.policies.run_store, robostack.policies.training_data\n"
        "p = argparse.ArgumentParser(); robostack.policies.cli.register(p.add_subparsers())\n"
        "print(','.join(m for m in ('torch', 'onnx', 'mujoco', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported on the serving side: {out.stdout}"


def test_cli_module_imports_only_the_standard_library():
    code = (
        "import sys; before = set(sys.modules)\n"
        "import robostack.policies.cli\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(','.join(sorted(new - {'robostack'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "numpy" not in out.stdout.split(","), out.stdout
