"""The twin as graph nodes, interchangeable with the real drivers in a launch file.

- :class:`~robostack.sim.nodes.arm.SimArmNode` (``robostack.sim.nodes.arm:SimArmNode``): the
  MuJoCo scene behind the arm driver's ports, plus ``world`` and ``episode`` outputs;
- :class:`~robostack.sim.nodes.camera.SimCameraNode`: renders ``world`` into camera ``frames``;
- :class:`~robostack.sim.nodes.expert.SimExpertNode`: the scripted operator (``action``/``chunk``);
- :class:`~robostack.sim.nodes.mirror.MirrorNode`: follows a real arm, renders, vets chunks.

Modules import MuJoCo only inside the nodes' ``setup``/methods, so a launcher validating a graph
stays light.
"""
