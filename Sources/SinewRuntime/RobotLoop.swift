import CRealtime
import Foundation
import SinewBus
import SinewCore
import SinewDrivers
import SinewKinematics
import SinewPolicy
import Synchronization

/// Why the robot loop could not be set up, configured or activated: which bus, servo and what happened.
public struct RobotLoopError: Error, Sendable, CustomStringConvertible, LocatedRobotError {
    /// The whole message, with the bus, servo and joint in words.
    public var description: String
    /// The same bus, servo and joint as values, for reports that keep them apart (`sinew run --json`).
    public var location: RobotErrorLocation
    public init(_ description: String, location: RobotErrorLocation = RobotErrorLocation()) {
        self.description = description
        self.location = location
    }
}

/// Where on the robot an error happened; nil where it concerns no single bus, servo or joint.
public struct RobotErrorLocation: Sendable, Equatable {
    /// The bus's `name` in robot.yaml.
    public var bus: String?
    /// The servo's ID on that bus.
    public var servoID: Int?
    /// The joint's `name` in robot.yaml.
    public var joint: String?
    public init(bus: String? = nil, servoID: Int? = nil, joint: String? = nil) {
        self.bus = bus
        self.servoID = servoID
        self.joint = joint
    }
}

/// An error that knows where on the robot it happened.
public protocol LocatedRobotError: Error {
    var location: RobotErrorLocation { get }
}

extension LifecycleError: LocatedRobotError {
    /// The location of the hook's error, when it has one.
    public var location: RobotErrorLocation {
        if case .hookFailed(_, _, let error) = self, let located = error as? any LocatedRobotError {
            return located.location
        }
        return RobotErrorLocation()
    }
}

/// One pass of sense → estimate → decide → guard → act → record for a robot described by a `robot.yaml`:
/// servos on one or more buses (each behind a `ByteTransport`: a real port, a pseudo-terminal or the
/// simulator's in-process pipe — the loop cannot tell them apart), the joint layer, a built-in policy and
/// the safety supervisor. Also the lifecycle node: configure checks and sets up the servos, activate ramps
/// from the present pose.
///
/// Every buffer is allocated at init; the stage methods allocate nothing.
public final class RobotLoop: ControlTickBody, LifecycleNode, @unchecked Sendable {
    // @unchecked: the stage methods run on the loop thread only; other threads read the Atomic status.
    public typealias Failure = RobotLoopError

    /// One bus: its master, its servos and where their registers sit.
    final class BusLink {
        let name: String
        let master: BusMaster
        /// The reply margin of this bus while the loop runs (robot.yaml `reply_margin_ms`, or the loop's).
        var runMarginNs: UInt64 = RobotLoop.defaultRunMarginNs
        let ids: UnsafeMutableBufferPointer<ServoID>
        /// Configuration joint index of each servo (coupled second servos included, with their direction).
        let joints: [Int]
        let servoDirection: [Double]
        /// The first servo's model: the register layout every servo on the bus shares.
        let servoModel: ServoModel
        /// Each servo's own model (models of one family, like XM430 and XL330, can share a bus).
        let slotModels: [ServoModel]
        let readAddress: UInt16
        let readLength: Int
        let readBuffer: UnsafeMutableRawBufferPointer
        let positionSpec: RegisterSpec
        let velocitySpec: RegisterSpec
        let currentSpec: RegisterSpec?
        let goalSpec: RegisterSpec
        let torqueSpec: RegisterSpec
        let writeBuffer: UnsafeMutableRawBufferPointer
        let torqueBuffer: UnsafeMutableRawBufferPointer
        let littleEndian: Bool
        /// Goal registers of the other control modes (nil where the model has none).
        let goalVelocitySpec: RegisterSpec?
        let goalCurrentSpec: RegisterSpec?
        let operatingModeSpec: RegisterSpec?
        /// The control mode each servo should run in for the policy, and the one it runs in now
        /// (``ServoControlMode`` raw values; they differ after the safe state switched a joint to position).
        let wantedMode: [ServoControlMode]
        let slotMode: UnsafeMutableBufferPointer<UInt8>
        /// Whether any servo on the bus is driven other than by position.
        let drivesOtherModes: Bool
        /// Scratch for sync writes to a subset of the servos (velocity goals, current goals, a mode switch).
        let subsetIDs: UnsafeMutableBufferPointer<ServoID>
        let subsetSlots: UnsafeMutableBufferPointer<Int>
        let subsetData: UnsafeMutableRawBufferPointer

        init(
            name: String, master: BusMaster, ids: [ServoID], joints: [Int], servoDirection: [Double],
            slotModels: [ServoModel], wantedMode: [ServoControlMode]
        ) throws(RobotLoopError) {
            let servo = slotModels[0]
            self.slotModels = slotModels
            self.name = name
            self.master = master
            self.ids = .allocate(capacity: ids.count)
            _ = self.ids.initialize(from: ids)
            self.joints = joints
            self.servoDirection = servoDirection
            servoModel = servo
            func spec(_ name: String) throws(RobotLoopError) -> RegisterSpec {
                guard let s = servo.register(named: name) else {
                    throw RobotLoopError("\(servo.name) has no register \"\(name)\" in its servo table")
                }
                return s
            }
            positionSpec = try spec("Present Position")
            velocitySpec = try spec("Present Velocity")
            currentSpec = servo.register(named: "Present Current")
            goalSpec = try spec("Goal Position")
            torqueSpec = try spec("Torque Enable")
            // One read covers velocity, position and (where it sits close enough) current.
            var lo = min(positionSpec.address, velocitySpec.address)
            var hi = max(positionSpec.address + positionSpec.size, velocitySpec.address + velocitySpec.size)
            if let c = currentSpec, abs(c.address - lo) < 24 {
                lo = min(lo, c.address)
                hi = max(hi, c.address + c.size)
            }
            readAddress = UInt16(lo)
            readLength = hi - lo
            readBuffer = .allocate(byteCount: readLength * ids.count, alignment: 8)
            readBuffer.initializeMemory(as: UInt8.self, repeating: 0)
            writeBuffer = .allocate(byteCount: goalSpec.size * ids.count, alignment: 8)
            writeBuffer.initializeMemory(as: UInt8.self, repeating: 0)
            torqueBuffer = .allocate(byteCount: ids.count, alignment: 8)
            torqueBuffer.initializeMemory(as: UInt8.self, repeating: 0)
            littleEndian = servo.wireProtocol.isLittleEndian
            goalVelocitySpec = servo.register(named: "Goal Velocity")
            goalCurrentSpec = servo.register(named: "Goal Current")
            operatingModeSpec = servo.register(named: "Operating Mode")
            self.wantedMode = wantedMode
            slotMode = .allocate(capacity: max(1, ids.count))
            slotMode.initialize(repeating: ServoControlMode.position.rawValue)
            drivesOtherModes = wantedMode.contains { $0 != .position }
            subsetIDs = .allocate(capacity: max(1, ids.count))
            subsetIDs.initialize(repeating: 0)
            subsetSlots = .allocate(capacity: max(1, ids.count))
            subsetSlots.initialize(repeating: 0)
            subsetData = .allocate(byteCount: 4 * max(1, ids.count), alignment: 8)
            subsetData.initializeMemory(as: UInt8.self, repeating: 0)
        }

