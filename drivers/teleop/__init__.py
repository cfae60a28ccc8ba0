"""Teleoperation devices as graph nodes: a leader arm, keyboard jog (joint space, or end effector
through IK) and a SpaceMouse. Each publishes ``action`` (``position`` (D,) float32 targets) for an
arm driver's ``command`` input.

Import the submodules directly; this package imports nothing heavy.
"""
