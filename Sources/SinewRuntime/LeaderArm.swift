import Foundation
import SinewBus
import SinewDrivers
import SinewPolicy
import Synchronization

/// A teleoperation leader arm: the servos of a second robot.yaml (the leader's), torque off, whose joint
/// positions a human sets by hand and the `teleop` policy reads every tick. One bus; positions in rad through
/// the leader's own calibration, direction and reducer, in the leader's joint order.
///
/// ``connect()`` (not real-time) checks every servo answers with the model the leader's robot.yaml names and
/// switches its torque off; ``read()`` is one sync read, allocation-free. The leader's bus is a port of its own
/// (a second USB adapter), so in a real-time run it is read on a thread of its own, back to back at most once a
/// tick (``startReading(periodS:)``), and the tick takes the newest reading through a triple buffer
/// (``takeLatest()``): the leader's wire time does not add to the follower's tick. In a lockstep run the tick
/// reads it itself.
public final class LeaderArm: @unchecked Sendable {
    // @unchecked: used by the loop thread only once connected.
    public let configuration: RobotConfiguration
    /// The file the leader was read from (for messages).
    public let source: String
    let master: BusMaster
    let busName: String
    let ids: UnsafeMutableBufferPointer<ServoID>
    let models: [ServoModel]
    let mappings: [JointServoMapping]
    let positionSpec: RegisterSpec
    let readBuffer: UnsafeMutableRawBufferPointer
    let littleEndian: Bool
    let runMarginNs: UInt64
    /// Joint positions of the last successful read (rad, the leader's joint order).
    public let positionRad: UnsafeMutableBufferPointer<Double>
    /// Failed reads since connecting.
    public private(set) var failedReads = 0
    /// Readings handed from the reading thread to the tick.
    final class Reading: @unchecked Sendable {
        let positionRad: UnsafeMutableBufferPointer<Double>
        init(count: Int) {
            positionRad = .allocate(capacity: max(1, count))
            positionRad.initialize(repeating: 0)
        }
        deinit { positionRad.deallocate() }
    }
    let readings: TripleBuffer<Reading>
    private let stopRequested = Atomic<Bool>(false)
    private let readerRunning = Atomic<Bool>(false)

    /// - Parameters:
    ///   - transport: the port of the leader's bus.
    ///   - lockstep: the leader is simulated in lockstep with the loop (its replies are never late in
    ///     simulated time).
    public init(
        configuration: RobotConfiguration, catalog: ServoCatalog, calibration: CalibrationFile?,
        transport: any ByteTransport, lockstep: Bool, source: String
    ) throws(RobotLoopError) {
        self.configuration = configuration
        self.source = source
        let buses = Set(configuration.joints.map(\.bus))
        guard buses.count == 1, let busName = buses.first, let bus = configuration.bus(named: busName) else {
            throw RobotLoopError(
                "leader \(source): a leader arm is one bus of servos; it names \(buses.count) "
                    + "(\(buses.sorted().joined(separator: ", ")))")
        }
        self.busName = busName
        var models: [ServoModel] = []
        var mappings: [JointServoMapping] = []
        for joint in configuration.joints {
            guard let servo = catalog.model(named: joint.servoModel) else {
                throw RobotLoopError(
                    "leader \(source): joint \"\(joint.name)\": no servo table for \"\(joint.servoModel)\"",
                    location: RobotErrorLocation(bus: busName, joint: joint.name))
            }
            models.append(servo)
            let zero = calibration?.entry(forJoint: joint.name).map { Double($0.zeroCounts) }
            mappings.append(joint.servoMapping(servo: servo, zeroCounts: zero))
        }
        guard let first = models.first, let position = first.register(named: "Present Position"),
            models.allSatisfy({ $0.register(named: "Present Position")?.address == position.address })
        else {
            throw RobotLoopError("leader \(source): its servos do not share one Present Position register")
        }
        self.models = models
        self.mappings = mappings
        positionSpec = position
        littleEndian = first.wireProtocol.isLittleEndian
        runMarginNs = lockstep ? RobotLoop.lockstepRunMarginNs : RobotLoop.defaultRunMarginNs
        let n = configuration.joints.count
        ids = .allocate(capacity: n)
        for (i, joint) in configuration.joints.enumerated() { ids[i] = UInt8(joint.servoID) }
        readBuffer = .allocate(byteCount: n * position.size, alignment: 8)
        readBuffer.initializeMemory(as: UInt8.self, repeating: 0)
        positionRad = .allocate(capacity: max(1, n))
        positionRad.initialize(repeating: 0)
        readings = TripleBuffer { Reading(count: n) }
        master = BusMaster(
            transport: transport, protocol: bus.busProtocol == .dynamixel ? .dynamixel : .feetechSTS,
            timing: BusTiming(
                returnDelayMicroseconds: 0, marginNanoseconds: 20_000_000, perReplyNanoseconds: 50_000,
                retries: bus.retries, repliesToWrites: true, busyPollNanoseconds: 0))
    }