        deinit {
            ids.deallocate()
            readBuffer.deallocate()
            writeBuffer.deallocate()
            torqueBuffer.deallocate()
            slotMode.deallocate()
            subsetIDs.deallocate()
            subsetSlots.deallocate()
            subsetData.deallocate()
        }

        /// Decoded value of a register inside servo `slot`'s part of the read buffer.
        @inline(__always) func value(_ spec: RegisterSpec, slot: Int) -> Int64 {
            let base = slot * readLength + spec.address - Int(readAddress)
            guard base >= 0, base + spec.size <= (slot + 1) * readLength else { return 0 }
            return spec.load(from: UnsafeRawBufferPointer(readBuffer), at: base, littleEndian: littleEndian)
        }

        @inline(__always) func putGoal(_ counts: Int64, slot: Int) {
            goalSpec.store(counts, into: writeBuffer, at: slot * goalSpec.size, littleEndian: littleEndian)
        }
    }

    public let configuration: RobotConfiguration
    public let model: RobotModel
    public let supervisor: SafetySupervisor
    /// Joint mapping per configuration joint (its first servo).
    public let mappings: [JointServoMapping]
    let buses: [BusLink]
    /// Each configuration joint's first servo: index into `buses` and slot on it (-1, -1: none).
    let jointSlots: [(bus: Int, slot: Int)]
    let workspace: KinematicsWorkspace
    /// URDF-level joint index of each configuration joint.
    let urdfIndex: [Int]
    /// Link index of each workspace box's frame.
    let boxLinks: [Int]
    /// The URDF's mimic joints, resolved once so the tick does not walk the model's joint descriptions.
    let mimicJoints: [(joint: Int, master: Int, multiplier: Double, offset: Double)]
    let urdfPositions: UnsafeMutableBufferPointer<Double>
    /// The policy's target per configuration joint (its command, before the supervisor).
    public let targetPositionRad: UnsafeMutableBufferPointer<Double>
    /// The decide stage: the policy, what it sees and what it answers (preallocated), and for an asynchronous
    /// policy the runner that hands them across threads.
    public let policy: any Policy
    public let observation: PolicyObservation
    public let command: PolicyCommand
    let policyRunner: AsynchronousPolicyRunner?
    /// Link index of each of the policy's observed frames.
    let observedFrameLinks: [Int]
    /// Joint torque currently on at the servos (the act stage switches it when the supervisor says so).
    let torqueOnAtServo: UnsafeMutableBufferPointer<Bool>
    public private(set) var lifecycle: Lifecycle<RobotLoop>!
    /// The IMU robot.yaml declares, when it was given a transport (estimate stage; see ``IMUDriver``).
    public let imu: IMUDriver?

    /// Lockstep simulation: the loop moves simulated time to each tick's start and its policy runs on
    /// simulated time, so a run can go as fast as the machine allows. Nil: wall-clock time.
    public let simulationClock: (any SimulationClock)?
    let simulatedPeriodNs: UInt64
    var ticksSinceStart: UInt64 = 0
    /// In a lockstep run, the simulated time this tick started at, ns since the simulation started (the
    /// sense stage moves the clock there first; the bus transactions then move it on).
    public private(set) var tickStartSimulatedNs: UInt64 = 0
    var activatedAtSimulatedNs: UInt64 = 0

    // Per-tick bookkeeping.
    var activatedAtNs: Int64 = 0
    var restartPolicyClock = false
    /// How long the approach from the present pose to the first waypoint takes, s (the `trajectory` policy;
    /// 0 for the others).
    public var approachS: Double { (policy as? TrajectoryPolicy)?.approachS ?? 0 }
    /// This tick's time on the policy's clock: ns since the loop started (simulated in a lockstep run).
    var policyNowNs: Int64 = 0
    var busErrorsThisTick = 0
    var trackingSquares = 0.0
    var trackingSamples = 0
    /// What the last failed bus transaction was (for reports; loop thread).
    public private(set) var lastBusError: BusError?
    /// Failed sync writes of the act stage per bus, counted against the next tick's bus-error budgets (the
    /// guard has run by then), and whether one was the port disconnecting.
    let actErrorsByBus: UnsafeMutableBufferPointer<Int>
    let actDisconnectedByBus: UnsafeMutableBufferPointer<Bool>
    /// The bus of the last failure counted in `busErrorsThisTick`, and whether it was a disconnection.
    var failingBusIndex = -1
    var busDisconnectedThisTick = false
    /// How the sense stage's sync reads overlap (robot.yaml `loop.bus_io`; see ``busIO``).
    let busReads: any SenseBusReads
    /// The way the sense stage reads the buses in this loop: robot.yaml's `loop.bus_io`, except that a
    /// single bus is simply read, and a lockstep simulation polls (threads would race on its clock).
    public let busIO: RobotConfiguration.BusIO
    let busErrorTotal = Atomic<Int>(0)
    /// Index into `buses` of the first bus whose port disconnected (-1: none), and its errno.
    let disconnectedBusIndex = Atomic<Int>(-1)
    let disconnectionErrno = Atomic<Int32>(0)

    /// Failed bus transactions since the loop was made: reads in the sense stage and writes in the act
    /// stage, on every bus (any thread).
    public var busErrorCount: Int { busErrorTotal.load(ordering: .relaxed) }

    /// Whether the port of a bus is gone (a hang-up, EIO, ENXIO or ENODEV: a USB adapter unplugged, the
    /// `sinew virtual-bus` serving it killed). Set once, by the loop thread, in the tick that sees it; any
    /// thread may poll it. From then on the loop fails that bus's transactions at once each tick (no system
    /// call on the dead descriptor), counts them as bus errors, and the safety supervisor puts the robot in
    /// its safe state within the bus-error budget (a `busErrors` event naming the bus, detail
    /// `disconnected`). Nothing on that bus can be commanded any more: end the run (and report failure).
    public var busDisconnected: Bool { disconnectedBusIndex.load(ordering: .acquiring) >= 0 }

    /// The name of the bus whose port disconnected first, or nil (any thread).
    public var disconnectedBusName: String? {
        let index = disconnectedBusIndex.load(ordering: .acquiring)
        return index >= 0 ? buses[index].name : nil
    }

    /// The `errno` of that disconnection (EIO, ENXIO, ENODEV; 0 for a hang-up without one), or nil.
    public var disconnectedBusErrno: Int32? {
        disconnectedBusIndex.load(ordering: .acquiring) >= 0 ? disconnectionErrno.load(ordering: .relaxed) : nil
    }

    /// Status for other threads: RMS tracking error (rad), bit pattern of a Double.
    let trackingRMSBits = Atomic<UInt64>(0)
    let tickIndexNow = Atomic<Int64>(-1)

    /// The index of the tick running now, or of the last one (-1 before the first), as the scheduler counts them
    /// in the present loop segment (any thread): where another thread notes what arrived when, in ticks.
    public var currentTickIndex: Int64 { tickIndexNow.load(ordering: .relaxed) }
    let lifecycleStateRaw = Atomic<UInt8>(0)

