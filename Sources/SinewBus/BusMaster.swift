/// Which wire protocol a bus speaks.
public enum BusProtocol: String, Sendable, Equatable, CaseIterable {
    /// ROBOTIS Dynamixel Protocol 2.0.
    case dynamixel
    /// Feetech STS/SMS (little-endian registers), e.g. STS3215.
    case feetechSTS = "feetech"
    /// Feetech SCS (big-endian registers).
    case feetechSCS = "feetech-scs"

    /// Register byte order.
    public var byteOrder: ByteOrder { self == .feetechSCS ? .bigEndian : .littleEndian }
}

/// Timing and retry policy of a bus master.
public struct BusTiming: Sendable, Equatable {
    /// The servos' Return Delay Time in µs (register value × 2). Dynamixel and STS default to 500 µs;
    /// set it to what the servos are configured with (0 for a tuned bus).
    public var returnDelayMicroseconds: Int
    /// Added once per transaction on top of the wire time: USB adapter latency (1 ms frames, FTDI timer),
    /// scheduling. Not the vendors' flat 34–50 ms.
    public var marginNanoseconds: UInt64
    /// Added per reply for the servo firmware's own processing.
    public var perReplyNanoseconds: UInt64
    /// Extra attempts after a retryable failure (lost or damaged bytes). 0 = no retry.
    public var retries: Int
    /// Whether servos answer WRITE/REG_WRITE/ACTION/REBOOT (Dynamixel Status Return Level 2, Feetech
    /// Response Status Level 1 — both the factory default).
    public var repliesToWrites: Bool
    /// Busy polling while replies are awaited: 0 (the default) sleeps in the kernel until bytes arrive;
    /// otherwise the master sleeps until this long before the replies are due (wire time of the bytes +
    /// return delays, from the request), polls without sleeping until this long after the per-reply
    /// allowance on top, then sleeps again. It saves the thread wake-up on the last reply (tens of µs on
    /// a virtual machine, more than the wire time of a short reply on a pty) at the price of a busy core
    /// over that stretch: for a loop on an isolated core, or a benchmark. A value longer than the wire
    /// time polls from the request on.
    public var busyPollNanoseconds: UInt64

    public init(
        returnDelayMicroseconds: Int = 500, marginNanoseconds: UInt64 = 3_000_000, perReplyNanoseconds: UInt64 = 50_000,
        retries: Int = 1, repliesToWrites: Bool = true, busyPollNanoseconds: UInt64 = 0
    ) {
        self.returnDelayMicroseconds = returnDelayMicroseconds
        self.marginNanoseconds = marginNanoseconds
        self.perReplyNanoseconds = perReplyNanoseconds
        self.retries = retries
        self.repliesToWrites = repliesToWrites
        self.busyPollNanoseconds = busyPollNanoseconds
    }
}

/// What a PING found.
public struct PingReply: Sendable, Equatable {
    public var id: ServoID
    /// Model number (Dynamixel: from the ping reply; Feetech: read from address 3).
    public var modelNumber: UInt16
    /// Firmware version (Dynamixel: from the ping reply; Feetech: major version at address 0), when known.
    public var firmwareVersion: UInt8?

    public init(id: ServoID, modelNumber: UInt16, firmwareVersion: UInt8?) {
        self.id = id
        self.modelNumber = modelNumber
        self.firmwareVersion = firmwareVersion
    }
}

/// Speaks one protocol to the servos on one transport: builds requests, sends them, collects the replies
/// before a deadline computed from the bytes on the wire, retries a bounded number of times, and keeps
/// per-servo statistics. Preallocates everything at init: the sync read/write cycle allocates nothing.
/// Not thread-safe: one control thread owns a bus master.
public final class BusMaster {
    public let transport: any ByteTransport
    /// The transport when it runs in simulated time: the master's clock is then the simulation's.
    private let simulatedTime: (any SimulatedTimeTransport)?
    public let busProtocol: BusProtocol
    // One control thread owns a bus master: the dynamic exclusivity checks on these would cost a
    // quarter of the 6-servo cycle.
    @exclusivity(unchecked) public var timing: BusTiming

    // Request bytes.
    private let request: UnsafeMutableRawBufferPointer
    private let dynamixelDecoder: DynamixelStreamDecoder
    private let feetechDecoder: FeetechStreamDecoder
    // The servos a transaction waits for: their IDs, where their data goes, how long it is, and whether
    // they have answered.
    private let slotIDs: UnsafeMutableBufferPointer<ServoID>
    private let slotOffsets: UnsafeMutableBufferPointer<Int>
    private let slotLengths: UnsafeMutableBufferPointer<Int>
    private let slotDone: UnsafeMutableBufferPointer<Bool>
    @exclusivity(unchecked) private var slotCount = 0
    // Garbage bytes skipped during the current attempt (decoder counters are reset per accepted reply).
    @exclusivity(unchecked) private var attemptDiscarded = 0
    @exclusivity(unchecked) private var attemptDeadline = MonotonicInstant(nanoseconds: 0)
    /// Whether the last exchange failed, left bytes behind, or none happened yet: the next one flushes the
    /// line (tcflush and drain) first. After a clean exchange the line is left alone, which saves the
    /// flush's system calls (about 10 µs on a pty, half a cycle at full speed): a stray byte that comes
    /// in later is still seen by the next exchange's decoder, which skips it as garbage or reports it.
    @exclusivity(unchecked) private var lineNeedsFlush = true
    // When the last bytes arrived: the latency of the replies decoded from them.
    @exclusivity(unchecked) private var lastArrival = MonotonicInstant(nanoseconds: 0)
    private let stats: UnsafeMutableBufferPointer<ServoStatistics>
    /// Set when the transport reported the port gone (see ``isDisconnected``).
    @exclusivity(unchecked) private var disconnectionErrno: Int32 = -1
    // Scratch for small reads (ping model numbers).
    private let scratch: UnsafeMutableRawBufferPointer

