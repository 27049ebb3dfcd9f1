import Foundation
import SinewBus
import SinewDrivers

/// Why a virtual bus could not be built.
public enum VirtualBusError: Error, Sendable, Equatable, CustomStringConvertible {
    case noServos
    case invalidID(UInt8)
    case duplicateID(UInt8)
    case unsupportedBaudRate(Int, model: String, supported: [Int])
    case invalidPhysicsRate(Double)
    case mixedProtocols(String, String)
    /// A fault (`silent=ID`, `overload=ID@SECONDS`, …) names a servo the bus does not serve.
    case faultForAbsentServo(UInt8, served: [UInt8])
    /// A timed fault's time is not a number of seconds from 0 to `FaultInjection.maximumFaultSeconds`.
    case invalidFaultTime(Double)

    public var description: String {
        switch self {
        case .noServos: return "a virtual bus needs at least one servo"
        case .invalidID(let id):
            return "servo ID \(id) is not a valid bus ID (Dynamixel 0…252, Feetech 0…253)"
        case .duplicateID(let id): return "servo ID \(id) is given twice"
        case .unsupportedBaudRate(let rate, let model, let supported):
            return "\(model) does not support \(rate) bit/s (supported: "
                + supported.map(String.init).joined(separator: ", ") + ")"
        case .invalidPhysicsRate(let rate): return "physics rate \(rate) Hz must be at least 1000 Hz"
        case .mixedProtocols(let a, let b): return "\(a) and \(b) speak different protocols and cannot share a bus"
        case .faultForAbsentServo(let id, let served):
            return "a fault names servo ID \(id), which is not on the bus (it serves IDs "
                + served.map(String.init).joined(separator: ", ") + ")"
        case .invalidFaultTime(let seconds):
            return "a fault time of \(seconds) s is not a time from 0 to "
                + "\(Int(FaultInjection.maximumFaultSeconds)) s"
        }
    }
}

/// How a virtual bus behaves.
public struct VirtualBusOptions: Sendable {
    /// Bit rate of the bus and of every servo on it at start (the servos' Baud Rate registers are set to it).
    public var baudRate: Int = 1_000_000
    /// When on, a reply is not readable before the real wire would have delivered it: request and reply
    /// bytes × 10 / baud, plus each servo's Return Delay Time, plus ``firmwareDelayNs``. Off: replies are
    /// readable as soon as the request has been handled.
    public var wireTiming: Bool = true
    /// Time a servo's firmware takes to start answering, on top of the return delay, ns.
    public var firmwareDelayNs: UInt64 = 5_000
    /// Physics and servo-controller step rate, Hz (≥ 1000).
    public var physicsRateHz: Double = 1000
    public var faults: FaultInjection = .none
    /// Seed for fault decisions, so a faulty run can be repeated.
    public var randomSeed: UInt64 = 0x5EED
    /// Supply voltage at every servo, V; nil for the model's rated voltage.
    public var supplyVoltageV: Double?

    public init() {}
}

/// Counters of what the bus saw and did.
public struct VirtualBusStatistics: Sendable, Equatable {
    public var requests = 0
    public var badChecksums = 0
    public var replies = 0
    public var droppedReplies = 0
    public var corruptedReplies = 0
    public var discardedBytes = 0
    /// Requests the host began while a servo's reply was still due: both are garbled, as on a half-duplex
    /// wire, so neither is answered.
    public var collisions = 0
    /// Requests dropped because the host was further ahead of the wire than a serial driver's transmit
    /// buffer lets it get (a real `write` would have blocked).
    public var overruns = 0
    /// Bytes the host sent at a rate no servo on the bus listens at: noise to every servo, never decoded.
    public var noiseBytes = 0
}

