"""The recorder: a graph node that aligns camera, state and action streams at the dataset rate
and records episodes into a LeRobot-v3-layout dataset (:mod:`robostack.dataset`), with episode
control from the terminal, a control topic, the twin's episode topic or ``robostack dataset
control``.

Node class: ``robostack.drivers.recorder.node:Recorder``. Nothing heavy is imported here.
"""
