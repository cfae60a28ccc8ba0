"""Wire framing of the two servo protocols, written from the protocol specifications.

The emulator uses this to parse instruction packets and to build status packets; the drivers
never do (they use the vendors' SDKs), so the tests exercise two independent implementations of
each protocol against each other.

Feetech SCS/STS:   ``FF FF ID LEN INST P... CHK``  with LEN = len(P) + 2 and
                   CHK = ~(ID + LEN + INST + sum(P)) & 0xFF. Status packets put ERR in INST's place.
Dynamixel 2.0:     ``FF FF FD 00 ID LEN_L LEN_H INST P... CRC_L CRC_H`` with LEN = len(P) + 3
                   (counted after byte stuffing), CRC-16 (poly 0x8005, init 0, MSB first) over
                   every byte before the CRC. Status packets are INST = 0x55 followed by ERR.
                   Byte stuffing: ``FF FF FD`` inside the payload is sent as ``FF FF FD FD``.
"""

from __future__ import annotations

from dataclasses import dataclass

INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_REG_WRITE = 0x04
INST_ACTION = 0x05
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83
DXL_INST_STATUS = 0x55
BROADCAST_ID = 0xFE

# Dynamixel 2.0 status error numbers (low 7 bits of ERR).
DXL_ERR_INSTRUCTION = 2
DXL_ERR_CRC = 3
DXL_ERR_DATA_RANGE = 4
DXL_ERR_DATA_LENGTH = 5
DXL_ERR_DATA_LIMIT = 6
DXL_ERR_ACCESS = 7


@dataclass(frozen=True)
class InstructionPacket:
    """One parsed instruction (params already unstuffed for Dynamixel)."""

    motor_id: int
    instruction: int
    params: bytes
    wire_length: int  # bytes it occupied on the wire, for byte-time emulation


def _make_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _make_crc_table()


def crc16_dynamixel(data: bytes | bytearray) -> int:
    """CRC-16 of Dynamixel protocol 2.0 (CRC-16/BUYPASS: poly 0x8005, init 0, no reflection)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def feetech_checksum(body: bytes | bytearray) -> int:
    """Checksum of a Feetech packet; ``body`` is ID, LEN, INST/ERR and params."""
    return (~sum(body)) & 0xFF


def dxl_stuff(payload: bytes) -> bytes:
    """Insert the stuffing byte after every FF FF FD inside a Dynamixel payload."""
    out = bytearray()
    for byte in payload:
        out.append(byte)
        if len(out) >= 3 and out[-3:] == b"\xff\xff\xfd":
            out.append(0xFD)
    return bytes(out)


def dxl_unstuff(payload: bytes) -> bytes:
    """Remove the stuffing byte from FF FF FD FD sequences."""
    out = bytearray()
    i = 0
    while i < len(payload):
        out.append(payload[i])
        if len(out) >= 3 and out[-3:] == b"\xff\xff\xfd" and i + 1 < len(payload) and payload[i + 1] == 0xFD:
            i += 1
        i += 1
    return bytes(out)


def feetech_instruction(motor_id: int, instruction: int, params: bytes = b"") -> bytes:
    body = bytes([motor_id, len(params) + 2, instruction]) + params
    return b"\xff\xff" + body + bytes([feetech_checksum(body)])


def feetech_status(motor_id: int, error: int, params: bytes = b"") -> bytes:
    return feetech_instruction(motor_id, error, params)


def dynamixel_instruction(motor_id: int, instruction: int, params: bytes = b"") -> bytes:
    # Stuffing covers INST + params (the SDK stuffs from the instruction byte on).
    stuffed = dxl_stuff(bytes([instruction]) + params)
    length = len(stuffed) + 2
    head = bytes([0xFF, 0xFF, 0xFD, 0x00, motor_id, length & 0xFF, length >> 8])
    packet = head + stuffed
    crc = crc16_dynamixel(packet)
    return packet + bytes([crc & 0xFF, crc >> 8])


def dynamixel_status(motor_id: int, error: int, params: bytes = b"") -> bytes:
    return dynamixel_instruction(motor_id, DXL_INST_STATUS, bytes([error]) + params)


class FeetechFramer:
    """Incremental parser of Feetech instruction packets out of a byte stream."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.bad_packets = 0

    def feed(self, data: bytes) -> list[InstructionPacket]:
        self._buf.extend(data)
        packets: list[InstructionPacket] = []
        buf = self._buf
        while True:
            start = buf.find(b"\xff\xff")
            if start < 0:
                # keep a trailing FF, it may be the first header byte
                del buf[: max(0, len(buf) - 1)]
                return packets
            del buf[:start]
            if len(buf) < 4:
                return packets
            motor_id, length = buf[2], buf[3]
            if motor_id == 0xFF or length < 2:
                del buf[0]  # FF FF FF ...: the header starts one byte later
                continue
            total = length + 4
            if len(buf) < total:
                return packets
            body = bytes(buf[2 : total - 1])
            if feetech_checksum(body) != buf[total - 1]:
                self.bad_packets += 1
                del buf[0]
                continue
            packets.append(InstructionPacket(motor_id, body[2], body[3:], total))
            del buf[:total]


class DynamixelFramer:
    """Incremental parser of Dynamixel 2.0 instruction packets out of a byte stream."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.bad_packets = 0

    def feed(self, data: bytes) -> list[InstructionPacket]:
        self._buf.extend(data)
        packets: list[InstructionPacket] = []
        buf = self._buf
        while True:
            start = buf.find(b"\xff\xff\xfd")
            if start < 0:
                del buf[: max(0, len(buf) - 2)]
                return packets
            del buf[:start]
            if len(buf) < 7:
                return packets
            if buf[3] != 0x00:  # FF FF FD FD is stuffing, not a header; reserved byte must be 0
                del buf[0]
                continue
            length = buf[5] | (buf[6] << 8)
            if length < 3:
                del buf[0]
                continue
            total = 7 + length
            if len(buf) < total:
                return packets
            crc = buf[total - 2] | (buf[total - 1] << 8)
            if crc16_dynamixel(buf[: total - 2]) != crc:
                self.bad_packets += 1
                del buf[0]
                continue
            payload = dxl_unstuff(bytes(buf[7 : total - 2]))
            packets.append(InstructionPacket(buf[4], payload[0], payload[1:], total))
            del buf[:total]
