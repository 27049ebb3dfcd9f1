"""Cycle rate of a vendor's official Python SDK on a servo bus (real or Sinew's virtual bus on a pty).

One cycle = GroupSyncRead of position, velocity and current + GroupSyncWrite of goal positions, for
every ID. Prints one JSON object: {"sdk": ..., "servos": N, "cycles": N, "seconds": S,
"cycles_per_s": R, "errors": E}.

Usage: sdk_cycle_rate.py --protocol dynamixel|feetech --port PATH [--ids 1-6] [--baud 1000000] [--seconds 3]
"""

import argparse
import json
import time


def parse_ids(text):
    ids = []
    for part in text.split(","):
        if "-" in part:
            low, high = part.split("-")
            ids.extend(range(int(low), int(high) + 1))
        else:
            ids.append(int(part))
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["dynamixel", "feetech"], required=True)
    parser.add_argument("--port", required=True)
    parser.add_argument("--ids", default="1-6")
    parser.add_argument("--baud", type=int, default=1000000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    ids = parse_ids(args.ids)

    if args.protocol == "dynamixel":
        import dynamixel_sdk as sdk
        packet = sdk.PacketHandler(2.0)
        # Present Current (126, 2) + Present Velocity (128, 4) + Present Position (132, 4); Goal Position (116, 4).
        read_address, read_length, write_address, write_length = 126, 10, 116, 4
        success = sdk.COMM_SUCCESS
    else:
        import scservo_sdk as sdk
        packet = sdk.PacketHandler(0)
        # Present Position (56) … Present Current (69, 2): 15 bytes; Goal Position (42, 2).
        read_address, read_length, write_address, write_length = 56, 15, 42, 2
        success = sdk.COMM_SUCCESS
    port = sdk.PortHandler(args.port)
    port.openPort()
    port.setBaudRate(args.baud)
    reader = sdk.GroupSyncRead(port, packet, read_address, read_length)
    writer = sdk.GroupSyncWrite(port, packet, write_address, write_length)
    for servo in ids:
        reader.addParam(servo)
        writer.addParam(servo, [0x00, 0x08, 0x00, 0x00][:write_length])

    cycles = errors = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        if reader.txRxPacket() != success:
            errors += 1
        if writer.txPacket() != success:
            errors += 1
        cycles += 1
    seconds = time.perf_counter() - start
    port.closePort()
    print(json.dumps({"sdk": args.protocol, "servos": len(ids), "cycles": cycles, "seconds": round(seconds, 3),
                      "cycles_per_s": round(cycles / seconds, 1), "errors": errors}))


if __name__ == "__main__":
    main()
