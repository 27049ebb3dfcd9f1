"""Drives a bus with the vendors' official, unmodified Python SDKs and prints what it saw as JSON.

Usage: official_sdk_master.py dynamixel|feetech PORT
Used by SinewBusTests (when SINEW_PYTHON names a Python with dynamixel-sdk and feetech-servo-sdk) to
check that Sinew's codecs are byte-compatible with the vendors' own clients.
"""
import json
import sys


def dynamixel(path):
    import dynamixel_sdk as sdk

    port = sdk.PortHandler(path)
    assert port.openPort() and port.setBaudRate(1000000)
    ph = sdk.PacketHandler(2.0)
    out = {"ping": [], "ping_missing": None}
    for i in (1, 2, 3):
        model, result, error = ph.ping(port, i)
        out["ping"].append([model, result, error])
    out["ping_missing"] = ph.ping(port, 9)[1]
    value, result, error = ph.read4ByteTxRx(port, 2, 132)
    out["read"] = [value, result, error]
    # A value with FF FF FD in it exercises byte stuffing in both directions.
    out["write"] = list(ph.write4ByteTxRx(port, 3, 116, 0xFDFFFF01))
    value, result, error = ph.read4ByteTxRx(port, 3, 116)
    out["read_back"] = [value, result, error]
    write = sdk.GroupSyncWrite(port, ph, 116, 4)
    for i in (1, 2, 3):
        write.addParam(i, [i, 0x10, 0, 0])
    out["sync_write"] = write.txPacket()
    read = sdk.GroupSyncRead(port, ph, 116, 4)
    for i in (1, 2, 3):
        read.addParam(i)
    out["sync_read"] = read.txRxPacket()
    out["sync_values"] = [read.getData(i, 116, 4) for i in (1, 2, 3)]
    out["fast_sync_read"] = read.fastSyncRead()
    out["fast_values"] = [read.getData(i, 116, 4) for i in (1, 2, 3)]
    port.closePort()
    return out


def feetech(path):
    import scservo_sdk as sdk

    port = sdk.PortHandler(path)
    assert port.openPort() and port.setBaudRate(1000000)
    ph = sdk.PacketHandler(0)
    out = {"ping": []}
    for i in (1, 2, 3):
        model, result, error = ph.ping(port, i)
        out["ping"].append([model, result, error])
    value, result, error = ph.read2ByteTxRx(port, 2, 56)
    out["read"] = [value, result, error]
    out["write"] = list(ph.write2ByteTxRx(port, 3, 42, 0x0812))
    value, result, error = ph.read2ByteTxRx(port, 3, 42)
    out["read_back"] = [value, result, error]
    write = sdk.GroupSyncWrite(port, ph, 42, 2)
    for i in (1, 2, 3):
        write.addParam(i, [i, 0x08])
    out["sync_write"] = write.txPacket()
    read = sdk.GroupSyncRead(port, ph, 42, 2)
    for i in (1, 2, 3):
        read.addParam(i)
    out["sync_read"] = read.txRxPacket()
    out["sync_values"] = [read.getData(i, 42, 2) for i in (1, 2, 3)]
    port.closePort()
    return out


if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    print(json.dumps(dynamixel(path) if kind == "dynamixel" else feetech(path)))
