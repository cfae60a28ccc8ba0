"""A read that sleeps in select() while the bus is quiet, for the SDKs' PortHandlers.

Both SDKs poll pyserial with a zero timeout in a tight loop while waiting for a status packet,
which keeps one core at 100 % and, worse, can starve the kernel worker that moves bytes from a
tty's driver to its reader (seen here as 4-10 ms stalls on 5 % of reads). Blocking in select()
for at most ``poll_cap_s`` when nothing is pending gives the CPU back and wakes on the first byte;
the SDK still checks its own packet timeout after every read.
"""

from __future__ import annotations

import select


class QuietWaitMixin:
    """Mix into an SDK PortHandler subclass (before the SDK class)."""

    poll_cap_s: float = 0.001

    def readPort(self, length):  # noqa: N802 (SDK method name)
        ser = self.ser
        if ser.in_waiting == 0:
            try:
                select.select([ser.fileno()], [], [], self.poll_cap_s)
            except (OSError, ValueError):
                pass  # port closed under us; the read below reports it the SDK's way
        return ser.read(length)
