#if canImport(Glibc)
    import Glibc
#endif

/// A failed bus transaction: which servo, which instruction, and why.
public struct BusError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The servo the failure is attributed to (the first one still missing for a multi-servo read;
    /// ``ServoID/broadcast`` when no single servo is involved).
    public var servoID: ServoID
    public var instruction: Instruction
    public var cause: Cause

    public enum Cause: Sendable, Equatable {
        /// Silent servo: not a byte arrived before the deadline.
        case timeout
        /// A packet started but did not complete before the deadline.
        case truncatedPacket(receivedBytes: Int)
        /// A complete packet whose CRC/checksum did not match.
        case corruptChecksum
        /// A valid packet from a servo that was not asked (or answered twice).
        case foreignPacket(from: ServoID)
        /// Bytes arrived, but no packet header among them, before the deadline.
        case garbage(discardedBytes: Int)
        /// Dynamixel: the error byte's bits 0–6 (1 result fail, 2 instruction, 3 CRC, 4 data range,
        /// 5 data length, 6 data limit, 7 access). The reply's data was still delivered.
        case statusError(UInt8)
        /// The servo reports a hardware error: the whole error byte (Dynamixel alert bit 0x80; Feetech
        /// bits 1 voltage, 2 angle, 4 overheat, 8 overcurrent, 32 overload). Data was still delivered.
        case hardwareError(UInt8)
        /// A valid reply with the wrong number of parameters.
        case malformedReply(parameterCount: Int)
        /// The request could not be encoded (bad arguments, too long).
        case encoding(CodecError)
        /// The transport failed.
        case transport(TransportError)
        /// The port is gone for good (a hang-up, EIO, ENXIO or ENODEV: the adapter unplugged, the virtual
        /// bus's process killed); `errno` is 0 for a hang-up without one. The bus master fails every later
        /// transaction at once with this cause, without touching the dead descriptor.
        case disconnected(errno: Int32)
        /// The protocol has no such instruction (e.g. BULK_READ on Feetech).
        case unsupported
    }

    public init(servoID: ServoID, instruction: Instruction, cause: Cause) {
        self.servoID = servoID
        self.instruction = instruction
        self.cause = cause
    }

    /// True for errors that another attempt may cure (lost or damaged bytes).
    public var isRetryable: Bool {
        switch cause {
        case .timeout, .truncatedPacket, .corruptChecksum, .foreignPacket, .garbage, .malformedReply: return true
        default: return false
        }
    }

    /// True when the port is gone (``Cause/disconnected(errno:)``): neither a retry nor a later transaction can succeed.
    public var isDisconnection: Bool {
        if case .disconnected = cause { return true }
        return false
    }

    public var description: String {
        let what: String
        switch cause {
        case .timeout: what = "no reply before the deadline"
        case .truncatedPacket(let n): what = "truncated reply (\(n) bytes)"
        case .corruptChecksum: what = "corrupt checksum"
        case .foreignPacket(let id): what = "unexpected packet from ID \(id)"
        case .garbage(let n): what = "\(n) bytes of garbage and no reply"
        case .statusError(let e): what = "servo reports error 0x\(String(e, radix: 16))"
        case .hardwareError(let e): what = "servo reports a hardware error (status 0x\(String(e, radix: 16)))"
        case .malformedReply(let n): what = "reply with \(n) parameters"
        case .encoding(let e): what = "cannot encode: \(e)"
        case .transport(let e): what = "transport: \(e)"
        case .disconnected(let e):
            what = e == 0 ? "port disconnected (hang-up)" : "port disconnected (\(String(cString: strerror(e))))"
        case .unsupported: what = "not supported by this protocol"
        }
        return "servo \(servoID) \(instruction): \(what)"
    }
}