    deinit {
        stopReading()
        ids.deallocate()
        readBuffer.deallocate()
        positionRad.deallocate()
    }

    public var jointNames: [String] { configuration.joints.map(\.name) }

    /// Checks each servo (model number), makes its replies prompt (Return Delay Time 0) and its torque off, and
    /// takes a first reading. Not real-time.
    public func connect() throws(RobotLoopError) {
        master.timing.marginNanoseconds = 20_000_000
        defer { master.timing.marginNanoseconds = runMarginNs }
        for (i, joint) in configuration.joints.enumerated() {
            let id = ids[i]
            let location = RobotErrorLocation(bus: busName, servoID: Int(id), joint: joint.name)
            do {
                let reply = try master.ping(id)
                guard reply.modelNumber == models[i].modelNumber else {
                    throw RobotLoopError(
                        "leader \(source): servo \(id) (joint \"\(joint.name)\") is model number \(reply.modelNumber), "
                            + "not a \(models[i].name) (\(models[i].modelNumber))", location: location)
                }
                for (name, value) in [("Torque Enable", Int64(0)), ("Return Delay Time", 0)] {
                    guard let spec = models[i].register(named: name) else { continue }
                    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: spec.size, alignment: 8)
                    defer { bytes.deallocate() }
                    try master.read(id: id, address: UInt16(spec.address), into: bytes)
                    guard spec.load(from: UnsafeRawBufferPointer(bytes), at: 0, littleEndian: littleEndian) != value
                    else { continue }
                    spec.store(value, into: bytes, at: 0, littleEndian: littleEndian)
                    try master.write(id: id, address: UInt16(spec.address), data: UnsafeRawBufferPointer(bytes))
                }
            } catch let error as RobotLoopError {
                throw error
            } catch {
                throw RobotLoopError(
                    "leader \(source): servo \(id) (joint \"\(joint.name)\") on bus \"\(busName)\": \(error)",
                    location: location)
            }
        }
        guard read() else {
            throw RobotLoopError("leader \(source): the first reading of its joints failed")
        }
    }

    /// One sync read of every joint's position into ``positionRad``. Real-time: no allocation. Returns false
    /// (and keeps the previous positions) when the read failed.
    public func read() -> Bool {
        do {
            try master.syncRead(
                ids: UnsafeBufferPointer(ids), address: UInt16(positionSpec.address), length: positionSpec.size,
                into: readBuffer)
        } catch {
            failedReads += 1
            return false
        }
        for i in 0..<mappings.count {
            let counts = positionSpec.load(
                from: UnsafeRawBufferPointer(readBuffer), at: i * positionSpec.size, littleEndian: littleEndian)
            positionRad[i] = mappings[i].jointPositionRad(counts: counts)
        }
        return true
    }

    /// Starts reading on a thread of its own, at most once every `periodS` (s), each reading handed to the tick
    /// through a triple buffer. Not real-time; does nothing when already reading.
    public func startReading(periodS: Double) {
        guard !readerRunning.load(ordering: .acquiring) else { return }
        stopRequested.store(false, ordering: .releasing)
        readerRunning.store(true, ordering: .releasing)
        let periodNs = Int64(max(periodS, 1e-4) * 1e9)
        let thread = Thread { [self] in
            var next = timespec()
            clock_gettime(CLOCK_MONOTONIC, &next)
            while !stopRequested.load(ordering: .acquiring) {
                if read() {
                    let slot = readings.writeSlot
                    for i in 0..<mappings.count { slot.positionRad[i] = positionRad[i] }
                    readings.publish()
                }
                var ns = Int64(next.tv_nsec) + periodNs
                next.tv_sec += Int(ns / 1_000_000_000)
                ns %= 1_000_000_000
                next.tv_nsec = Int(ns)
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                // Behind (a slow bus): start again from now instead of catching up.
                if now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec) { next = now }
                while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nil) == EINTR {}
            }
            readerRunning.store(false, ordering: .releasing)
        }
        thread.name = "sinew-leader"
        thread.start()
    }

    /// Stops the reading thread and waits for it (at most one bus transaction). Not real-time.
    public func stopReading() {
        stopRequested.store(true, ordering: .releasing)
        while readerRunning.load(ordering: .acquiring) { usleep(500) }
    }

    /// Whether the reading thread runs.
    public var isReading: Bool { readerRunning.load(ordering: .acquiring) }

    /// The tick's side while the thread reads: copies the newest reading into `latestRad` when one arrived
    /// since the last call. Real-time: no allocation, never waits.
    public func takeLatest(into latestRad: UnsafeMutableBufferPointer<Double>) -> Bool {
        guard readings.take() else { return false }
        let slot = readings.readSlot
        for i in 0..<mappings.count { latestRad[i] = slot.positionRad[i] }
        return true
    }
}
