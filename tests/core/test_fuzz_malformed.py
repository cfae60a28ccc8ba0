"""Random and truncated frames thrown at a live subscriber and a live service: nothing crashes,
every bad message is counted, and good traffic still flows afterwards."""

import json
import time

import numpy as np
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robostack import messages
from robostack.transport import ServiceClient, ServiceServer, Subscriber

VALID = [bytes(f) for f in messages.encode(messages.make("x", {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, meta={"k": 1}))]


def mutations():
    """Random byte frames, truncated valid messages, and valid messages with a corrupted header."""
    random_frames = st.lists(st.binary(max_size=64), min_size=1, max_size=5).map(lambda fs: [b"x"] + fs)
    truncated = st.integers(1, len(VALID)).flatmap(
        lambda n: st.integers(0, len(VALID[-1])).map(lambda cut: VALID[: n - 1] + [VALID[n - 1][:cut]] if n > 2 else VALID[:n])
    )
    header = json.loads(VALID[1])
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                               lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                               max_leaves=6)
    corrupted_header = st.tuples(st.sampled_from(sorted(header) + ["zz"]), json_values).map(
        lambda kv: [VALID[0], json.dumps({**header, kv[0]: kv[1]}).encode(), VALID[2]]
    )
    corrupted_spec = st.tuples(st.sampled_from(["name", "dtype", "shape", "codec"]), json_values).map(
        lambda kv: [VALID[0], json.dumps({**header, "arrays": [{**header["arrays"][0], kv[0]: kv[1]}]}).encode(), VALID[2]]
    )
    return st.one_of(random_frames, truncated, corrupted_header, corrupted_spec)


def _is_valid(frames) -> bool:
    try:
        messages.decode(frames)
        return True
    except messages.MessageError:
        return False


class _SubscriberRig:
    def __init__(self):
        self.raw = zmq.Context.instance().socket(zmq.PUB)
        self.raw.bind("tcp://127.0.0.1:*")
        self.sub = Subscriber(self.raw.getsockopt_string(zmq.LAST_ENDPOINT), "x", mode="queue", queue_size=10_000)
        deadline = time.monotonic() + 5
        while not self.sub.receive_all():
            self.raw.send_multipart(VALID)
            time.sleep(0.02)
            assert time.monotonic() < deadline


_rig = None


def rig():
    global _rig
    if _rig is None:
        _rig = _SubscriberRig()
    return _rig


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(mutations(), min_size=1, max_size=10))
def test_subscriber_counts_and_drops_malformed_frames_and_keeps_receiving(batch):
    r = rig()
    before_bad = r.sub.stats.malformed_total
    before_other = r.sub.stats.other_topic
    expected_bad = sum(1 for f in batch if not _is_valid(f) and f[0] == b"x")
    expected_good = sum(1 for f in batch if _is_valid(f))
    for frames in batch:
        r.raw.send_multipart(frames)
    r.raw.send_multipart(VALID)  # a good message after the garbage still arrives
    got = []
    deadline = time.monotonic() + 3
    while len(got) < expected_good + 1 and time.monotonic() < deadline:
        got += r.sub.receive_all()
        time.sleep(0.002)
    assert len(got) == expected_good + 1
    np.testing.assert_array_equal(got[-1]["a"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert r.sub.stats.malformed_total - before_bad == expected_bad
    assert r.sub.stats.other_topic == before_other


_service = None


def service():
    global _service
    if _service is None:
        server = ServiceServer("tcp://127.0.0.1:*")
        raw = zmq.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(server.endpoint)
        client = ServiceClient(server.endpoint)
        _service = (server, raw, client)
    return _service


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(st.tuples(st.booleans(), mutations()), min_size=1, max_size=8))
def test_service_counts_malformed_requests_answers_errors_and_keeps_serving(batch):
    server, raw, client = service()
    before = server.stats.malformed_total
    expected_bad = 0
    for with_envelope, frames in batch:
        if _is_valid(frames):
            continue
        expected_bad += 1
        raw.send_multipart(([b"", b"\x01" * 8] if with_envelope else []) + frames)
    rid = client.send(messages.make("req", {"v": np.array([7])}))
    deadline = time.monotonic() + 3
    answered = False
    while not answered and time.monotonic() < deadline:
        for req in server.receive(timeout_ms=20):
            server.reply(req, messages.make("ok", {"v": req.message["v"] + 1}))
            answered = True
    assert answered
    assert int(client.wait_for(rid, 2.0)["v"][0]) == 8
    assert server.stats.malformed_total - before == expected_bad
    # error replies to requests with an intact envelope reach the raw client, not the real one
    while raw.poll(0):
        frames = raw.recv_multipart()
        assert messages.decode(frames[2:]).topic == "!error"
