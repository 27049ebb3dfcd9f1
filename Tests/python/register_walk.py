"""Walks every register of a servo table with the vendor's official, unmodified Python SDK, against one servo.

Usage: register_walk.py --protocol dynamixel|feetech --port PATH --table Hardware/servos/MODEL.json
                        [--id 1] [--baud 1000000]

For every documented register it checks what the hardware answers (ROBOTIS e-Manual, DYNAMIXEL Protocol 2.0,
status packet error numbers: 4 Data Range, 5 Data Length, 6 Data Limit, 7 Access; Feetech FT-SCS protocol:
the status byte carries hardware conditions only, so there is no error to report an access with):
- READ of the register: a status packet, no error, as many bytes as asked; the factory value where the table
  lists one (ID and Baud Rate: what the bus was started with; live registers are not compared);
- WRITE of the value just read back to a writable register: acknowledged without error, value kept;
- WRITE to a read-only register: Dynamixel answers Access Error (7), Feetech acknowledges; either way the value
  does not change;
- Dynamixel: a value beyond the register's range (or not among its listed values) is refused with Data Range
  (4), or Data Limit (6) for a goal bounded by a limit register, and the value does not change.
Then, once per servo: a READ past the table's end (Dynamixel: Access Error without data; Feetech: answered,
zeros), a WRITE into a byte between registers and a WRITE of part of a multi-byte register (Dynamixel: Access
Error, Data Length), a WRITE to EEPROM with torque on (Dynamixel: Access Error). Never silence.

Prints one line per failure, a summary per kind of check, and a closing "N passed, N failed" line; exits
non-zero on any failure.
"""

import argparse
import json
import sys
import time

# Goals bounded by a limit register: beyond it the X series answers Data Limit rather than Data Range.
DYNAMIXEL_LIMITED_GOALS = {"Goal PWM", "Goal Current", "Goal Velocity"}
# Set by the bus at start (the servo's ID and rate) or by the firmware at reset (the goal is the present
# position); compared with what the bus was started with, or not at all.
NOT_FACTORY = {"ID", "Baud Rate", "Goal Position"}


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.kinds = {}

    def check(self, kind, name, condition, detail=""):
        counts = self.kinds.setdefault(kind, [0, 0])
        if condition:
            self.passed += 1
            counts[0] += 1
        else:
            self.failed += 1
            counts[1] += 1
            print(f"FAIL {kind}: {name} {detail}")


