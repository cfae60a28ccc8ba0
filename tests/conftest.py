import os

# Offscreen rendering for any test that touches MuJoCo; harmless elsewhere.
os.environ.setdefault("MUJOCO_GL", "egl")