/// N virtual servos sharing one half-duplex bus. Feed it the host's bytes with ``receive(_:atNs:)``; it
/// parses packets as the servos' firmware would, lets each addressed servo answer in order, and queues
/// the reply bytes with the time they would arrive on a real wire; ``readReplies(upToNs:into:)`` hands
/// out what has arrived by a given time. ``advance(toNs:)`` runs the physics at a fixed step.
///
/// Time is explicit (ns on any monotonic clock the caller chooses), so tests are deterministic.
/// After the first exchanges warm it up, receiving, answering, reading replies and stepping the physics
/// allocate nothing. Not thread-safe: use it from one thread (``VirtualBusServer`` does).
public final class VirtualBus {
    /// The model of the first servo (every servo's own model is `servos[i].model`).
    public let model: ServoModel
    public private(set) var options: VirtualBusOptions
    /// The servos, in the order their IDs were given.
    public let servos: [VirtualServo]
    /// The mechanics the servos drive; replace it to put the servos into a robot.
    public var dynamics: any JointDynamics
    /// The bit rate the host is talking at; servos listening at another rate hear only noise: their UARTs
    /// sample the host's bits at the wrong instants and see framing errors and wrong bytes, never a clean
    /// packet, so they never answer (0: a rate that could not be read, which no servo listens at). A change
    /// drops any packet half received at the old rate.
    public var hostBaudRate: Int {
        didSet {
            guard hostBaudRate != oldValue else { return }
            dynamixelDecoder.reset()
            feetechDecoder.reset()
        }
    }
    /// Time the physics has reached, ns.
    public internal(set) var timeNs: UInt64
    /// The group whose one physics drives this bus together with the other buses of the same robot
    /// (``VirtualBusGroup``); nil for a bus that drives its own ``dynamics``.
    public internal(set) weak var group: VirtualBusGroup?
    public internal(set) var statistics = VirtualBusStatistics()

    var startNs: UInt64
    let stepNs: UInt64
    let stepS: Double
    let isDynamixel: Bool
    let positions: UnsafeMutableBufferPointer<Double>
    let velocities: UnsafeMutableBufferPointer<Double>
    let outputs: UnsafeMutableBufferPointer<ActuatorOutput>
    var overloadDue: [UInt64]
    /// When each servo falls silent (`silent=ID@SECONDS`), ns on the bus's clock; .max: never.
    var silenceDue: [UInt64]
    /// Servo indices sorted by bus ID, refreshed after ID changes (for broadcast PING order).
    var idOrder: [Int]

    static let bufferCapacity = 8192
    /// The servos' receivers: SinewBus's stream decoders, the same code the bus master uses.
    let dynamixelDecoder: DynamixelStreamDecoder
    let feetechDecoder: FeetechStreamDecoder
    var lastByteNs: UInt64 = 0
    /// Reply parameters being assembled.
    let payload: UnsafeMutablePointer<UInt8>
    /// The encoded reply packet.
    let packet: UnsafeMutablePointer<UInt8>
    let fastIDs: UnsafeMutablePointer<UInt8>
    let fastErrors: UnsafeMutablePointer<UInt8>

    static let queueCapacity = 1 << 16
    static let segmentCapacity = 1024
    let queue: UnsafeMutablePointer<UInt8>
    var queueHead = 0
    var queueTail = 0
    let segmentEnds: UnsafeMutablePointer<Int>
    let segmentReady: UnsafeMutablePointer<UInt64>
    var segmentHead = 0
    var segmentTail = 0
    /// When the host's last queued byte leaves its UART: the host's bytes follow one another on the wire.
    var hostBusyUntilNs: UInt64 = 0
    /// When the last reply due finishes arriving: a host byte sent before then collides with it.
    var replyBusyUntilNs: UInt64 = 0
    var replyCursorNs: UInt64 = 0
    var random: FaultRandom

    /// - Parameters:
    ///   - model: the servo model of every servo on the bus.
    ///   - ids: bus IDs, each once: 0…252 on Dynamixel, 0…253 on Feetech (as their codecs and tables allow).
    ///   - startNs: the caller's clock at start; fault times count from here.
    public convenience init(
        model: ServoModel, ids: [UInt8], options: VirtualBusOptions = VirtualBusOptions(), startNs: UInt64 = 0
    ) throws(VirtualBusError) {
        try self.init(servos: ids.map { (model, $0) }, options: options, startNs: startNs)
    }

