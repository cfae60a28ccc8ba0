"""Arm driver nodes: :class:`~robostack.drivers.arm.base.ArmDriverNode` (the standard ports and
the per-tick pipeline), :class:`~robostack.drivers.arm.servo_arm.ServoArmNode` (Feetech /
Dynamixel buses), the emulated-bus node and a sine-wave chunk source for trying them out.

Import the submodules directly; this package imports nothing heavy.
"""
