"""Choosing each stream's sample for a row: newest at or before the tick, duplicates and drops."""

from robostack.drivers.recorder.alignment import StreamBuffer
from robostack.messages import Message


def msg(seq, stamp, src="cam"):
    return Message("cam/frames", stamp_ns=stamp, seq=seq, src=src)


def test_row_takes_the_newest_sample_at_or_before_its_tick():
    b = StreamBuffer("x")
    for seq, stamp in enumerate([100, 200, 300]):
        b.push(msg(seq, stamp))
    assert b.take(50) is None
    m, s = b.take(250)
    assert (m.seq, s.stamp_ns, s.dup, s.dropped) == (1, 200, False, 0)
    m, s = b.take(300)
    assert (m.seq, s.dup) == (2, False)


def test_no_newer_sample_repeats_the_previous_one_flagged_dup():
    b = StreamBuffer("x")
    b.push(msg(0, 100))
    assert b.take(150)[1].dup is False
    assert b.take(180)[1].dup is True
    assert b.dup_rows == 1


def test_skipped_and_lost_samples_are_counted_as_dropped():
    b = StreamBuffer("x")
    b.push(msg(0, 100))
    b.take(100)
    for seq, stamp in [(1, 110), (2, 120), (5, 130)]:  # 1, 2 skipped by alignment; 3, 4 never arrived
        b.push(msg(seq, stamp))
    _, s = b.take(135)
    assert s.dropped == 4 and b.dropped == 4


def test_first_row_of_an_episode_compares_with_nothing():
    b = StreamBuffer("x")
    b.push(msg(7, 100))
    b.take(100)
    b.forget_used()
    _, s = b.take(120)
    assert (s.dup, s.dropped) == (False, 0)
