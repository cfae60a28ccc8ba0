"""The MuJoCo digital twin: robot models, task scenes, scripted experts, sim drivers, PyBullet
backend and the evaluation runner.

Installed as ``robostack.sim``. Import mujoco only inside the modules that need it.
"""