    /// A bus of servos of possibly different models that speak the same protocol (for example XM430 and
    /// XL330 on one Dynamixel bus), in the given order.
    public init(
        servos list: [(model: ServoModel, id: UInt8)], options: VirtualBusOptions = VirtualBusOptions(),
        startNs: UInt64 = 0
    ) throws(VirtualBusError) {
        guard let first = list.first else { throw VirtualBusError.noServos }
        let model = first.model
        let ids = list.map(\.id)
        var seen = Set<UInt8>()
        let highestID: UInt8 = model.wireProtocol == .dynamixel2 ? 252 : 253
        for id in ids {
            guard id <= highestID else { throw VirtualBusError.invalidID(id) }
            guard seen.insert(id).inserted else { throw VirtualBusError.duplicateID(id) }
        }
        let faults = options.faults
        let faultIDs = faults.silentIDs + faults.silences.map(\.id) + faults.overloads.map(\.id)
        if let absent = faultIDs.first(where: { !seen.contains($0) }) {
            throw VirtualBusError.faultForAbsentServo(absent, served: ids)
        }
        let faultTimes = faults.silences.map(\.afterSeconds) + faults.overloads.map(\.afterSeconds)
        if let time = faultTimes.first(where: { !FaultInjection.isValidFaultTime($0) }) {
            throw VirtualBusError.invalidFaultTime(time)
        }
        for entry in list {
            guard entry.model.baudRateIndex(forBitsPerSecond: options.baudRate) != nil else {
                throw VirtualBusError.unsupportedBaudRate(
                    options.baudRate, model: entry.model.name, supported: entry.model.baudRates.values.sorted())
            }
            guard entry.model.wireProtocol == model.wireProtocol else {
                throw VirtualBusError.mixedProtocols(model.name, entry.model.name)
            }
        }
        guard options.physicsRateHz >= 1000, options.physicsRateHz.isFinite else {
            throw VirtualBusError.invalidPhysicsRate(options.physicsRateHz)
        }
        self.model = model
        self.options = options
        isDynamixel = model.wireProtocol == .dynamixel2
        servos = list.map {
            VirtualServo(model: $0.model, id: $0.id, baudRate: options.baudRate, supplyVoltageV: options.supplyVoltageV)
        }
        dynamics = FreeSpinningJoints(
            inertiasKgM2: list.map { DCMotorGearModel($0.model.physical).reflectedRotorInertiaKgM2 })
        hostBaudRate = options.baudRate
        self.startNs = startNs
        timeNs = startNs
        stepNs = UInt64((1e9 / options.physicsRateHz).rounded())
        stepS = Double(stepNs) / 1e9
        positions = .allocate(capacity: ids.count)
        velocities = .allocate(capacity: ids.count)
        outputs = .allocate(capacity: ids.count)
        for (index, servo) in servos.enumerated() {
            positions[index] = servo.positionRad
            velocities[index] = 0
            outputs[index] = ActuatorOutput(torqueNm: 0, dampingNmsPerRad: 0)
        }
        silenceDue = ids.map { id in
            guard let fault = options.faults.silences.first(where: { $0.id == id }) else { return .max }
            return startNs + UInt64(fault.afterSeconds * 1e9)
        }
        overloadDue = ids.map { id in
            guard let fault = options.faults.overloads.first(where: { $0.id == id }) else { return .max }
            return startNs + UInt64(fault.afterSeconds * 1e9)
        }
        idOrder = []
        dynamixelDecoder = DynamixelStreamDecoder(capacity: Self.bufferCapacity)
        feetechDecoder = FeetechStreamDecoder(capacity: 1024)
        payload = .allocate(capacity: Self.bufferCapacity)
        packet = .allocate(capacity: 2 * Self.bufferCapacity)
        fastIDs = .allocate(capacity: 256)
        fastErrors = .allocate(capacity: 256)
        queue = .allocate(capacity: Self.queueCapacity)
        segmentEnds = .allocate(capacity: Self.segmentCapacity)
        segmentReady = .allocate(capacity: Self.segmentCapacity)
        random = FaultRandom(seed: options.faults.seed ?? options.randomSeed)
        idOrder.reserveCapacity(ids.count)
        refreshIDOrder()
        for (index, id) in ids.enumerated() where options.faults.silentIDs.contains(id) {
            servos[index].isSilent = true
        }
    }

