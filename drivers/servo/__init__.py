"""Servo buses (Feetech STS, Dynamixel 2.0) through the vendors' SDKs, an emulated bus that
speaks the same wire protocols over a pseudo-terminal, and joint calibration.

Import the submodules directly; this package imports nothing heavy.
"""
