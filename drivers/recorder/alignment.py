"""Aligning streams to the dataset clock: row ``k`` stands for ``tick_ns = t0 + k / fps`` and
takes, from every stream, the newest sample whose capture stamp is at or before the tick."""

from __future__ import annotations

import collections
from typing import Any

from robostack.dataset.journal import Sample


class StreamBuffer:
    """Recent samples of one stream, oldest first, and which one the last row used."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.samples: collections.deque = collections.deque()
        self._last_seq: int | None = None
        self._last_src: str | None = None
        self.received = 0
        self.dup_rows = 0
        self.dropped = 0

    def push(self, msg: Any) -> None:
        if self.samples and msg.stamp_ns < self.samples[-1].stamp_ns and msg.src == self.samples[-1].src:
            self.samples.clear()  # the publisher restarted with an earlier clock: start over
        self.samples.append(msg)
        self.received += 1

    def newest_stamp(self) -> int | None:
        return self.samples[-1].stamp_ns if self.samples else None

    def has_sample_at(self, tick_ns: int) -> bool:
        return bool(self.samples) and self.samples[0].stamp_ns <= tick_ns

    def take(self, tick_ns: int) -> tuple[Any, Sample] | None:
        """The newest sample at or before ``tick_ns`` and how it relates to the previous row's."""
        s = self.samples
        while len(s) >= 2 and s[1].stamp_ns <= tick_ns:
            s.popleft()
        if not s or s[0].stamp_ns > tick_ns:
            return None
        msg = s[0]
        same_src = msg.src == self._last_src
        dup = same_src and msg.seq == self._last_seq
        dropped = 0
        if same_src and self._last_seq is not None and msg.seq > self._last_seq + 1:
            dropped = msg.seq - self._last_seq - 1
        self._last_seq, self._last_src = msg.seq, msg.src
        self.dup_rows += dup
        self.dropped += dropped
        return msg, Sample(int(msg.stamp_ns), int(msg.seq), bool(dup), int(dropped))

    def forget_used(self) -> None:
        """New episode: its first row has no previous row to compare with."""
        self._last_seq = self._last_src = None

    def trim(self, before_ns: int) -> None:
        """Drop samples older than ``before_ns`` except the newest one before it."""
        s = self.samples
        while len(s) >= 2 and s[1].stamp_ns <= before_ns:
            s.popleft()