    deinit {
        positions.deallocate()
        velocities.deallocate()
        outputs.deallocate()
        payload.deallocate()
        packet.deallocate()
        fastIDs.deallocate()
        fastErrors.deallocate()
        queue.deallocate()
        segmentEnds.deallocate()
        segmentReady.deallocate()
    }

    /// Changes the probability that a reply packet is lost (``FaultInjection/dropProbability``) from now on: a
    /// simulation that lets the robot configure on a clean bus and loses packets only while it runs.
    public func setReplyLossProbability(_ probability: Double) {
        options.faults.dropProbability = min(max(probability, 0), 1)
    }

    /// The servo that currently answers to `id`, if any.
    public func servo(id: UInt8) -> VirtualServo? {
        servos.first { $0.busID == id }
    }

    func refreshIDOrder() {
        idOrder.removeAll(keepingCapacity: true)
        for index in servos.indices { idOrder.append(index) }
        idOrder.sort { servos[$0].busID < servos[$1].busID }
    }

    /// Moves the bus onto another clock: physics time becomes `nowNs`, and pending fault times and queued
    /// replies keep their distance from it. A server calls this once before serving in real time.
    public func rebaseClock(toNs nowNs: UInt64) {
        let shift = Int64(bitPattern: nowNs &- timeNs)
        func moved(_ value: UInt64) -> UInt64 { UInt64(bitPattern: Int64(bitPattern: value) &+ shift) }
        for index in overloadDue.indices where overloadDue[index] != .max {
            overloadDue[index] = moved(overloadDue[index])
        }
        for index in silenceDue.indices where silenceDue[index] != .max {
            silenceDue[index] = moved(silenceDue[index])
        }
        var slot = segmentHead
        while slot != segmentTail {
            segmentReady[slot % Self.segmentCapacity] = moved(segmentReady[slot % Self.segmentCapacity])
            slot += 1
        }
        startNs = moved(startNs)
        hostBusyUntilNs = hostBusyUntilNs == 0 ? 0 : moved(hostBusyUntilNs)
        replyBusyUntilNs = replyBusyUntilNs == 0 ? 0 : moved(replyBusyUntilNs)
        lastByteNs = moved(lastByteNs)
        timeNs = nowNs
    }

    // MARK: Physics

    /// Steps servos and physics at the fixed rate until `toNs` (whole steps only). A bus in a
    /// ``VirtualBusGroup`` steps the whole group: every bus of the robot, one physics.
    public func advance(toNs target: UInt64) {
        if let group {
            group.advance(toNs: target)
            return
        }
        while timeNs + stepNs <= target {
            timeNs += stepNs
            computeOutputs()
            dynamics.step(
                outputs: UnsafeBufferPointer(outputs), dtS: stepS, positionsRad: positions,
                velocitiesRadPerS: velocities)
            observeShafts()
        }
    }

    /// The first half of a physics step at `timeNs`: timed faults that fall due, then each servo's output.
    func computeOutputs() {
        for index in servos.indices {
            // The bus's array keeps the servo alive: an unretained reference saves a retain and a release per
            // servo and step.
            unowned(unsafe) let servo = servos[index]
            if timeNs >= overloadDue[index] {
                servo.injectFault(.overload)
                overloadDue[index] = .max
            }
            if timeNs >= silenceDue[index] {
                servo.isSilent = true
                silenceDue[index] = .max
            }
            outputs[index] = servo.actuatorOutput(dtS: stepS)
        }
    }

