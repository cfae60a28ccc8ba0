"""Policies: models and training (torch, behind the ``train`` extra), export to policy packages,
ONNX Runtime serving and failure prediction.

Installed as ``robostack.policies``. Nothing here is imported by ``import robostack``.
"""