    /// Recent wake-up lateness, written by the record stage, for live percentiles on other threads.
    public let recentLateness = LatenessWindow(capacity: 1024)
    /// Where the record stage pushes snapshots (see `attachRecorder`), and every how many ticks.
    public internal(set) var recorder: TickRecorder?
    var recordingDecimation: Int64 = 1
    /// Where the record stage publishes the servos' health for telemetry and ROS 2 diagnostics (see `attachHealthTap`).
    public internal(set) var healthTap: ServoHealthTap?
    /// Duration of the previous tick's record stage as measured inside it, ns.
    var lastRecordStageNs: Int64 = 0

    /// The calibration the joints use, checked against the servos at configure time, and its file (for errors).
    public let calibration: CalibrationFile?
    let calibrationSource: String

    /// - Parameters:
    ///   - transports: one per configured bus, by bus name.
    ///   - catalog: servo tables (Hardware/servos).
    ///   - calibration: zero counts per joint, when the robot was calibrated; configure refuses a servo that
    ///     does not match its entry.
    ///   - calibrationSource: the calibration's file, named in errors.
    ///   - imuTransport: where the IMU of robot.yaml's `imu:` section is read from (none: no IMU).
    ///   - policy: the policy to run instead of the one robot.yaml names.
    ///   - policyTransports: ports of buses the policy reads besides the robot's (a teleoperation leader), by
    ///     the bus names its settings give.
    public init(
        configuration: RobotConfiguration, model: RobotModel, catalog: ServoCatalog,
        transports: [String: any ByteTransport], calibration: CalibrationFile? = nil,
        calibrationSource: String = "calibration", emergencyStop: EmergencyStopSources = EmergencyStopSources(),
        overrunBudget: Int = 10, simulationClock: (any SimulationClock)? = nil,
        runMarginNs: UInt64 = RobotLoop.defaultRunMarginNs, imuTransport: (any ByteTransport)? = nil,
        policy: (any Policy)? = nil, policyTransports: [String: any ByteTransport] = [:]
    ) throws(RobotLoopError) {
        self.simulationClock = simulationClock
        self.runMarginNs = runMarginNs
        simulatedPeriodNs = UInt64((1e9 / configuration.loop.rateHz).rounded())
        self.configuration = configuration
        self.calibration = calibration
        self.calibrationSource = calibrationSource
        imu = try IMUDriver.make(for: configuration, transport: imuTransport)
        self.model = model
        workspace = KinematicsWorkspace(model: model)
        var urdf: [Int] = []
        var maps: [JointServoMapping] = []
        for joint in configuration.joints {
            guard let j = model.jointIndex(named: joint.name) else {
                throw RobotLoopError(
                    "joint \"\(joint.name)\" (\(joint.location)) is not a moving joint of \(model.file)",
                    location: RobotErrorLocation(joint: joint.name))
            }
            guard let servo = catalog.model(named: joint.servoModel) else {
                throw RobotLoopError(
                    "joint \"\(joint.name)\": no servo table for \"\(joint.servoModel)\"",
                    location: RobotErrorLocation(joint: joint.name))
            }
            urdf.append(j)
            let zero = calibration?.entry(forJoint: joint.name).map { Double($0.zeroCounts) }
            maps.append(joint.servoMapping(servo: servo, zeroCounts: zero))
        }
        urdfIndex = urdf
        mappings = maps

        let jointLimits = configuration.jointSafetyLimits(against: model)
        let jointNames = configuration.joints.map(\.name)
        let chosen: any Policy
        if let policy {
            chosen = policy
        } else {
            chosen = try configuration.policy.settings.makePolicy(
                in: PolicyBuildContext(
                    configuration: configuration, model: model, catalog: catalog, jointLimits: jointLimits,
                    loopRateHz: configuration.loop.rateHz, lockstep: simulationClock != nil,
                    policyTransports: policyTransports))
        }
        try Self.checkPolicy(chosen, configuration: configuration, catalog: catalog)
        // The control mode each joint's servos run in: what the policy commands it by.
        var jointModes = [ServoControlMode](repeating: .position, count: configuration.joints.count)
        for command in chosen.commands {
            guard let j = configuration.jointIndex(named: command.joint) else { continue }
            jointModes[j] = Self.controlMode(for: command.kind)
        }
        var links: [BusLink] = []
        for bus in configuration.buses {
            guard let transport = transports[bus.name] else {
                throw RobotLoopError(
                    "bus \"\(bus.name)\" (\(bus.location)) has no port to talk through",
                    location: RobotErrorLocation(bus: bus.name))
            }
            var ids: [ServoID] = []
            var joints: [Int] = []
            var directions: [Double] = []
            var servo: ServoModel?
            var slotModels: [ServoModel] = []
            for (i, joint) in configuration.joints.enumerated() where joint.bus == bus.name {
                let model = catalog.model(named: joint.servoModel)!
                if let s = servo, s.name != model.name {
                    // One register layout per bus keeps the sync read and write to one packet each.
                    guard
                        s.register(named: "Present Position")?.address
                            == model.register(named: "Present Position")?.address
                    else {
                        throw RobotLoopError(
                            "bus \"\(bus.name)\" mixes \(s.name) and \(model.name), whose registers differ",
                            location: RobotErrorLocation(bus: bus.name))
                    }
                }
                servo = servo ?? model
                ids.append(UInt8(joint.servoID))
                joints.append(i)
                directions.append(1)
                slotModels.append(model)
                if let coupled = joint.coupled {
                    ids.append(UInt8(coupled.servoID))
                    joints.append(i)
                    directions.append(Double(coupled.direction))
                    slotModels.append(model)
                }
            }
            guard servo != nil else { continue }
            let wire: BusProtocol = bus.busProtocol == .dynamixel ? .dynamixel : .feetechSTS
            // Return Delay Time is set to 0 at configure; a small margin covers USB and scheduling.
            // A bus's own reply margin, except in lockstep, whose margin only keeps the wall clock out of it.
            let busMarginNs =
                bus.replyMarginMs.map { runMarginNs == Self.lockstepRunMarginNs ? runMarginNs : UInt64($0 * 1e6) }
                ?? runMarginNs
            let timing = BusTiming(
                returnDelayMicroseconds: 0, marginNanoseconds: busMarginNs, perReplyNanoseconds: 50_000,
                retries: bus.retries, repliesToWrites: true,
                busyPollNanoseconds: configuration.loop.busyPollNanoseconds)
            let master = BusMaster(transport: transport, protocol: wire, timing: timing)
            let link = try BusLink(
                name: bus.name, master: master, ids: ids, joints: joints, servoDirection: directions,
                slotModels: slotModels, wantedMode: joints.map { jointModes[$0] })
            link.runMarginNs = busMarginNs
            links.append(link)
        }
        buses = links
        guard links.count <= ConcurrentBusTransactions.maximumBuses else {
            throw RobotLoopError(
                "\(configuration.file): \(links.count) buses; one loop reads at most "
                    + "\(ConcurrentBusTransactions.maximumBuses)")
        }
        actErrorsByBus = .allocate(capacity: max(links.count, 1))
        actErrorsByBus.initialize(repeating: 0)
        actDisconnectedByBus = .allocate(capacity: max(links.count, 1))
        actDisconnectedByBus.initialize(repeating: false)
        var io = configuration.loop.busIO
        if links.count <= 1 { io = .sequential } else if io == .threads && simulationClock != nil { io = .poll }
        busIO = io
        switch io {
        case .sequential: busReads = SequentialBusReads(buses: links)
        case .poll: busReads = PolledBusReads(buses: links)
        case .threads:
            // Each worker on a CPU of its own where there are enough, away from the loop's pinned CPU.
            let cpuCount = max(Int(sinew_rt_cpu_count()), 1)
            let first = configuration.loop.cpu.map { $0 + 1 } ?? 0
            busReads = ThreadedBusReads(
                buses: links, fifoPriority: simulationClock == nil ? configuration.loop.priority : nil,
                cpus: links.indices.map { (first + $0) % cpuCount })
        }
        jointSlots = configuration.joints.indices.map { j in
            for (b, link) in links.enumerated() {
                if let slot = link.joints.indices.first(where: { link.joints[$0] == j && link.servoDirection[$0] > 0 })
                {
                    return (b, slot)
                }
            }
            return (-1, -1)
        }

        let guardSetup = try configuration.safetySetup(
            model: model, jointLimits: jointLimits, busNames: links.map(\.name), overrunBudget: overrunBudget,
            commandSourceName: "policy \"\((policy?.typeName ?? configuration.policy.typeName))\"")
        boxLinks = guardSetup.boxLinks
        mimicJoints = model.joints.enumerated().compactMap { i, joint in
            joint.mimic.map { (i, $0.master, $0.multiplier, $0.offset) }
        }
        supervisor = SafetySupervisor(configuration: guardSetup.configuration, emergencyStop: emergencyStop)

        let n = configuration.joints.count
        urdfPositions = .allocate(capacity: max(1, model.dofCount))
        urdfPositions.initialize(repeating: 0)
        targetPositionRad = .allocate(capacity: max(1, n))
        targetPositionRad.initialize(repeating: 0)
        torqueOnAtServo = .allocate(capacity: max(1, n))
        torqueOnAtServo.initialize(repeating: false)
        var frameLinks: [Int] = []
        for frame in chosen.observedFrames {
            guard let link = model.linkIndex(named: frame) else {
                throw RobotLoopError(
                    "policy \"\(chosen.typeName)\" observes frame \"\(frame)\", which is not a link of \(model.file)")
            }
            frameLinks.append(link)
        }
        observedFrameLinks = frameLinks
        self.policy = chosen
        observation = PolicyObservation(jointNames: jointNames, frameNames: chosen.observedFrames)
        command = PolicyCommand(jointCount: n)
        if case .asynchronous(let rateHz) = chosen.execution {
            policyRunner = AsynchronousPolicyRunner(
                policy: chosen, rateHz: rateHz, loopRateHz: configuration.loop.rateHz, jointNames: jointNames,
                frameNames: chosen.observedFrames, lockstep: simulationClock != nil)
        } else {
            policyRunner = nil
        }
        lifecycle = nil
        lifecycle = Lifecycle(node: self)
    }

