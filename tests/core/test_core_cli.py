import json
import os
import stat

from robostack.cli import main


def test_keys_new_writes_a_usable_curve_key_pair_with_a_private_secret(tmp_path, capsys):
    assert main(["keys", "new", "robot", "--dir", str(tmp_path)]) == 0
    public, secret = tmp_path / "robot.key", tmp_path / "robot.key_secret"
    assert public.is_file() and secret.is_file()
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    import zmq.auth

    pub, sec = zmq.auth.load_certificate(secret)
    assert len(pub) == 40 and len(sec) == 40
    assert main(["keys", "new", "robot", "--dir", str(tmp_path)]) == 2  # never overwrites silently
    assert "--force" in capsys.readouterr().err


def test_node_info_lists_inputs_outputs_and_typed_params(capsys):
    assert main(["node", "info", "robostack.diagnostics:Pulse"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["outputs"] == {"out": {"doc": "arrays of the configured shape/dtype"}}
    assert {p["name"] for p in info["params"]} == {"shape", "dtype", "rate_hz", "codec"}


def test_node_info_on_a_bad_class_path_exits_2(capsys):
    assert main(["node", "info", "robostack.diagnostics"]) == 2
    assert "package.module:ClassName" in capsys.readouterr().err
