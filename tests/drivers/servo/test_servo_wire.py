"""The emulator's own protocol framing, checked against published packets and the SDKs."""

import random

import dynamixel_sdk
import pytest

from robostack.drivers.servo import wire


def test_dynamixel_ping_packet_matches_protocol_manual_example():
    # Protocol 2.0 manual: ping to ID 1 is FF FF FD 00 01 03 00 01 19 4E.
    assert wire.dynamixel_instruction(1, wire.INST_PING) == bytes.fromhex("FFFFFD0001030001194E")


def test_feetech_ping_packet_checksum():
    # ~(0x01 + 0x02 + 0x01) & 0xFF = 0xFB
    assert wire.feetech_instruction(1, wire.INST_PING) == bytes.fromhex("FFFF010201FB")


def test_crc16_agrees_with_dynamixel_sdk_on_random_data():
    handler = dynamixel_sdk.PacketHandler(2.0)
    rng = random.Random(3)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
        assert wire.crc16_dynamixel(data) == handler.updateCRC(0, list(data), len(data))


def test_byte_stuffing_round_trips_and_inserts_after_header_pattern():
    payload = b"\x10\xff\xff\xfd\x20\xff\xff\xfd"
    stuffed = wire.dxl_stuff(payload)
    assert stuffed == b"\x10\xff\xff\xfd\xfd\x20\xff\xff\xfd\xfd"
    assert wire.dxl_unstuff(stuffed) == payload


@pytest.mark.parametrize(
    "framer_cls, build",
    [(wire.FeetechFramer, wire.feetech_instruction), (wire.DynamixelFramer, wire.dynamixel_instruction)],
)
def test_framer_resyncs_after_garbage_and_counts_bad_checksum(framer_cls, build):
    good1 = build(3, wire.INST_READ, b"\x38\x02")
    bad = bytearray(build(4, wire.INST_PING))
    bad[-1] ^= 0x40
    good2 = build(5, wire.INST_PING)
    framer = framer_cls()
    stream = b"\x00\xff\x13" + good1 + bytes(bad) + good2
    packets = []
    for i in range(0, len(stream), 3):  # arrives in small pieces, as from a pty
        packets += framer.feed(stream[i : i + 3])
    assert [(p.motor_id, p.instruction) for p in packets] == [(3, wire.INST_READ), (5, wire.INST_PING)]
    assert packets[0].params == b"\x38\x02"
    assert framer.bad_packets == 1


def test_dynamixel_framer_unstuffs_params():
    params = b"\x74\x00\xff\xff\xfd\x00"
    packet = wire.dynamixel_instruction(2, wire.INST_WRITE, params)
    assert b"\xff\xff\xfd\xfd" in packet[7:]
    (parsed,) = wire.DynamixelFramer().feed(packet)
    assert parsed.params == params