    deinit {
        busReads.stop()
        urdfPositions.deallocate()
        targetPositionRad.deallocate()
        torqueOnAtServo.deallocate()
        actErrorsByBus.deallocate()
        actDisconnectedByBus.deallocate()
    }

    /// Starts the e-stop sources robot.yaml names (a file whose presence stops the robot, a Unix socket
    /// that stops it on the line `estop`) and SIGUSR1; call before activation. Watchers run on their own
    /// threads and only set a flag the guard stage polls. A source that cannot start refuses the run, unless
    /// robot.yaml says `safety.estop.required: false`: then it is returned as a warning. An e-stop file that
    /// exists already always refuses (remove it to arm).
    @discardableResult
    public func startEmergencyStopSources() throws(RobotLoopError) -> [String] {
        let estop = supervisor.emergencyStop
        let settings = configuration.safety.estop
        var warnings: [String] = []
        func started(_ start: () throws(EmergencyStopError) -> Void) throws(RobotLoopError) {
            do {
                try start()
            } catch {
                if case .filePresent = error { throw RobotLoopError("\(error)") }
                guard settings.required else {
                    warnings.append("\(error) — running without it (safety.estop.required: false)")
                    return
                }
                throw RobotLoopError(
                    "\(error); the robot is not activated without its e-stop "
                        + "(safety.estop.required: false runs without it)")
            }
        }
        try started { () throws(EmergencyStopError) in try estop.enableSignal(SIGUSR1) }
        if let file = settings.file {
            try started { () throws(EmergencyStopError) in try estop.watchFile(atPath: file) }
        }
        if let socket = settings.socket {
            try started { () throws(EmergencyStopError) in try estop.listen(onSocketAt: socket) }
        }
        return warnings
    }

    /// RMS difference between measured and targeted joint positions over the active ticks so far (rad).
    public var trackingRMSRad: Double { Double(bitPattern: trackingRMSBits.load(ordering: .relaxed)) }

    /// The lifecycle state as last seen by the loop (for status lines on other threads).
    public var observedState: LifecycleState {
        LifecycleState(rawValue: lifecycleStateRaw.load(ordering: .relaxed)) ?? .unconfigured
    }

    // MARK: Lifecycle hooks (not real-time, except onEnterSafeState)

    /// Deadline margin of one transaction while configuring (not real-time: be patient with slow USB
    /// adapters and busy machines) and while running (tight: a late reply must not stall the loop).
    static let configureMarginNs: UInt64 = 20_000_000
    public static let defaultRunMarginNs: UInt64 = 1_000_000
    /// In lockstep simulation no reply is ever late in simulated time; the wall clock only measures how busy
    /// the machine is, so deadlines must not depend on it.
    public static let lockstepRunMarginNs: UInt64 = 1_000_000_000
    /// Margin added to each running transaction's wire-time deadline, ns.
    public let runMarginNs: UInt64

    /// What the last configure changed on the servos, one line per setting ("bus "arm" servo 3 (elbow_flex):
    /// Return Delay Time 250 → 0"); empty when every servo was already set as the configuration says.
    public private(set) var configurationChanges: [String] = []