    /// The second half: each servo sees its shaft where the physics put it.
    func observeShafts() {
        for index in servos.indices {
            unowned(unsafe) let servo = servos[index]
            servo.observe(positionRad: positions[index], velocityRadPerS: velocities[index], timeNs: timeNs)
        }
    }

    /// Moves a joint (e.g. by hand, or from an external simulator) without running the controllers.
    public func setJointState(index: Int, positionRad: Double, velocityRadPerS: Double = 0) {
        positions[index] = positionRad
        velocities[index] = velocityRadPerS
        servos[index].observe(positionRad: positionRad, velocityRadPerS: velocityRadPerS, timeNs: timeNs)
    }

    // MARK: Host → bus

    /// Nanoseconds one byte occupies the wire at the host's rate (8N1: 10 bits).
    @inline(__always) var byteNs: UInt64 { UInt64(10_000_000_000 / max(hostBaudRate, 1)) }

    /// Takes bytes the host wrote at `atNs`; every complete packet is handled at once and its replies queued.
    public func receive(_ bytes: UnsafeRawBufferPointer, atNs: UInt64) {
        // A real servo drops a half-received packet after a pause on the line.
        if atNs > lastByteNs + 10_000_000 {
            if isDynamixel { dynamixelDecoder.reset() } else { feetechDecoder.reset() }
        }
        lastByteNs = atNs
        var anyListening = false
        for servo in servos where servo.busBaudRate == hostBaudRate { anyListening = true }
        guard anyListening else {
            statistics.noiseBytes += bytes.count
            return
        }
        var offset = 0
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            let taken = isDynamixel ? dynamixelDecoder.append(rest) : feetechDecoder.append(rest)
            offset += taken
            if isDynamixel { drainDynamixel(atNs: atNs) } else { drainFeetech(atNs: atNs) }
            if taken == 0 {
                // A packet larger than the receiver: drop what is buffered, as a servo's UART would overrun.
                if isDynamixel { dynamixelDecoder.reset() } else { feetechDecoder.reset() }
            }
        }
    }

    /// Convenience for tests: `receive` over an array.
    public func receive(_ bytes: [UInt8], atNs: UInt64) {
        bytes.withUnsafeBytes { receive($0, atNs: atNs) }
    }

    /// How far (bytes) the host's transmissions may run ahead of the wire: a Linux serial driver's transmit
    /// buffer is 4 KiB, beyond which `write` blocks. A pty does not block, so the bus drops the excess
    /// instead of queueing seconds of requests — unless its server holds the excess back (``hostRoomBytes(atNs:)``),
    /// as ``VirtualBusServer`` does: then the host's `write` blocks once the pty's own buffer is full, as on a port.
    public static let hostTransmitBufferBytes: UInt64 = 4096

    /// How many more bytes the host may send at `atNs` before its transmissions run further ahead of the wire
    /// than a serial driver's transmit buffer (``hostTransmitBufferBytes``); unbounded without wire timing.
    public func hostRoomBytes(atNs: UInt64) -> Int {
        guard options.wireTiming, hostBaudRate > 0 else { return Int.max }
        let backlogNs = hostBusyUntilNs > atNs ? hostBusyUntilNs - atNs : 0
        let backlogBytes = (backlogNs + byteNs - 1) / byteNs
        return backlogBytes >= Self.hostTransmitBufferBytes ? 0 : Int(Self.hostTransmitBufferBytes - backlogBytes)
    }

    /// Opens the wire for one request of `length` bytes received at `atNs`. Returns false when the request
    /// is lost: it overlapped a reply still due (a collision: the reply is lost too) or the host ran
    /// further ahead of the wire than a serial driver lets it.
    func beginRequest(length: Int, atNs: UInt64) -> Bool {
        statistics.requests += 1
        guard options.wireTiming else {
            replyCursorNs = atNs
            return true
        }
        let start = max(atNs, hostBusyUntilNs)
        if start - atNs > Self.hostTransmitBufferBytes * byteNs {
            statistics.overruns += 1
            return false
        }
        let end = start + UInt64(length) * byteNs
        hostBusyUntilNs = end
        if start < replyBusyUntilNs {
            statistics.collisions += 1
            dropReplies(arrivingAfterNs: start)
            replyBusyUntilNs = start
            return false
        }
        replyCursorNs = end
        return true
    }

    /// Drops the replies whose bytes were still to arrive at `ns`: the host's transmission garbles them.
    func dropReplies(arrivingAfterNs ns: UInt64) {
        while segmentTail != segmentHead && segmentReady[(segmentTail - 1) % Self.segmentCapacity] > ns {
            segmentTail -= 1
        }
        queueTail = segmentTail == segmentHead ? queueHead : segmentEnds[(segmentTail - 1) % Self.segmentCapacity]
    }

    func hears(_ index: Int) -> Bool {
        !servos[index].isSilent && servos[index].busBaudRate == hostBaudRate
    }

    func endRequest() {
        var changed = false
        for servo in servos {
            let id = servo.busID
            servo.commitBusSettings()
            changed = changed || id != servo.busID
        }
        if changed { refreshIDOrder() }
    }

    // MARK: Reply queue

    /// Bytes queued, whether or not they have arrived yet.
    public var queuedReplyBytes: Int { queueTail - queueHead }

    /// When the next queued reply arrives, ns; nil when nothing is queued.
    public var nextReplyReadyNs: UInt64? {
        segmentHead == segmentTail ? nil : segmentReady[segmentHead % Self.segmentCapacity]
    }

    /// Copies reply bytes that have arrived by `upToNs` into `out`; returns the count.
    public func readReplies(upToNs: UInt64, into out: UnsafeMutableRawBufferPointer) -> Int {
        var written = 0
        while segmentHead != segmentTail && written < out.count {
            let slot = segmentHead % Self.segmentCapacity
            if segmentReady[slot] > upToNs { break }
            let end = segmentEnds[slot]
            while queueHead < end && written < out.count {
                out[written] = queue[queueHead % Self.queueCapacity]
                queueHead += 1
                written += 1
            }
            if queueHead == end { segmentHead += 1 }
        }
        return written
    }

    /// Discards queued replies (a host that flushes its input).
    public func discardReplies() {
        queueHead = queueTail
        segmentHead = segmentTail
    }

    /// Queues `count` bytes of `packet` from servo `index`, applying drop/corrupt faults and wire timing.
    func enqueue(count: Int, servoIndex index: Int) {
        statistics.replies += 1
        var readyNs = replyCursorNs
        if options.wireTiming {
            readyNs = replyCursorNs + options.firmwareDelayNs + servos[index].returnDelayNs + UInt64(count) * byteNs
            replyCursorNs = readyNs
            replyBusyUntilNs = max(replyBusyUntilNs, readyNs)
        }
        let faults = options.faults
        if faults.dropProbability > 0 && random.unit() < faults.dropProbability {
            statistics.droppedReplies += 1
            return
        }
        if faults.corruptProbability > 0 && random.unit() < faults.corruptProbability && count > 0 {
            statistics.corruptedReplies += 1
            let position = Int(random.next() % UInt64(count))
            packet[position] ^= UInt8(truncatingIfNeeded: 1 + random.next() % 255)
        }
        if queueTail - queueHead + count > Self.queueCapacity
            || segmentTail - segmentHead >= Self.segmentCapacity
        {
            // A host that never reads: the oldest replies are lost, as bytes on a wire nobody listens to.
            discardReplies()
        }
        for offset in 0..<count {
            queue[(queueTail + offset) % Self.queueCapacity] = packet[offset]
        }
        queueTail += count
        let slot = segmentTail % Self.segmentCapacity
        segmentEnds[slot] = queueTail
        segmentReady[slot] = readyNs
        segmentTail += 1
    }
}
