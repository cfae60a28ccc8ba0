"""Hardware and device drivers: cameras, arms and servo buses, teleop devices, recorder.

Installed as ``robostack.drivers``. Heavy imports (OpenCV, pyserial, vendor SDKs) live in the
modules that need them, never here.
"""