    public func onConfigure() throws(RobotLoopError) {
        configurationChanges = []
        for bus in buses { bus.master.timing.marginNanoseconds = Self.configureMarginNs }
        for bus in buses {
            for (slot, id) in bus.ids.enumerated() {
                let joint = configuration.joints[bus.joints[slot]].name
                let reply: PingReply
                do {
                    reply = try bus.master.ping(id)
                } catch {
                    throw RobotLoopError(
                        "bus \"\(bus.name)\": servo \(id) (joint \"\(joint)\") does not answer: \(error)",
                        location: RobotErrorLocation(bus: bus.name, servoID: Int(id), joint: joint))
                }
                let expected = bus.slotModels[slot]
                guard reply.modelNumber == expected.modelNumber else {
                    throw RobotLoopError(
                        "bus \"\(bus.name)\": servo \(id) (joint \"\(joint)\") is model number \(reply.modelNumber), "
                            + "but the configuration expects a \(expected.name) (\(expected.modelNumber))",
                        location: RobotErrorLocation(bus: bus.name, servoID: Int(id), joint: joint))
                }
                try checkCalibration(bus: bus, slot: slot, reportedModelNumber: reply.modelNumber)
                // Settings live in EEPROM, writable with torque off only.
                try writeRegister(bus, id: id, joint: joint, name: "Torque Enable", value: 0)
                try writeRegister(bus, id: id, joint: joint, name: "Return Delay Time", value: 0)
                // The mode the policy drives the joint in (position unless it commands velocity or effort).
                if let mode = bus.servoModel.operatingModeValue(for: bus.wantedMode[slot]),
                    bus.operatingModeSpec != nil
                {
                    try writeRegister(bus, id: id, joint: joint, name: "Operating Mode", value: mode)
                }
                bus.slotMode[slot] = bus.wantedMode[slot].rawValue
                // The joint's position limits as the servo's own, so the firmware refuses what the
                // supervisor would (a second line of defence). Coupled mirror servos keep theirs.
                let j = bus.joints[slot]
                let limits = supervisor.configuration.joints[j]
                if bus.servoDirection[slot] > 0, limits.positionMinRad.isFinite, limits.positionMaxRad.isFinite,
                    let lowSpec = bus.servoModel.register(named: "Min Position Limit"),
                    let highSpec = bus.servoModel.register(named: "Max Position Limit")
                {
                    let a = mappings[j].counts(forJointPositionRad: limits.positionMinRad)
                    let b = mappings[j].counts(forJointPositionRad: limits.positionMaxRad)
                    let counts = Int64(bus.servoModel.countsPerTurn)
                    // Only ranges the servo can express (one turn, no wrap) are written.
                    if min(a, b) >= 0 && max(a, b) < counts && lowSpec.accepts(min(a, b)) && highSpec.accepts(max(a, b))
                    {
                        try writeRegister(bus, id: id, joint: joint, name: "Min Position Limit", value: min(a, b))
                        try writeRegister(bus, id: id, joint: joint, name: "Max Position Limit", value: max(a, b))
                    }
                }
            }
        }
    }

    /// Sets one setting of a servo: reads it first and writes only when it differs (EEPROM wears, and a
    /// second run should write nothing), then reads it back. Each change is kept in `configurationChanges`.
    func writeRegister(_ bus: BusLink, id: ServoID, joint: String, name: String, value: Int64)
        throws(RobotLoopError)
    {
        guard let spec = bus.servoModel.register(named: name) else { return }
        let before: Int64
        let readBack: Int64
        do {
            before = try readRegister(bus, id: id, spec: spec)
            if before == value { return }
            readBack = try writeAndReadBack(bus, id: id, spec: spec, value: value)
        } catch {
            throw RobotLoopError(
                "bus \"\(bus.name)\": servo \(id) (joint \"\(joint)\"): writing \(name): \(error)",
                location: RobotErrorLocation(bus: bus.name, servoID: Int(id), joint: joint))
        }
        guard readBack == value else {
            throw RobotLoopError(
                "bus \"\(bus.name)\": servo \(id) (joint \"\(joint)\") kept \(name) at \(readBack) after writing \(value)",
                location: RobotErrorLocation(bus: bus.name, servoID: Int(id), joint: joint))
        }
        configurationChanges.append("bus \"\(bus.name)\" servo \(id) (\(joint)): \(name) \(before) → \(value)")
    }

