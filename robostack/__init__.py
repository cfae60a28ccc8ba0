"""robostack: a robot control stack with real-time policy serving.

The core package holds messages, transport, nodes, the launcher, time, safety, action executors
and the CLI. It imports only numpy, pyzmq and small pure-Python libraries; ``robostack.drivers``,
``robostack.policies`` and ``robostack.sim`` bring their heavy dependencies with them.
"""

__version__ = "0.1.0"