    /// `maximumPacketBytes` bounds one request or reply.
    public init(
        transport: any ByteTransport, protocol busProtocol: BusProtocol, timing: BusTiming = BusTiming(),
        maximumPacketBytes: Int = 4096
    ) {
        self.transport = transport
        simulatedTime = transport as? any SimulatedTimeTransport
        self.busProtocol = busProtocol
        self.timing = timing
        request = .allocate(byteCount: maximumPacketBytes, alignment: 8)
        dynamixelDecoder = DynamixelStreamDecoder(capacity: maximumPacketBytes)
        feetechDecoder = FeetechStreamDecoder(capacity: Swift.min(maximumPacketBytes, 1024))
        slotIDs = .allocate(capacity: 256)
        slotIDs.initialize(repeating: 0)
        slotOffsets = .allocate(capacity: 256)
        slotOffsets.initialize(repeating: 0)
        slotLengths = .allocate(capacity: 256)
        slotLengths.initialize(repeating: 0)
        slotDone = .allocate(capacity: 256)
        slotDone.initialize(repeating: false)
        stats = .allocate(capacity: 256)
        stats.initialize(repeating: ServoStatistics())
        scratch = .allocate(byteCount: 256, alignment: 8)
    }

    deinit {
        request.deallocate()
        slotIDs.deallocate()
        slotOffsets.deallocate()
        slotLengths.deallocate()
        slotDone.deallocate()
        stats.deallocate()
        scratch.deallocate()
    }

    /// Whether the transport reported the port gone for good (a hang-up, EIO, ENXIO or ENODEV): from then
    /// on every transaction fails at once with ``BusError/Cause/disconnected(errno:)`` and no system call,
    /// so a loop on a dead port fails fast each tick instead of spinning on the descriptor. Reopen the port
    /// with a new transport and bus master to talk again.
    public var isDisconnected: Bool { disconnectionErrno >= 0 }

    /// The `errno` of the disconnection (0 for a hang-up without one), or nil while connected.
    public var disconnectedErrno: Int32? { disconnectionErrno >= 0 ? disconnectionErrno : nil }

    /// After a multi-servo read (``syncRead(ids:address:length:into:)``, ``fastSyncRead(ids:address:length:into:)``,
    /// ``bulkRead(entries:into:)``), also one that threw: whether the reply of the servo at `index` in the
    /// request arrived in the last attempt, so that its part of the data buffer holds this transaction's
    /// bytes. False for the servos still missing when it failed, and for every servo when it failed before
    /// sending (a dead port, bad arguments). Allocation-free.
    public func replyArrived(at index: Int) -> Bool { index >= 0 && index < slotCount && slotDone[index] }

    // MARK: Statistics

    /// A copy of one servo's statistics.
    public func statistics(for id: ServoID) -> ServoStatistics { stats[Int(id)] }

    /// Zeroes every servo's statistics.
    public func resetStatistics() {
        for i in 0..<stats.count { stats[i] = ServoStatistics() }
    }

    // MARK: Transactions