    /// One register's present value.
    private func readRegister(_ bus: BusLink, id: ServoID, spec: RegisterSpec) throws(BusError) -> Int64 {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: spec.size, alignment: 8)
        defer { bytes.deallocate() }
        try bus.master.read(id: id, address: UInt16(spec.address), into: bytes)
        return spec.load(from: UnsafeRawBufferPointer(bytes), at: 0, littleEndian: bus.littleEndian)
    }

    /// Writes one register and reads it back (the value the servo now holds).
    private func writeAndReadBack(_ bus: BusLink, id: ServoID, spec: RegisterSpec, value: Int64) throws(BusError)
        -> Int64
    {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: spec.size, alignment: 8)
        defer { bytes.deallocate() }
        spec.store(value, into: bytes, at: 0, littleEndian: bus.littleEndian)
        try bus.master.write(id: id, address: UInt16(spec.address), data: UnsafeRawBufferPointer(bytes))
        try bus.master.read(id: id, address: UInt16(spec.address), into: bytes)
        return spec.load(from: UnsafeRawBufferPointer(bytes), at: 0, littleEndian: bus.littleEndian)
    }

    public func onCleanup() throws(RobotLoopError) {}

    public func onActivate() throws(RobotLoopError) {
        busReads.start()
        try holdPresentPoseWithTorque()
        imu?.settle(simulationClock: simulationClock)
        try startFromPresentPose()
        for bus in buses { bus.master.timing.marginNanoseconds = bus.runMarginNs }
    }

    /// Reads the present pose, sends it as every servo's goal, then switches torque on: goal first, so
    /// nothing jumps (activation and recovery).
    private func holdPresentPoseWithTorque() throws(RobotLoopError) {
        try restoreControlModes()
        try readPresentPose()
        for bus in buses {
            for slot in 0..<bus.ids.count {
                let j = bus.joints[slot]
                bus.putGoal(mappings[j].counts(forJointPositionRad: supervisor.measuredPositionRad[j]), slot: slot)
            }
            do {
                try bus.master.syncWrite(
                    ids: UnsafeBufferPointer(bus.ids), address: UInt16(bus.goalSpec.address), length: bus.goalSpec.size,
                    data: UnsafeRawBufferPointer(bus.writeBuffer))
            } catch {
                throw RobotLoopError(
                    "bus \"\(bus.name)\": cannot send the start pose: \(error)", location: location(on: bus, of: error))
            }
        }
        try zeroVelocityAndCurrentGoals()
        try setTorque(on: true)
        for j in 0..<configuration.joints.count { supervisor.jointControlMode[j] = controlMode(ofJoint: j) }
    }

    private func readPresentPose() throws(RobotLoopError) {
        for bus in buses {
            do {
                try bus.master.syncRead(
                    ids: UnsafeBufferPointer(bus.ids), address: bus.readAddress, length: bus.readLength,
                    into: bus.readBuffer)
            } catch {
                throw RobotLoopError(
                    "bus \"\(bus.name)\": cannot read the present pose: \(error)",
                    location: location(on: bus, of: error))
            }
            for slot in 0..<bus.ids.count where bus.servoDirection[slot] > 0 {
                let j = bus.joints[slot]
                supervisor.measuredPositionRad[j] = mappings[j].jointPositionRad(
                    counts: bus.value(bus.positionSpec, slot: slot))
            }
        }
    }

    private func startFromPresentPose(recovering: Bool = false) throws(RobotLoopError) {
        observeMeasuredState(timeNs: 0)
        command.hold(observation)
        if let policyRunner {
            guard policyRunner.start(from: observation, command: command, recovering: recovering) else {
                throw RobotLoopError(
                    "policy \"\(policy.typeName)\": its thread is still inside a computation it started before the "
                        + "loop stopped; it cannot be started again in this process")
            }
        } else if recovering {
            policy.recover(from: observation, into: command)
        } else {
            policy.reset(from: observation, into: command)
        }
        supervisor.takeStartCommand(command, targets: targetPositionRad)
        supervisor.rearm()
        pushStartSnapshot(recovering: recovering)
        activatedAtNs = Int64(MonotonicInstant.now().nanoseconds)
        activatedAtSimulatedNs = simulationClock?.nanoseconds ?? 0
        ticksSinceStart = 0
        policyNowNs = 0
        for b in 0..<buses.count {
            actErrorsByBus[b] = 0
            actDisconnectedByBus[b] = false
        }
        trackingSquares = 0
        trackingSamples = 0
    }

    private func setTorque(on: Bool) throws(RobotLoopError) {
        for bus in buses {
            for slot in 0..<bus.ids.count { bus.torqueBuffer[slot] = on ? 1 : 0 }
            do {
                try bus.master.syncWrite(
                    ids: UnsafeBufferPointer(bus.ids), address: UInt16(bus.torqueSpec.address), length: 1,
                    data: UnsafeRawBufferPointer(bus.torqueBuffer))
            } catch {
                throw RobotLoopError(
                    "bus \"\(bus.name)\": cannot switch torque \(on ? "on" : "off"): \(error)",
                    location: location(on: bus, of: error))
            }
        }
        for j in 0..<configuration.joints.count { torqueOnAtServo[j] = on }
    }

    public func onDeactivate() throws(RobotLoopError) {
        stopPolicy()
        try setTorque(on: false)
    }

    /// Tells the policy the loop stopped; an asynchronous one's thread is stopped (a policy stuck in its
    /// computation is left behind, producing nothing the loop reads).
    func stopPolicy() {
        if let policyRunner { policyRunner.stop() } else { policy.deactivate() }
    }

    public func onEnterSafeState(cause: SafetyCause?, jointIndex: Int?) {
        // The act stage applies the supervisor's hold / torque-off outputs from this tick on.
    }

    /// Leaves the safe state. A servo that cannot be cleared (its REBOOT or Torque Enable write fails)
    /// fails the recovery, naming the joints, servos and buses, and the robot stays safe.
    public func onRecover() throws(RobotLoopError) {
        for bus in buses { bus.master.timing.marginNanoseconds = Self.configureMarginNs }
        defer { for bus in buses { bus.master.timing.marginNanoseconds = bus.runMarginNs } }
        var failures: [String] = []
        for bus in buses {
            for slot in 0..<bus.ids.count {
                // A servo that dropped torque on a hardware error needs clearing before it drives again:
                // REBOOT on Dynamixel; a Torque Enable write on Feetech, which has no REBOOT.
                if bus.servoModel.wireProtocol == .dynamixel2 {
                    do {
                        try bus.master.reboot(id: bus.ids[slot])
                    } catch {
                        failures.append("\(servoLabel(bus, slot: slot)): REBOOT failed: \(error)")
                    }
                } else {
                    bus.torqueBuffer[slot] = 0
                }
            }
            if bus.servoModel.wireProtocol != .dynamixel2 {
                do {
                    try bus.master.syncWrite(
                        ids: UnsafeBufferPointer(bus.ids), address: UInt16(bus.torqueSpec.address), length: 1,
                        data: UnsafeRawBufferPointer(bus.torqueBuffer))
                } catch {
                    let servos = (0..<bus.ids.count).map { servoLabel(bus, slot: $0, withBus: false) }
                    failures.append(
                        "bus \"\(bus.name)\": clearing torque of \(servos.joined(separator: ", ")) failed: \(error)")
                }
            }
        }
        if !failures.isEmpty {
            throw RobotLoopError("cannot clear the servos for recovery: " + failures.joined(separator: "; "))
        }
        Thread.sleep(forTimeInterval: 0.05)
        // A servo may take a moment to report its error cleared after the reboot or torque write: wait for a
        // clean read of the pose for up to half a second before switching torque on (the last error is thrown).
        for attempt in 1...10 {
            do throws(RobotLoopError) {
                try readPresentPose()
                break
            } catch {
                if attempt == 10 { throw error }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        for j in 0..<configuration.joints.count { supervisor.hardwareErrorFlags[j] = 0 }
        try holdPresentPoseWithTorque()
        try startFromPresentPose(recovering: true)
    }

    /// How many times shutdown tries to put a servo's torque as configured before it reports the servo.
    public static let shutdownTorqueAttempts = 3

    /// Joints configured to hold keep torque (they carry weight); the others go limp. Each servo's Torque
    /// Enable is read back: one sync write to every servo first, then up to ``shutdownTorqueAttempts`` in
    /// all of individual WRITEs to the servos that did not confirm. Throws, after trying every servo on
    /// every bus, an error naming each joint, servo ID and bus whose torque could not be confirmed, and why.
    public func onShutdown() throws(RobotLoopError) {
        stopPolicy()
        busReads.stop()
        for bus in buses { bus.master.timing.marginNanoseconds = Self.configureMarginNs }
        defer { for bus in buses { bus.master.timing.marginNanoseconds = bus.runMarginNs } }
        var failures = returnHoldServosToPosition()
        for bus in buses {
            for slot in 0..<bus.ids.count {
                let j = bus.joints[slot]
                bus.torqueBuffer[slot] = configuration.joints[j].safeState == .hold ? 1 : 0
            }
            failures += applyTorqueConfirmed(bus)
        }
        if !failures.isEmpty {
            throw RobotLoopError(
                "shutdown could not confirm the torque of every servo: " + failures.joined(separator: "; "))
        }
    }

    /// `servo 3 (joint "elbow_flex") on bus "so101"`.
    /// Where a bus error happened: the bus, and the servo and its joint when the error names one of this bus's.
    private func location(on bus: BusLink, of error: any Error) -> RobotErrorLocation {
        var location = RobotErrorLocation(bus: bus.name)
        if let busError = error as? BusError, busError.servoID != ServoID.broadcast,
            let slot = bus.ids.firstIndex(of: busError.servoID)
        {
            location.servoID = Int(busError.servoID)
            location.joint = configuration.joints[bus.joints[slot]].name
        }
        return location
    }

    private func servoLabel(_ bus: BusLink, slot: Int, withBus: Bool = true) -> String {
        let joint = configuration.joints[bus.joints[slot]].name
        return "servo \(bus.ids[slot]) (joint \"\(joint)\")" + (withBus ? " on bus \"\(bus.name)\"" : "")
    }

    /// Writes `bus.torqueBuffer` (one Torque Enable value per servo) and reads every servo's back: a sync
    /// write first, individual WRITEs for the servos that did not confirm, ``shutdownTorqueAttempts`` in all.
    /// Returns one line per servo that still does not confirm (empty: all did).
    private func applyTorqueConfirmed(_ bus: BusLink) -> [String] {
        let address = UInt16(bus.torqueSpec.address)
        var pending = Array(0..<bus.ids.count)
        var reasons = [String](repeating: "", count: bus.ids.count)
        let value = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
        defer { value.deallocate() }
        for attempt in 1...Self.shutdownTorqueAttempts {
            // What failed in this attempt's write, per servo (a write whose reply was lost may still have
            // been obeyed: the read-back decides).
            var written = [String](repeating: "", count: bus.ids.count)
            if attempt == 1 {
                do {
                    try bus.master.syncWrite(
                        ids: UnsafeBufferPointer(bus.ids), address: address, length: 1,
                        data: UnsafeRawBufferPointer(bus.torqueBuffer))
                } catch {
                    for slot in pending { written[slot] = "sync write failed: \(error); " }
                }
            } else {
                for slot in pending {
                    value[0] = bus.torqueBuffer[slot]
                    do {
                        try bus.master.write(id: bus.ids[slot], address: address, data: UnsafeRawBufferPointer(value))
                    } catch {
                        written[slot] = "write failed: \(error); "
                    }
                }
            }
            var unconfirmed: [Int] = []
            for slot in pending {
                do {
                    try bus.master.read(id: bus.ids[slot], address: address, into: value)
                    if value[0] == bus.torqueBuffer[slot] { continue }
                    reasons[slot] =
                        written[slot] + "Torque Enable reads back \(value[0]), not \(bus.torqueBuffer[slot])"
                } catch {
                    reasons[slot] = written[slot] + "reading Torque Enable back failed: \(error)"
                }
                unconfirmed.append(slot)
            }
            pending = unconfirmed
            // A lost port will not come back between attempts.
            if pending.isEmpty || bus.master.isDisconnected { break }
        }
        for slot in 0..<bus.ids.count where !pending.contains(slot) {
            torqueOnAtServo[bus.joints[slot]] = bus.torqueBuffer[slot] != 0
        }
        func wanted(_ slot: Int) -> String { bus.torqueBuffer[slot] != 0 ? "torque on (hold)" : "torque off" }
        if let e = bus.master.disconnectedErrno, !pending.isEmpty {
            // One line for a dead port: every servo on it failed the same way.
            let port = e == 0 ? "hang-up" : String(cString: strerror(e))
            let servos = pending.map { "\(servoLabel(bus, slot: $0, withBus: false)): \(wanted($0))" }
            return [
                "bus \"\(bus.name)\": port disconnected (\(port)), torque not confirmed for "
                    + servos.joined(separator: ", ")
            ]
        }
        return pending.map { slot in
            "\(servoLabel(bus, slot: slot)): \(wanted(slot)) not confirmed after \(Self.shutdownTorqueAttempts) "
                + "attempts: \(reasons[slot])"
        }
    }

    // MARK: The tick

    public func loopDidStart(_ tick: TickInfo) {
        // The policy's clock starts with the loop: the gap between activation and the first tick is not part
        // of the trajectory (the target stays the start pose until then).
        restartPolicyClock = true
        lifecycleStateRaw.store(lifecycle.state.rawValue, ordering: .relaxed)
    }

    public func sense(_ tick: inout TickInfo) {
        tickIndexNow.store(tick.index, ordering: .relaxed)
        // A sync write that failed in the previous tick's act stage counts here, like a failed read.
        busErrorsThisTick = 0
        failingBusIndex = -1
        busDisconnectedThisTick = false
        for b in 0..<buses.count {
            let errors = actErrorsByBus[b]
            supervisor.busErrorsThisTickByBus[b] = errors
            supervisor.busDisconnectedThisTick[b] = actDisconnectedByBus[b]
            if errors > 0 {
                busErrorsThisTick += errors
                failingBusIndex = b
                if actDisconnectedByBus[b] { busDisconnectedThisTick = true }
            }
            actErrorsByBus[b] = 0
            actDisconnectedByBus[b] = false
        }
        if let clock = simulationClock {
            ticksSinceStart += 1
            tickStartSimulatedNs = activatedAtSimulatedNs + ticksSinceStart * simulatedPeriodNs
            clock.advance(toNanoseconds: tickStartSimulatedNs)
        }
        // The policy's (and the supervisor's) clock: since the loop started, simulated in a lockstep run.
        if restartPolicyClock {
            activatedAtNs = tick.wakeNs
            restartPolicyClock = false
        }
        policyNowNs = tick.wakeNs - activatedAtNs
        if let clock = simulationClock { policyNowNs = Int64(clock.nanoseconds &- activatedAtSimulatedNs) }
        // Every bus's read at once (or one after another, as `loop.bus_io` says); a port already gone fails at
        // once, without a system call on the dead descriptor.
        let waitStart = MonotonicInstant.now().nanoseconds
        busReads.readAll()
        tick.waitNs += Int64(MonotonicInstant.now().nanoseconds - waitStart)
        for b in 0..<buses.count {
            let bus = buses[b]
            for slot in 0..<bus.ids.count { supervisor.readingFresh[bus.joints[slot]] = true }
            if let error = bus.master.transactionError {
                noteBusError(error, bus: b)
                // A failure the bus master pins on one servo counts against that joint's readings (the
                // supervisor names it once its budget is spent); a lost port or anything else counts
                // against the bus.
                if error.isDisconnection || !markFailure(bus, error) {
                    countAgainstBus(b, disconnected: error.isDisconnection)
                }
                // Only the replies that arrived hold this tick's bytes (a hardware or status error still
                // delivers them all): the other servos' joints have no reading this tick.
                for slot in 0..<bus.ids.count where !bus.master.replyArrived(at: slot) {
                    supervisor.readingFresh[bus.joints[slot]] = false
                }
            }
            for slot in 0..<bus.ids.count where bus.servoDirection[slot] > 0 {
                let j = bus.joints[slot]
                guard supervisor.readingFresh[j] else { continue }
                let m = mappings[j]
                supervisor.measuredPositionRad[j] = m.jointPositionRad(counts: bus.value(bus.positionSpec, slot: slot))
                supervisor.measuredVelocityRadPerS[j] = m.jointVelocityRadPerS(
                    raw: bus.value(bus.velocitySpec, slot: slot))
                if let current = bus.currentSpec {
                    supervisor.measuredEffortNm[j] = m.jointEffortNm(currentRaw: bus.value(current, slot: slot))
                }
            }
        }
    }

    /// A failed transaction on bus `b`: counted, remembered for reports, and a lost port published.
    private func noteBusError(_ error: BusError, bus b: Int) {
        busErrorTotal.add(1, ordering: .relaxed)
        lastBusError = error
        if case .disconnected(let e) = error.cause, disconnectedBusIndex.load(ordering: .relaxed) < 0 {
            disconnectionErrno.store(e, ordering: .relaxed)
            disconnectedBusIndex.store(b, ordering: .releasing)
        }
    }

    /// One failure against this tick's bus-error budget of bus `b`.
    private func countAgainstBus(_ b: Int, disconnected: Bool) {
        busErrorsThisTick += 1
        failingBusIndex = b
        supervisor.busErrorsThisTickByBus[b] += 1
        if disconnected {
            busDisconnectedThisTick = true
            supervisor.busDisconnectedThisTick[b] = true
        }
    }

    /// Marks what a failed read means for the joints; returns whether it was pinned on one servo.
    private func markFailure(_ bus: BusLink, _ error: BusError) -> Bool {
        var pinned = false
        for slot in 0..<bus.ids.count where bus.ids[slot] == error.servoID {
            let j = bus.joints[slot]
            pinned = true
            switch error.cause {
            case .hardwareError(let bits), .statusError(let bits):
                supervisor.hardwareErrorFlags[j] = bits == 0 ? 0x80 : bits
            default:
                supervisor.readingFresh[j] = false
            }
        }
        if !pinned {
            for slot in 0..<bus.ids.count { supervisor.readingFresh[bus.joints[slot]] = false }
        }
        return pinned
    }

    public func estimate(_ tick: inout TickInfo) {
        imu?.poll()
        guard !boxLinks.isEmpty || !observedFrameLinks.isEmpty else { return }
        for i in 0..<model.dofCount { urdfPositions[i] = 0 }
        for j in 0..<configuration.joints.count { urdfPositions[urdfIndex[j]] = supervisor.measuredPositionRad[j] }
        for m in mimicJoints { urdfPositions[m.joint] = m.multiplier * urdfPositions[m.master] + m.offset }
        workspace.forwardKinematics(UnsafeBufferPointer(urdfPositions))
        // Index loops: an unspecialised `enumerated()` iterator allocates in a debug build.
        for b in 0..<boxLinks.count {
            let p = workspace.linkPose(boxLinks[b]).translation
            supervisor.framePositionM[3 * b] = p.0
            supervisor.framePositionM[3 * b + 1] = p.1
            supervisor.framePositionM[3 * b + 2] = p.2
        }
        for f in 0..<observedFrameLinks.count {
            let p = workspace.linkPose(observedFrameLinks[f]).translation
            observation.framePositionM[3 * f] = p.0
            observation.framePositionM[3 * f + 1] = p.1
            observation.framePositionM[3 * f + 2] = p.2
        }
    }

    /// Fills the policy's observation from the measured joints and the IMU (frames: the estimate stage).
    @inline(__always) private func observeMeasuredState(timeNs: Int64) {
        observation.timeNs = timeNs
        for j in 0..<configuration.joints.count {
            observation.positionRad[j] = supervisor.measuredPositionRad[j]
            observation.velocityRadPerS[j] = supervisor.measuredVelocityRadPerS[j]
            observation.effortNm[j] = supervisor.measuredEffortNm[j]
        }
        if let imu {
            observation.linkOrientation = imu.linkOrientation
            observation.hasOrientation = imu.publishedSampleCount > 0
        }
    }

    public func decide(_ tick: inout TickInfo) {
        let nowNs = policyNowNs
        observeMeasuredState(timeNs: nowNs)
        if let policyRunner {
            policyRunner.exchange(observation, command)
        } else {
            command.computedForNs = nowNs
            policy.compute(observation, into: command)
        }
        supervisor.takeCommand(command, targets: targetPositionRad)
    }

    public func guardCommands(_ tick: inout TickInfo) {
        // The supervisor runs on the policy's clock (simulated in a lockstep run): the watchdog compares the
        // command's own time with this tick's, and events carry loop time.
        let verdict = supervisor.guardTick(
            SafetyTickInput(
                nowNs: policyNowNs, loopStartNs: 0, lastCommandTimeNs: command.computedForNs,
                busErrorsThisTick: busErrorsThisTick, overrunsInARow: tick.overrunsInARow,
                failingBusIndex: failingBusIndex, busDisconnected: busDisconnectedThisTick))
        if verdict.enteredThisTick {
            lifecycle.enterSafeState(cause: verdict.cause, jointIndex: verdict.jointIndex)
        }
        if tick.shutdownRequested && !supervisor.isSafeStateLatched {
            // SIGINT/SIGTERM: the robot goes to its safe state (hold or torque off per joint) before shutdown.
            supervisor.enterSafeStateWithoutFault()
            lifecycle.enterSafeState(cause: nil, jointIndex: nil)
        }
        lifecycleStateRaw.store(lifecycle.state.rawValue, ordering: .relaxed)
    }

    public func act(_ tick: inout TickInfo) {
        let waitStart = MonotonicInstant.now().nanoseconds
        for b in 0..<buses.count {
            let bus = buses[b]
            var torqueChange = false
            for slot in 0..<bus.ids.count {
                let j = bus.joints[slot]
                let on = supervisor.outputTorqueEnabled[j]
                if on != torqueOnAtServo[j] { torqueChange = true }
                bus.torqueBuffer[slot] = on ? 1 : 0
                let m = mappings[j]
                var counts = m.counts(forJointPositionRad: supervisor.outputPositionRad[j])
                if bus.servoDirection[slot] < 0 {
                    // A coupled second servo mirrors the first about the zero.
                    counts = Int64(2 * m.zeroCounts) - counts
                }
                bus.putGoal(counts, slot: slot)
            }
            if bus.master.isDisconnected {
                // Fail at once on a lost port (no system call); counted like any failed write.
                busErrorTotal.add(1, ordering: .relaxed)
                actErrorsByBus[b] += 1
                actDisconnectedByBus[b] = true
                continue
            }
            do {
                if bus.drivesOtherModes && supervisor.isSafeStateLatched { try switchHoldServosToPosition(bus) }
                try bus.master.syncWrite(
                    ids: UnsafeBufferPointer(bus.ids), address: UInt16(bus.goalSpec.address), length: bus.goalSpec.size,
                    data: UnsafeRawBufferPointer(bus.writeBuffer))
                if bus.drivesOtherModes { try writeOtherModeGoals(bus) }
                if torqueChange {
                    try bus.master.syncWrite(
                        ids: UnsafeBufferPointer(bus.ids), address: UInt16(bus.torqueSpec.address), length: 1,
                        data: UnsafeRawBufferPointer(bus.torqueBuffer))
                    for slot in 0..<bus.ids.count {
                        torqueOnAtServo[bus.joints[slot]] = bus.torqueBuffer[slot] != 0
                    }
                }
            } catch {
                // Commands that did not reach the servos count against the bus-error budget (next tick's
                // guard) like a failed read: a bus that takes no writes cannot be steered.
                noteBusError(error, bus: b)
                actErrorsByBus[b] += 1
                if error.isDisconnection { actDisconnectedByBus[b] = true }
            }
        }
        tick.waitNs += Int64(MonotonicInstant.now().nanoseconds - waitStart)
    }

    public func record(_ tick: inout TickInfo) {
        let recordStart = MonotonicInstant.now().nanoseconds
        recentLateness.append(tick.latenessNs)
        if let recorder, tick.index % recordingDecimation == 0 { pushSnapshot(recorder, tick) }
        if let healthTap, tick.index % healthTap.decimation == 0 { publishHealth(healthTap, tick: tick.index) }
        if lifecycle.state == .active {
            for j in 0..<configuration.joints.count {
                let e = supervisor.measuredPositionRad[j] - targetPositionRad[j]
                trackingSquares += e * e
            }
            trackingSamples += configuration.joints.count
            trackingRMSBits.store(
                (trackingSquares / Double(trackingSamples)).squareRoot().bitPattern, ordering: .relaxed)
        }
        lastRecordStageNs = Int64(MonotonicInstant.now().nanoseconds - recordStart)
    }

    /// Per-bus statistics for reports: transactions, checksum errors, timeouts, retries per servo.
    public func busStatistics() -> [(bus: String, servos: [(id: ServoID, statistics: ServoStatistics)])] {
        buses.map { bus in (bus.name, bus.ids.map { ($0, bus.master.statistics(for: $0)) }) }
    }
}
