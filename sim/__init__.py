"""The MuJoCo digital twin: robot models, task scenes, scripted experts, sim drivers, PyBullet
backend and the evaluation runner.

Installed as ``robostack.sim``. Import mujoco only inside the modules that need it.

Modules: ``arms`` (Panda, SO-101 built with MjSpec), ``scene``, ``tasks`` (registry),
``env`` (TwinEnv, lockstep), ``realtime``, ``rendering``, ``ik`` (mink), ``experts``,
``episode``, ``evaluation``, ``policy_loader``, ``engines``, ``bullet_env``, ``mirror``,
``gym_envs``, ``video``, ``bench``, ``cli``.
"""

import os as _os

# MuJoCo picks its GL backend when first imported; headless EGL unless the user chose one.
_os.environ.setdefault("MUJOCO_GL", "egl")
