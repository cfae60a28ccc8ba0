import pytest

from robostack.drivers.servo.registers import (
    DYNAMIXEL_X,
    FEETECH_STS,
    Encoding,
    Register,
    control_table,
    model_name,
)


def test_sign_magnitude_round_trip_uses_the_sign_bit_not_twos_complement():
    reg = Register("homing_offset", 31, 2, Encoding.SIGN_MAGNITUDE, 11)
    assert reg.encode(-5) == (1 << 11) | 5
    assert reg.decode((1 << 11) | 5) == -5
    assert reg.decode(reg.encode(2047)) == 2047
    with pytest.raises(ValueError, match="sign bit 11"):
        reg.encode(2048)


def test_twos_complement_round_trip_of_dynamixel_positions():
    reg = DYNAMIXEL_X.goal_position
    assert reg.encode(-1) == 0xFFFFFFFF
    assert reg.decode(0xFFFFFFFF) == -1
    assert reg.decode(reg.encode(123456)) == 123456


def test_control_tables_carry_the_vendor_addresses():
    assert (FEETECH_STS.torque_enable.address, FEETECH_STS.goal_position.address,
            FEETECH_STS.present_position.address) == (40, 42, 56)
    assert (DYNAMIXEL_X.torque_enable.address, DYNAMIXEL_X.goal_position.address,
            DYNAMIXEL_X.present_current.address, DYNAMIXEL_X.present_position.address) == (64, 116, 126, 132)
    # one contiguous read covers position, velocity and current on X series
    assert DYNAMIXEL_X.state_block() == (126, 10)


def test_unknown_protocol_and_model_are_named():
    with pytest.raises(ValueError, match="unknown servo protocol 'herkulex'"):
        control_table("herkulex")
    assert model_name("feetech", 777) == "sts3215"
    assert model_name("dynamixel", 4242) == "unknown-4242"