def encode(value, size, register, little_endian):
    """The register's bytes for a decoded value, or None when the value does not fit the field."""
    sign_bit = register.get("signBit")
    if register.get("signed"):
        low, high = -(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1
        if not low <= value <= high:
            return None
        raw = value & ((1 << (8 * size)) - 1)
    elif sign_bit is not None:
        if abs(value) >= (1 << sign_bit):
            return None
        raw = abs(value) | ((1 << sign_bit) if value < 0 else 0)
    else:
        if not 0 <= value < (1 << (8 * size)):
            return None
        raw = value
    data = [(raw >> (8 * k)) & 0xFF for k in range(size)]
    return data if little_endian else data[::-1]


def decode(data, register, little_endian):
    raw = 0
    ordered = data if little_endian else data[::-1]
    for k, byte in enumerate(ordered):
        raw |= byte << (8 * k)
    size = register["size"]
    if register.get("signed") and raw & (1 << (8 * size - 1)):
        return raw - (1 << (8 * size))
    sign_bit = register.get("signBit")
    if sign_bit is not None and raw & (1 << sign_bit):
        return -(raw & ((1 << sign_bit) - 1))
    return raw


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", required=True, choices=["dynamixel", "feetech"])
    parser.add_argument("--port", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--id", type=int, default=1)
    parser.add_argument("--baud", type=int, default=1_000_000)
    args = parser.parse_args()

    table = json.load(open(args.table))
    registers = sorted(table["registers"], key=lambda r: r["address"])
    little_endian = table["protocol"] != "feetech-scs"
    dynamixel = args.protocol == "dynamixel"
    if dynamixel:
        import dynamixel_sdk as sdk

        packet = sdk.PacketHandler(2.0)
    else:
        import scservo_sdk as sdk

        packet = sdk.PacketHandler(0 if little_endian else 1)
    port = sdk.PortHandler(args.port)
    if not port.openPort() or not port.setBaudRate(args.baud):
        print(f"cannot open {args.port} at {args.baud} bit/s")
        return 2
    servo = args.id
    checks = Checks()
    alert = 0x80 if dynamixel else 0x00

    # The SDK gives a reply a few tens of ms; a test machine that stalls this process longer (other tests run
    # beside it) makes a reply that came look lost. Such a transaction is asked again (up to three times, the late
    # reply cleared from the port first), and said so: a servo that stays silent still fails.
    retries = []

    def read(address, length):
        for attempt in range(4):
            data, result, error = packet.readTxRx(port, servo, address, length)
            if result != sdk.COMM_RX_TIMEOUT or attempt == 3:
                return data, result, error & ~alert
            retries.append(f"read {address}")
            print(f"note: read of {length} at {address} timed out; asking again")
            time.sleep(0.05)
            port.clearPort()

    def write(address, data):
        for attempt in range(4):
            result, error = packet.writeTxRx(port, servo, address, len(data), data)
            if result != sdk.COMM_RX_TIMEOUT or attempt == 3:
                return result, error & ~alert
            retries.append(f"write {address}")
            print(f"note: write of {len(data)} at {address} timed out; asking again")
            time.sleep(0.05)
            port.clearPort()

    # A first exchange after the port opened can miss its reply on a loaded machine: one ping to settle.
    packet.ping(port, servo)
    baud_index = next(int(k) for k, v in table["baudRates"].items() if v == args.baud)
    expected_fixed = {"ID": servo, "Baud Rate": baud_index}

    for register in registers:
        name, address, size = register["name"], register["address"], register["size"]
        data, result, error = read(address, size)
        answered = result == sdk.COMM_SUCCESS and error == 0 and len(data) == size
        checks.check("read", name, answered, f"result={packet.getTxRxResult(result)} error={error} data={data}")
        if not answered:
            continue
        value = decode(data, register, little_endian)
        live = register["area"] == "RAM" and register["access"] == "R"
        if name in expected_fixed:
            checks.check("factory value", name, value == expected_fixed[name], f"read {value}")
        elif "default" in register and not live and name not in NOT_FACTORY:
            checks.check("factory value", name, value == register["default"], f"read {value}, table {register['default']}")

        if register["access"] == "RW":
            result, error = write(address, data)
            checks.check("write back", name, result == sdk.COMM_SUCCESS and error == 0,
                         f"result={packet.getTxRxResult(result)} error={error}")
            again, _, _ = read(address, size)
            checks.check("write back keeps", name, again == data, f"{again} != {data}")
        else:
            flipped = [b ^ 0x01 for b in data]
            result, error = write(address, flipped)
            expected = 7 if dynamixel else 0
            checks.check("read-only write", name, result == sdk.COMM_SUCCESS and error == expected,
                         f"result={packet.getTxRxResult(result)} error={error}, expected {expected}")
            if not live:
                again, _, _ = read(address, size)
                checks.check("read-only unchanged", name, again == data, f"{again} != {data}")

        if dynamixel and register["access"] == "RW":
            outside = []
            if "max" in register:
                outside.append(register["max"] + 1)
            if "min" in register:
                outside.append(register["min"] - 1)
            if "values" in register:
                low, high = register.get("min", min(register["values"])), register.get("max", max(register["values"]))
                outside += [v for v in range(low, high + 1) if v not in register["values"]][:1]
            for bad in outside:
                raw = encode(bad, size, register, little_endian)
                if raw is None:
                    continue
                result, error = write(address, raw)
                expected = 6 if name in DYNAMIXEL_LIMITED_GOALS else 4
                checks.check("out of range", f"{name}={bad}", result == sdk.COMM_SUCCESS and error == expected,
                             f"result={packet.getTxRxResult(result)} error={error}, expected {expected}")
                again, _, _ = read(address, size)
                checks.check("out of range unchanged", f"{name}={bad}", again == data, f"{again} != {data}")

    end = max(r["address"] + r["size"] for r in registers)
    data, result, error = read(end, 2)
    if dynamixel:
        # A status packet without data: the SDK slices the packet's CRC as "data", so only the error is compared.
        checks.check("past the end", f"read {end}", result == sdk.COMM_SUCCESS and error == 7,
                     f"result={packet.getTxRxResult(result)} error={error} data={data}")
    else:
        checks.check("past the end", f"read {end}", result == sdk.COMM_SUCCESS and error == 0 and data == [0, 0],
                     f"result={packet.getTxRxResult(result)} error={error} data={data}")
    covered = set()
    for register in registers:
        covered.update(range(register["address"], register["address"] + register["size"]))
    gap = next((a for a in range(end) if a not in covered), None)
    if dynamixel and gap is not None:
        result, error = write(gap, [0])
        checks.check("between registers", f"write {gap}", result == sdk.COMM_SUCCESS and error == 7,
                     f"result={packet.getTxRxResult(result)} error={error}")
    if dynamixel:
        wide = next(r for r in registers if r["access"] == "RW" and r["size"] > 1)
        result, error = write(wide["address"], [0])
        checks.check("part of a register", wide["name"], result == sdk.COMM_SUCCESS and error == 5,
                     f"result={packet.getTxRxResult(result)} error={error}")
        torque = next(r for r in registers if r["name"] == "Torque Enable")
        delay = next(r for r in registers if r["name"] == "Return Delay Time")
        write(torque["address"], [1])
        current, _, _ = read(delay["address"], 1)
        result, error = write(delay["address"], current)
        checks.check("EEPROM with torque on", delay["name"], result == sdk.COMM_SUCCESS and error == 7,
                     f"result={packet.getTxRxResult(result)} error={error}")
        write(torque["address"], [0])

    for kind, (ok, bad) in checks.kinds.items():
        print(f"{kind}: {ok} passed, {bad} failed")
    if retries:
        print(f"{len(retries)} transactions asked again after a timeout: {', '.join(retries)}")
    print(f"{table['model']}: {len(registers)} registers, {checks.passed} passed, {checks.failed} failed")
    port.closePort()
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