    /// PING one servo; returns its model number (and firmware version where the protocol says it).
    public func ping(_ id: ServoID) throws(BusError) -> PingReply {
        switch busProtocol {
        case .dynamixel:
            let n = try encode(id, .ping) { (out) throws(CodecError) in try Dynamixel.encodePing(id: id, into: out) }
            setSlots(id: id, length: 3)
            try transact(requestBytes: n, instruction: .ping, into: scratch)
            return PingReply(
                id: id, modelNumber: UnsafeRawBufferPointer(scratch).loadUInt16(at: 0), firmwareVersion: scratch[2])
        case .feetechSTS, .feetechSCS:
            let n = try encode(id, .ping) { (out) throws(CodecError) in try Feetech.encodePing(id: id, into: out) }
            setSlots(id: id, length: 0)
            try transact(requestBytes: n, instruction: .ping, into: scratch)
            let model = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<2])
            try read(id: id, address: 3, into: model)
            let modelNumber = UnsafeRawBufferPointer(model).loadUInt16(at: 0, busProtocol.byteOrder)
            let firmware = UnsafeMutableRawBufferPointer(rebasing: scratch[2..<3])
            let version: UInt8? = (try? read(id: id, address: 0, into: firmware)) != nil ? firmware[0] : nil
            return PingReply(id: id, modelNumber: modelNumber, firmwareVersion: version)
        }
    }

    /// READ `data.count` bytes from register `address` of servo `id` into `data`.
    public func read(id: ServoID, address: UInt16, into data: UnsafeMutableRawBufferPointer) throws(BusError) {
        let n: Int
        switch busProtocol {
        case .dynamixel:
            n = try encode(id, .read) { (out) throws(CodecError) in
                try Dynamixel.encodeRead(
                    id: id, address: address, length: UInt16(truncatingIfNeeded: data.count), into: out)
            }
        case .feetechSTS, .feetechSCS:
            guard address <= 0xFF, data.count <= 0xFF else {
                throw BusError(servoID: id, instruction: .read, cause: .encoding(.invalidArgument))
            }
            n = try encode(id, .read) { (out) throws(CodecError) in
                try Feetech.encodeRead(id: id, address: UInt8(address), length: UInt8(data.count), into: out)
            }
        }
        setSlots(id: id, length: data.count)
        try transact(requestBytes: n, instruction: .read, into: data)
    }

    /// Convenience READ that returns a new array (allocates; not for the control tick).
    public func read(id: ServoID, address: UInt16, length: Int) throws(BusError) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: length)
        var failure: BusError?
        result.withUnsafeMutableBytes { buffer in
            do throws(BusError) { try read(id: id, address: address, into: buffer) } catch { failure = error }
        }
        if let failure { throw failure }
        return result
    }

    /// WRITE (or REG_WRITE) `data` to register `address` of servo `id`; waits for the status reply unless
    /// `id` is broadcast or ``BusTiming/repliesToWrites`` is off.
    public func write(
        id: ServoID, address: UInt16, data: UnsafeRawBufferPointer, instruction: Instruction = .write
    ) throws(BusError) {
        let n: Int
        switch busProtocol {
        case .dynamixel:
            n = try encode(id, instruction) { (out) throws(CodecError) in
                try Dynamixel.encodeWrite(id: id, address: address, data: data, instruction: instruction, into: out)
            }
        case .feetechSTS, .feetechSCS:
            guard address <= 0xFF else {
                throw BusError(servoID: id, instruction: instruction, cause: .encoding(.invalidArgument))
            }
            n = try encode(id, instruction) { (out) throws(CodecError) in
                try Feetech.encodeWrite(
                    id: id, address: UInt8(address), data: data, instruction: instruction, into: out)
            }
        }
        try sendCommand(id: id, instruction: instruction, requestBytes: n)
    }

    /// ACTION: runs the writes registered with REG_WRITE (to broadcast by default).
    public func action(id: ServoID = ServoID.broadcast) throws(BusError) {
        let n: Int
        switch busProtocol {
        case .dynamixel:
            n = try encode(id, .action) { (out) throws(CodecError) in try Dynamixel.encodeAction(id: id, into: out) }
        case .feetechSTS, .feetechSCS:
            n = try encode(id, .action) { (out) throws(CodecError) in try Feetech.encodeAction(id: id, into: out) }
        }
        try sendCommand(id: id, instruction: .action, requestBytes: n)
    }

    /// REBOOT (Dynamixel): clears a hardware error.
    public func reboot(id: ServoID) throws(BusError) {
        guard busProtocol == .dynamixel else { throw BusError(servoID: id, instruction: .reboot, cause: .unsupported) }
        let n = try encode(id, .reboot) { (out) throws(CodecError) in try Dynamixel.encodeReboot(id: id, into: out) }
        try sendCommand(id: id, instruction: .reboot, requestBytes: n)
    }

    /// FACTORY_RESET (Dynamixel): `option` 0xFF all, 0x01 all but ID, 0x02 all but ID and baud rate.
    public func factoryReset(id: ServoID, option: UInt8 = 0x02) throws(BusError) {
        guard busProtocol == .dynamixel else {
            throw BusError(servoID: id, instruction: .factoryReset, cause: .unsupported)
        }
        let n = try encode(id, .factoryReset) { (out) throws(CodecError) in
            try Dynamixel.encodeFactoryReset(id: id, option: option, into: out)
        }
        try sendCommand(id: id, instruction: .factoryReset, requestBytes: n)
    }

    /// SYNC_READ `length` bytes at `address` from every servo in `ids`; servo `ids[i]`'s bytes land in
    /// `data[i*length ..< (i+1)*length]`. A status or hardware error is thrown after all data arrived.
    public func syncRead(
        ids: UnsafeBufferPointer<ServoID>, address: UInt16, length: Int, into data: UnsafeMutableRawBufferPointer
    ) throws(BusError) {
        let n = try encodeSyncRead(ids: ids, address: address, length: length, into: data)
        try transact(requestBytes: n, instruction: .syncRead, into: data)
    }

    /// The same SYNC_READ begun without waiting for it: the request goes out now and the call returns. Advance
    /// it with ``continueTransaction(readinessSeen:)`` as bytes arrive (several buses at once:
    /// ``ConcurrentBusTransactions``) or wait for it with ``finishTransaction()``; then ``transactionError``
    /// and ``replyArrived(at:)`` say how it went (an argument error finishes it at once). Deadlines, retries
    /// and statistics are those of ``syncRead(ids:address:length:into:)``. `ids` and `data` must stay valid
    /// until it has finished. Allocation-free.
    public func beginSyncRead(
        ids: UnsafeBufferPointer<ServoID>, address: UInt16, length: Int, into data: UnsafeMutableRawBufferPointer
    ) {
        do throws(BusError) {
            let n = try encodeSyncRead(ids: ids, address: address, length: length, into: data)
            begin(requestBytes: n, instruction: .syncRead, into: data, fast: false)
        } catch {
            refuse(error)
        }
    }

    /// Encodes a SYNC_READ request and sets up its slots; returns the request's length.
    private func encodeSyncRead(
        ids: UnsafeBufferPointer<ServoID>, address: UInt16, length: Int, into data: UnsafeMutableRawBufferPointer
    ) throws(BusError) -> Int {
        slotCount = 0
        guard data.count >= ids.count * length, ids.count <= 253 else {
            throw BusError(servoID: ServoID.broadcast, instruction: .syncRead, cause: .encoding(.invalidArgument))
        }
        let n: Int
        switch busProtocol {
        case .dynamixel:
            n = try encode(ServoID.broadcast, .syncRead) { (out) throws(CodecError) in
                try Dynamixel.encodeSyncRead(
                    address: address, length: UInt16(truncatingIfNeeded: length), ids: ids, into: out)
            }
        case .feetechSTS, .feetechSCS:
            guard address <= 0xFF, length <= 0xFF else {
                throw BusError(servoID: ServoID.broadcast, instruction: .syncRead, cause: .encoding(.invalidArgument))
            }
            n = try encode(ServoID.broadcast, .syncRead) { (out) throws(CodecError) in
                try Feetech.encodeSyncRead(address: UInt8(address), length: UInt8(length), ids: ids, into: out)
            }
        }
        for i in 0..<ids.count {
            slotIDs[i] = ids[i]
            slotOffsets[i] = i * length
            slotLengths[i] = length
        }
        slotCount = ids.count
        return n
    }

    /// FAST_SYNC_READ (Dynamixel X-series with recent firmware): like ``syncRead(ids:address:length:into:)``
    /// but the servos answer together in one packet, saving 7 bytes and one return delay per servo.
    public func fastSyncRead(
        ids: UnsafeBufferPointer<ServoID>, address: UInt16, length: Int, into data: UnsafeMutableRawBufferPointer
    ) throws(BusError) {
        slotCount = 0
        guard busProtocol == .dynamixel else {
            throw BusError(servoID: ServoID.broadcast, instruction: .fastSyncRead, cause: .unsupported)
        }
        guard data.count >= ids.count * length, ids.count <= 253 else {
            throw BusError(servoID: ServoID.broadcast, instruction: .fastSyncRead, cause: .encoding(.invalidArgument))
        }
        let n = try encode(ServoID.broadcast, .fastSyncRead) { (out) throws(CodecError) in
            try Dynamixel.encodeSyncRead(
                address: address, length: UInt16(truncatingIfNeeded: length), ids: ids, instruction: .fastSyncRead,
                into: out)
        }
        for i in 0..<ids.count {
            slotIDs[i] = ids[i]
            slotOffsets[i] = i * length
            slotLengths[i] = length
        }
        slotCount = ids.count
        try transact(requestBytes: n, instruction: .fastSyncRead, into: data, fast: true)
    }

    /// SYNC_WRITE `length` bytes at `address`: servo `ids[i]` gets `data[i*length ..< (i+1)*length]`
    /// (register byte order of the protocol). No reply; returns once the bytes are handed to the transport.
    public func syncWrite(
        ids: UnsafeBufferPointer<ServoID>, address: UInt16, length: Int, data: UnsafeRawBufferPointer
    ) throws(BusError) {
        let n: Int
        switch busProtocol {
        case .dynamixel:
            n = try encode(ServoID.broadcast, .syncWrite) { (out) throws(CodecError) in
                try Dynamixel.encodeSyncWrite(
                    address: address, length: UInt16(truncatingIfNeeded: length), ids: ids, data: data, into: out)
            }
        case .feetechSTS, .feetechSCS:
            guard address <= 0xFF, length <= 0xFF else {
                throw BusError(servoID: ServoID.broadcast, instruction: .syncWrite, cause: .encoding(.invalidArgument))
            }
            n = try encode(ServoID.broadcast, .syncWrite) { (out) throws(CodecError) in
                try Feetech.encodeSyncWrite(
                    address: UInt8(address), length: UInt8(length), ids: ids, data: data, into: out)
            }
        }
        for id in ids { stats[Int(id)].transactions &+= 1 }
        try sendCommand(id: ServoID.broadcast, instruction: .syncWrite, requestBytes: n)
    }

    /// BULK_READ (Dynamixel): each entry reads its own address/length; entry i's bytes land back to back
    /// in `data` in entry order.
    public func bulkRead(entries: UnsafeBufferPointer<BulkEntry>, into data: UnsafeMutableRawBufferPointer)
        throws(BusError)
    {
        slotCount = 0
        guard busProtocol == .dynamixel else {
            throw BusError(servoID: ServoID.broadcast, instruction: .bulkRead, cause: .unsupported)
        }
        guard entries.count <= 253 else {
            throw BusError(servoID: ServoID.broadcast, instruction: .bulkRead, cause: .encoding(.invalidArgument))
        }
        var offset = 0
        for i in 0..<entries.count {
            slotIDs[i] = entries[i].id
            slotOffsets[i] = offset
            slotLengths[i] = Int(entries[i].length)
            offset += Int(entries[i].length)
        }
        guard data.count >= offset else {
            throw BusError(servoID: ServoID.broadcast, instruction: .bulkRead, cause: .encoding(.invalidArgument))
        }
        let n = try encode(ServoID.broadcast, .bulkRead) { (out) throws(CodecError) in
            try Dynamixel.encodeBulkRead(entries: entries, into: out)
        }
        slotCount = entries.count
        try transact(requestBytes: n, instruction: .bulkRead, into: data)
    }

    /// BULK_WRITE (Dynamixel): `data` holds each entry's bytes back to back. No reply.
    public func bulkWrite(entries: UnsafeBufferPointer<BulkEntry>, data: UnsafeRawBufferPointer) throws(BusError) {
        guard busProtocol == .dynamixel else {
            throw BusError(servoID: ServoID.broadcast, instruction: .bulkWrite, cause: .unsupported)
        }
        let n = try encode(ServoID.broadcast, .bulkWrite) { (out) throws(CodecError) in
            try Dynamixel.encodeBulkWrite(entries: entries, data: data, into: out)
        }
        for e in entries { stats[Int(e.id)].transactions &+= 1 }
        try sendCommand(id: ServoID.broadcast, instruction: .bulkWrite, requestBytes: n)
    }

    /// The deadline budget in nanoseconds for a request of `requestBytes` followed by `replies` replies
    /// totalling `replyBytes`: wire time at the transport's rate + return delay per reply + firmware time
    /// per reply + the margin.
    public func budgetNanoseconds(requestBytes: Int, replyBytes: Int, replies: Int) -> UInt64 {
        wireTimeNanoseconds(byteCount: requestBytes + replyBytes, baudRate: transport.baudRate)
            + UInt64(replies)
            * (UInt64(Swift.max(timing.returnDelayMicroseconds, 0)) * 1000 + timing.perReplyNanoseconds)
            + timing.marginNanoseconds
    }

    // MARK: Internals

    @inline(__always)
    private func encode(
        _ id: ServoID, _ instruction: Instruction, _ body: (UnsafeMutableRawBufferPointer) throws(CodecError) -> Int
    ) throws(BusError) -> Int {
        do {
            return try body(request)
        } catch {
            throw BusError(servoID: id, instruction: instruction, cause: .encoding(error))
        }
    }

    @inline(__always)
    private func setSlots(id: ServoID, length: Int) {
        slotIDs[0] = id
        slotOffsets[0] = 0
        slotLengths[0] = length
        slotCount = 1
    }

    /// Sends a request that is answered by a status without data, or not at all (broadcast, no-reply
    /// configuration, sync/bulk writes).
    private func sendCommand(id: ServoID, instruction: Instruction, requestBytes: Int) throws(BusError) {
        let expectsReply =
            id != ServoID.broadcast && timing.repliesToWrites && instruction != .syncWrite && instruction != .bulkWrite
        if expectsReply {
            setSlots(id: id, length: 0)
            try transact(requestBytes: requestBytes, instruction: instruction, into: scratch)
            return
        }
        if id != ServoID.broadcast { stats[Int(id)].transactions &+= 1 }
        if disconnectionErrno >= 0 {
            throw BusError(servoID: id, instruction: instruction, cause: .disconnected(errno: disconnectionErrno))
        }
        let start = now()
        let deadline = start.advanced(
            byNanoseconds: budgetNanoseconds(requestBytes: requestBytes, replyBytes: 0, replies: 0))
        do {
            try transport.write(UnsafeRawBufferPointer(rebasing: request[0..<requestBytes]), deadline: deadline)
        } catch {
            lineNeedsFlush = true
            throw failure(error, servoID: id, instruction: instruction)
        }
    }

    /// A transport failure as a bus error; a disconnection is latched (``isDisconnected``).
    private func failure(_ error: TransportError, servoID: ServoID, instruction: Instruction) -> BusError {
        switch error {
        case .disconnected(let e):
            disconnectionErrno = e
            return BusError(servoID: servoID, instruction: instruction, cause: .disconnected(errno: e))
        case .closed:
            disconnectionErrno = 0
            return BusError(servoID: servoID, instruction: instruction, cause: .disconnected(errno: 0))
        default:
            return BusError(servoID: servoID, instruction: instruction, cause: .transport(error))
        }
    }

    /// Sends the encoded request and collects one reply per slot (or one combined FAST_SYNC_READ reply),
    /// retrying retryable failures up to ``BusTiming/retries`` times.
    private func transact(
        requestBytes: Int, instruction: Instruction, into data: UnsafeMutableRawBufferPointer, fast: Bool = false
    ) throws(BusError) {
        begin(requestBytes: requestBytes, instruction: instruction, into: data, fast: fast)
        if let error = finishTransaction() { throw error }
    }

    // MARK: The transaction in progress
    //
    // A transaction is a small state machine, so that a thread can have transactions on several buses in
    // flight at once (``beginSyncRead(ids:address:length:into:)``, ``ConcurrentBusTransactions``): `awaiting`
    // the replies of an attempt until its deadline, `quieting` the line before a retry, then `finished` with a
    // result. The blocking transactions run the same machine, sleeping in the transport between steps.

    private enum Phase: UInt8 {
        case idle, awaiting, quieting, finished
    }

    @exclusivity(unchecked) private var phase = Phase.idle
    @exclusivity(unchecked) private var transactionInstruction = Instruction.ping
    @exclusivity(unchecked) private var transactionRequestBytes = 0
    @exclusivity(unchecked) private var transactionFast = false
    @exclusivity(unchecked) private var transactionData = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    @exclusivity(unchecked) private var transactionAttempt = 0
    @exclusivity(unchecked) private var transactionResult: BusError?
    // The attempt in flight: when its request went out, its busy-polling window, the replies it still awaits
    // and the first status or hardware error among those that came (thrown once all are in).
    @exclusivity(unchecked) private var attemptStart = MonotonicInstant(nanoseconds: 0)
    @exclusivity(unchecked) private var spinFrom = MonotonicInstant(nanoseconds: 0)
    @exclusivity(unchecked) private var spinUntil = MonotonicInstant(nanoseconds: 0)
    @exclusivity(unchecked) private var remainingReplies = 0
    @exclusivity(unchecked) private var deferredError: BusError?
    /// Before a retry: the line counts as quiet once no byte has come until this instant.
    @exclusivity(unchecked) private var quietUntil = MonotonicInstant(nanoseconds: 0)

    /// Whether the transaction begun last has finished (also true when none was begun).
    public var isTransactionFinished: Bool { phase == .idle || phase == .finished }

    /// The result of the finished transaction: nil when every reply arrived intact, else what went wrong
    /// (after the retries).
    public var transactionError: BusError? { transactionResult }

    /// When the transaction in progress must be advanced even if no byte arrives (the attempt's deadline, or
    /// the end of the quiet line before a retry), CLOCK_MONOTONIC ns; `UInt64.max` when it has finished.
    public var transactionWakeNs: UInt64 {
        switch phase {
        case .awaiting: return attemptDeadline.nanoseconds
        case .quieting: return Swift.min(quietUntil, attemptDeadline).nanoseconds
        case .idle, .finished: return .max
        }
    }

    /// The stretch of the attempt in progress over which its replies are awaited by polling instead of
    /// sleeping (``BusTiming/busyPollNanoseconds``); from == until when there is none.
    public var transactionSpinWindow: (fromNs: UInt64, untilNs: UInt64) {
        phase == .awaiting ? (spinFrom.nanoseconds, spinUntil.nanoseconds) : (0, 0)
    }

    /// Advances the transaction in progress with the bytes that have arrived, without waiting: decodes the
    /// replies, notices a passed deadline, quiets the line and retries. `readinessSeen`: the transport's
    /// ``ByteTransport/readinessDescriptor`` polled ready just before (a read that then finds nothing is a
    /// hang-up on a terminal). Returns true once the transaction has finished (``transactionError``).
    /// Allocation-free.
    @discardableResult
    public func continueTransaction(readinessSeen: Bool = false) -> Bool {
        advance(mayWait: false, readinessSeen: readinessSeen)
    }

    /// Waits in the transport until the transaction in progress has finished (every reply, or the last
    /// attempt's deadline) and returns its result: nil when every reply arrived intact.
    @discardableResult
    public func finishTransaction() -> BusError? {
        advance(mayWait: true, readinessSeen: false)
        return transactionResult
    }

    private func begin(
        requestBytes: Int, instruction: Instruction, into data: UnsafeMutableRawBufferPointer, fast: Bool
    ) {
        for i in 0..<slotCount { stats[Int(slotIDs[i])].transactions &+= 1 }
        transactionInstruction = instruction
        transactionRequestBytes = requestBytes
        transactionData = data
        transactionFast = fast
        transactionAttempt = 0
        transactionResult = nil
        if disconnectionErrno >= 0 {
            for i in 0..<slotCount { slotDone[i] = false }
            finish(
                BusError(
                    servoID: slotCount > 0 ? slotIDs[0] : ServoID.broadcast, instruction: instruction,
                    cause: .disconnected(errno: disconnectionErrno)))
            return
        }
        startAttempt()
    }

    /// A transaction that failed before anything was sent (bad arguments): finished, nothing counted.
    private func refuse(_ error: BusError) {
        slotCount = 0
        finish(error)
    }

    private func finish(_ error: BusError?) {
        transactionResult = error
        phase = .finished
    }

    private func startAttempt() {
        do {
            try sendAttempt()
        } catch {
            failed(error)
        }
    }

    /// A failed attempt: counted, then retried after the line has gone quiet, or the transaction's result.
    private func failed(_ error: BusError) {
        count(error)
        if !error.isRetryable || transactionAttempt >= timing.retries {
            finish(error)
            return
        }
        transactionAttempt += 1
        stats[Int(error.servoID)].retries &+= 1
        // Servos may still be answering the failed request: on a half-duplex wire a new request now would
        // collide with them, so let the line go quiet first (bounded by that attempt's deadline): no byte
        // for 32 byte times (at least 200 µs).
        phase = .quieting
        quietUntil = Swift.min(now().advanced(byNanoseconds: quietNanoseconds), attemptDeadline)
    }

    /// The master's clock: CLOCK_MONOTONIC, or the simulation's for a transport in simulated time.
    @inline(__always)
    private func now() -> MonotonicInstant {
        if let simulatedTime { return MonotonicInstant(nanoseconds: simulatedTime.simulatedNowNs) }
        return .now()
    }

    private var quietNanoseconds: UInt64 {
        Swift.max(wireTimeNanoseconds(byteCount: 32, baudRate: transport.baudRate), 200_000)
    }

    /// One step of the machine after another until it finishes or, without `mayWait`, needs bytes that have
    /// not come yet. With `mayWait` it sleeps in the transport until bytes come or the current deadline.
    @discardableResult
    private func advance(mayWait: Bool, readinessSeen: Bool) -> Bool {
        // A descriptor that polled ready must give bytes on the first read, or its port is gone.
        var ready = readinessSeen
        while true {
            switch phase {
            case .idle, .finished:
                return true
            case .awaiting:
                // Failures go to `failed` without a Swift `throw` where they are routine (a deadline, a dead
                // port): a throw is cheap, but a test harness's hook on every throw is not.
                let complete: Bool
                do throws(BusError) {
                    complete = try decodeReplies()
                } catch {
                    failed(error)
                    continue
                }
                if complete {
                    completeAttempt()
                    continue
                }
                // Need bytes. Checking the clock here (not only in read) also bounds a flood of bytes that never
                // forms the awaited replies; the arrival time of the last bytes is recent enough.
                if lastArrival > attemptDeadline {
                    failed(deadlineError())
                    continue
                }
                let buffer =
                    busProtocol == .dynamixel
                    ? dynamixelDecoder.writableBuffer(minimum: 64) : feetechDecoder.writableBuffer(minimum: 64)
                var n = 0
                var transportError: TransportError?
                do {
                    if mayWait && simulatedTime != nil {
                        // Nothing to spin for: what will come is there now (and simulated time would not move on).
                        n = try transport.read(into: buffer, deadline: attemptDeadline)
                    } else if mayWait {
                        n = try transport.read(
                            into: buffer, spinFrom: spinFrom, spinUntil: spinUntil, deadline: attemptDeadline)
                    } else {
                        n = try transport.readAvailable(into: buffer)
                        if n == 0 && ready { try transport.readinessWithoutData() }
                    }
                } catch {
                    transportError = error
                }
                if let transportError {
                    failed(failure(transportError, servoID: firstPending(), instruction: transactionInstruction))
                    continue
                }
                ready = false
                if n == 0 {
                    if mayWait || now() >= attemptDeadline {
                        failed(deadlineError())
                        continue
                    }
                    return false
                }
                // One clock read per arrival serves both the replies' latency and the next deadline check.
                lastArrival = now()
                if busProtocol == .dynamixel { dynamixelDecoder.commit(n) } else { feetechDecoder.commit(n) }
            case .quieting:
                let quietNow = now()
                if quietNow >= attemptDeadline {
                    startAttempt()
                    continue
                }
                let n: Int
                do {
                    if mayWait {
                        n = try transport.read(into: scratch, deadline: Swift.min(quietUntil, attemptDeadline))
                    } else {
                        n = try transport.readAvailable(into: scratch)
                        if n == 0 && ready { try transport.readinessWithoutData() }
                    }
                } catch {
                    // A dead port is latched here so the retry fails at once; any other failure shows again in
                    // the retry itself.
                    _ = failure(error, servoID: ServoID.broadcast, instruction: .read)
                    startAttempt()
                    continue
                }
                ready = false
                if n > 0 {
                    quietUntil = Swift.min(now().advanced(byNanoseconds: quietNanoseconds), attemptDeadline)
                    continue
                }
                if mayWait || quietNow >= quietUntil {
                    startAttempt()
                    continue
                }
                return false
            }
        }
    }

    private func count(_ error: BusError) {
        let i = Int(error.servoID)
        switch error.cause {
        case .timeout: stats[i].timeouts &+= 1
        case .truncatedPacket: stats[i].truncatedPackets &+= 1
        case .corruptChecksum: stats[i].checksumErrors &+= 1
        case .foreignPacket: stats[i].foreignPackets &+= 1
        case .garbage: stats[i].garbageErrors &+= 1
        case .statusError: stats[i].statusErrors &+= 1
        case .hardwareError: stats[i].hardwareErrors &+= 1
        default: break
        }
    }

    /// Sends the request of a new attempt and sets up what it awaits.
    private func sendAttempt() throws(BusError) {
        let dynamixel = busProtocol == .dynamixel
        let fast = transactionFast
        let instruction = transactionInstruction
        let requestBytes = transactionRequestBytes
        var replyBytes = 0
        var longestReply = 0
        for i in 0..<slotCount {
            slotDone[i] = false
            let bytes = dynamixel ? Dynamixel.statusOverhead + slotLengths[i] : Feetech.overhead + slotLengths[i]
            replyBytes += bytes
            longestReply = Swift.max(longestReply, bytes)
        }
        if fast {
            replyBytes = Dynamixel.fastSyncReplyLength(servoCount: slotCount, length: slotLengths[0])
            longestReply = replyBytes
        }
        let replies = fast ? 1 : slotCount
        let firstID = slotIDs[0]
        // A reply that cannot fit the decoder would only ever look truncated.
        let capacity = dynamixel ? dynamixelDecoder.capacity : feetechDecoder.capacity
        if longestReply > capacity || (!dynamixel && longestReply > 4 + 255) {
            throw BusError(servoID: firstID, instruction: instruction, cause: .encoding(.packetTooLong))
        }
        do {
            if lineNeedsFlush { try transport.flushInput() }
        } catch {
            throw failure(error, servoID: firstID, instruction: instruction)
        }
        // Cleared once the replies are in (below); a throw on the way leaves it set.
        lineNeedsFlush = true
        if dynamixel {
            dynamixelDecoder.reset()
            dynamixelDecoder.resetStatistics()
            // Stuffing can add one byte per three.
            dynamixelDecoder.maximumPacketLength = longestReply + longestReply / 3 + 1
        } else {
            feetechDecoder.reset()
            feetechDecoder.resetStatistics()
            feetechDecoder.maximumPacketLength = longestReply
        }
        let start = now()
        let budget = budgetNanoseconds(requestBytes: requestBytes, replyBytes: replyBytes, replies: replies)
        let deadline = start.advanced(byNanoseconds: budget)
        // Busy polling covers the stretch around the replies' arrival: from `busyPoll` before the wire
        // and return delays would bring them to `busyPoll` after the firmware allowance too.
        spinFrom = start
        spinUntil = start
        if timing.busyPollNanoseconds > 0 {
            let perReply = UInt64(replies) * timing.perReplyNanoseconds
            let due = budget - timing.marginNanoseconds - perReply
            spinFrom = start.advanced(
                byNanoseconds: due > timing.busyPollNanoseconds ? due - timing.busyPollNanoseconds : 0)
            spinUntil = start.advanced(byNanoseconds: due + perReply + timing.busyPollNanoseconds)
        }
        attemptStart = start
        attemptDeadline = deadline
        lastArrival = start
        remainingReplies = slotCount
        deferredError = nil
        attemptDiscarded = 0
        phase = .awaiting
        do {
            try transport.write(UnsafeRawBufferPointer(rebasing: request[0..<requestBytes]), deadline: deadline)
        } catch {
            throw failure(error, servoID: firstID, instruction: instruction)
        }
    }

    /// Why the awaited replies did not come in time.
    private func deadlineError() -> BusError {
        BusError(
            servoID: firstPending(), instruction: transactionInstruction,
            cause: deadlineCause(dynamixel: busProtocol == .dynamixel))
    }

    /// Every reply of the attempt came; bytes after them (a duplicate ID answering, noise) call for a flush next
    /// time. A status or hardware error among them is the attempt's failure now that all data arrived.
    private func completeAttempt() {
        lineNeedsFlush =
            (busProtocol == .dynamixel ? dynamixelDecoder.bufferedCount : feetechDecoder.bufferedCount) > 0
        if let deferred = deferredError {
            failed(deferred)
        } else {
            finish(nil)
        }
    }

    /// Decodes the replies in the decoder's buffer; returns true once every awaited reply is in.
    private func decodeReplies() throws(BusError) -> Bool {
        let dynamixel = busProtocol == .dynamixel
        let instruction = transactionInstruction
        let data = transactionData
        let start = attemptStart
        while remainingReplies > 0 {
            if dynamixel {
                switch dynamixelDecoder.next() {
                case .frame(let frame):
                    // Our own request echoed by a half-duplex adapter, or another master's: not a reply.
                    if !frame.isStatus { continue }
                    if transactionFast {
                        try acceptFastSyncReply(
                            frame, instruction: instruction, into: data, start: start, deferred: &deferredError)
                        remainingReplies = 0
                        continue
                    }
                    let slot = try pendingSlot(for: frame.id, instruction: instruction)
                    let error = frame.statusError
                    try accept(
                        slot: slot, parameters: frame.parameters, instruction: instruction, into: data, start: start)
                    if error != 0 && deferredError == nil {
                        deferredError = BusError(
                            servoID: frame.id, instruction: instruction,
                            cause: error & Dynamixel.alertBit != 0 ? .hardwareError(error) : .statusError(error))
                    }
                    remainingReplies -= 1
                case .corrupt(let id, _):
                    throw BusError(servoID: blame(id), instruction: instruction, cause: .corruptChecksum)
                case .needMoreData:
                    return false
                }
            } else {
                switch feetechDecoder.next() {
                case .frame(let frame):
                    // Feetech packets do not say whether they are requests or replies: skip our own
                    // request if a half-duplex adapter echoes it.
                    if isEcho(frame, requestBytes: transactionRequestBytes) { continue }
                    let slot = try pendingSlot(for: frame.id, instruction: instruction)
                    try accept(
                        slot: slot, parameters: frame.parameters, instruction: instruction, into: data, start: start)
                    if frame.statusError != 0 && deferredError == nil {
                        deferredError = BusError(
                            servoID: frame.id, instruction: instruction, cause: .hardwareError(frame.statusError))
                    }
                    remainingReplies -= 1
                case .corrupt(let id, _):
                    throw BusError(servoID: blame(id), instruction: instruction, cause: .corruptChecksum)
                case .needMoreData:
                    return false
                }
            }
        }
        return true
    }

    private func isEcho(_ frame: FeetechFrame, requestBytes: Int) -> Bool {
        guard requestBytes == Feetech.overhead + frame.parameters.count, request[2] == frame.id,
            request[4] == frame.code
        else { return false }
        for i in 0..<frame.parameters.count where request[5 + i] != frame.parameters[i] { return false }
        return true
    }

    /// Why nothing usable arrived by the deadline.
    private func deadlineCause(dynamixel: Bool) -> BusError.Cause {
        let partial = dynamixel ? dynamixelDecoder.hasPartialPacket : feetechDecoder.hasPartialPacket
        let buffered = dynamixel ? dynamixelDecoder.bufferedCount : feetechDecoder.bufferedCount
        let discarded = attemptDiscarded + (dynamixel ? dynamixelDecoder.discardedBytes : feetechDecoder.discardedBytes)
        if partial { return .truncatedPacket(receivedBytes: buffered) }
        if discarded + buffered > 0 { return .garbage(discardedBytes: discarded + buffered) }
        return .timeout
    }

    private func firstPending() -> ServoID {
        for i in 0..<slotCount where !slotDone[i] { return slotIDs[i] }
        return slotCount > 0 ? slotIDs[0] : ServoID.broadcast
    }

    /// The servo to blame for a damaged packet: the one it claims to be from if that one is awaited.
    private func blame(_ id: ServoID) -> ServoID {
        for i in 0..<slotCount where !slotDone[i] && slotIDs[i] == id { return id }
        return firstPending()
    }

    private func pendingSlot(for id: ServoID, instruction: Instruction) throws(BusError) -> Int {
        for i in 0..<slotCount where !slotDone[i] && slotIDs[i] == id { return i }
        throw BusError(servoID: firstPending(), instruction: instruction, cause: .foreignPacket(from: id))
    }

    private func accept(
        slot: Int, parameters: UnsafeRawBufferPointer, instruction: Instruction,
        into data: UnsafeMutableRawBufferPointer,
        start: MonotonicInstant
    ) throws(BusError) {
        let length = slotLengths[slot]
        let id = slotIDs[slot]
        guard parameters.count == length else {
            throw BusError(
                servoID: id, instruction: instruction, cause: .malformedReply(parameterCount: parameters.count))
        }
        if length > 0 {
            (data.baseAddress! + slotOffsets[slot]).copyMemory(from: parameters.baseAddress!, byteCount: length)
        }
        slotDone[slot] = true
        // Garbage that preceded a good reply is tolerated but counted; later deadline errors should only
        // see what arrived after this reply.
        attemptDiscarded += busProtocol == .dynamixel ? dynamixelDecoder.discardedBytes : feetechDecoder.discardedBytes
        if busProtocol == .dynamixel {
            stats[Int(id)].discardedBytes &+= UInt64(dynamixelDecoder.discardedBytes)
            dynamixelDecoder.resetStatistics()
        } else {
            stats[Int(id)].discardedBytes &+= UInt64(feetechDecoder.discardedBytes)
            feetechDecoder.resetStatistics()
        }
        stats[Int(id)].replies &+= 1
        stats[Int(id)].latency.record(nanoseconds: lastArrival.nanoseconds(since: start))
    }

    private func acceptFastSyncReply(
        _ frame: DynamixelFrame, instruction: Instruction, into data: UnsafeMutableRawBufferPointer,
        start: MonotonicInstant,
        deferred: inout BusError?
    ) throws(BusError) {
        guard frame.id == ServoID.broadcast else {
            throw BusError(servoID: firstPending(), instruction: instruction, cause: .foreignPacket(from: frame.id))
        }
        let length = slotLengths[0]
        var failure: BusError?
        let entries = frame.forEachFastSyncEntry(length: length) { entry in
            if failure != nil { return }
            var slot = -1
            for i in 0..<slotCount where !slotDone[i] && slotIDs[i] == entry.id {
                slot = i
                break
            }
            if slot < 0 {
                failure = BusError(
                    servoID: firstPending(), instruction: instruction, cause: .foreignPacket(from: entry.id))
                return
            }
            do throws(BusError) {
                try accept(slot: slot, parameters: entry.data, instruction: instruction, into: data, start: start)
            } catch {
                failure = error
                return
            }
            if entry.error != 0 && deferred == nil {
                deferred = BusError(
                    servoID: entry.id, instruction: instruction,
                    cause: entry.error & Dynamixel.alertBit != 0
                        ? .hardwareError(entry.error) : .statusError(entry.error))
            }
        }
        if let failure { throw failure }
        guard entries == slotCount else {
            throw BusError(
                servoID: firstPending(), instruction: instruction,
                cause: .malformedReply(parameterCount: frame.payload.count))
        }
    }
}
