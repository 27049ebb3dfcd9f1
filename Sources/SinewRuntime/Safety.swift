import Synchronization

/// Why the safety supervisor sent the robot to its safe state.
public enum SafetyCause: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case positionLimit = 0
    case velocityLimit
    case effortLimit
    case stepLimit
    case workspaceLimit
    /// Watchdog: the policy's last output is older than the timeout.
    case staleCommand
    case busErrors
    case servoHardwareError
    case overrun
    case emergencyStop

    /// Name as in JSON output (`safety_events[].cause`).
    public var name: StaticString {
        switch self {
        case .positionLimit: "positionLimit"
        case .velocityLimit: "velocityLimit"
        case .effortLimit: "effortLimit"
        case .stepLimit: "stepLimit"
        case .workspaceLimit: "workspaceLimit"
        case .staleCommand: "staleCommand"
        case .busErrors: "busErrors"
        case .servoHardwareError: "servoHardwareError"
        case .overrun: "overrun"
        case .emergencyStop: "emergencyStop"
        }
    }

    public var description: String { "\(name)" }
}

/// What a joint does in the safe state.
public enum JointSafeStateBehaviour: UInt8, Sendable {
    /// Keep torque on and hold the position measured when the safe state was entered.
    case hold
    /// Torque off (the joint goes limp).
    case torqueOff
}

/// Safety limits of one joint, in joint space (after reducer and direction).
public struct JointSafetyLimits: Sendable, Equatable {
    /// Hard position limits, rad: a measured position outside them is a `positionLimit` fault.
    public var positionMinRad: Double
    public var positionMaxRad: Double
    /// Commands are clamped to `[positionMinRad + margin, positionMaxRad - margin]`, rad.
    public var positionMarginRad: Double
    /// A measured |velocity| above this is a `velocityLimit` fault, rad/s (`.infinity`: no check).
    public var velocityLimitRadPerS: Double
    /// A measured |effort| above this is an `effortLimit` fault, N·m (`.infinity`: no check).
    public var effortLimitNm: Double
    /// Commands change by at most this much per tick, rad (rate limiting, not a fault).
    public var maxStepRadPerTick: Double
    /// A commanded jump larger than this from the previous output (or a non-finite command) is a
    /// `stepLimit` fault, rad (`.infinity`: no check).
    public var stepFaultRadPerTick: Double
    public var safeState: JointSafeStateBehaviour
    /// A joint driven by velocity: its velocity goal changes by at most this much per tick, rad/s (rate
    /// limiting, like `maxStepRadPerTick` for positions: a step in the goal would slam the servo).
    public var maxVelocityStepRadPerSPerTick: Double

    public init(
        positionMinRad: Double, positionMaxRad: Double, positionMarginRad: Double = 0,
        velocityLimitRadPerS: Double = .infinity, effortLimitNm: Double = .infinity,
        maxStepRadPerTick: Double = .infinity, stepFaultRadPerTick: Double = .infinity,
        safeState: JointSafeStateBehaviour = .torqueOff, maxVelocityStepRadPerSPerTick: Double = .infinity
    ) {
        self.maxVelocityStepRadPerSPerTick = maxVelocityStepRadPerSPerTick
        self.positionMinRad = positionMinRad
        self.positionMaxRad = positionMaxRad
        self.positionMarginRad = positionMarginRad
        self.velocityLimitRadPerS = velocityLimitRadPerS
        self.effortLimitNm = effortLimitNm
        self.maxStepRadPerTick = maxStepRadPerTick
        self.stepFaultRadPerTick = stepFaultRadPerTick
        self.safeState = safeState
    }
}

/// An axis-aligned box a named frame's origin must stay in, in the robot's base frame, metres.
public struct WorkspaceBox: Sendable, Equatable {
    public var frameName: String
    public var minM: (x: Double, y: Double, z: Double)
    public var maxM: (x: Double, y: Double, z: Double)

    public init(frameName: String, minM: (x: Double, y: Double, z: Double), maxM: (x: Double, y: Double, z: Double)) {
        self.frameName = frameName
        self.minM = minM
        self.maxM = maxM
    }

    public static func == (a: WorkspaceBox, b: WorkspaceBox) -> Bool {
        a.frameName == b.frameName && a.minM == b.minM && a.maxM == b.maxM
    }
}

/// Everything the supervisor checks, fixed at configure time.
public struct SafetyConfiguration: Sendable, Equatable {
    public var jointNames: [String]
    public var joints: [JointSafetyLimits]
    public var workspaceBoxes: [WorkspaceBox]
    /// Watchdog: the policy's last output may be at most this old, ns (nil: no watchdog).
    public var commandTimeoutNs: Int64?
    /// Consecutive failed bus transactions tolerated (per bus in total, and per joint in ticks without a
    /// fresh reading); one more is a `busErrors` fault.
    public var busErrorBudget: Int
    /// Consecutive overrunning ticks tolerated; one more is an `overrun` fault (nil: no check).
    public var overrunBudget: Int?
    /// Capacity of the event log.
    public var eventCapacity: Int
    /// Where each joint's (first) servo is, so that events name it: its bus ID (-1: unknown) and the index
    /// of its bus in ``busNames`` (-1: unknown). Empty: not known for any joint.
    public var jointServoIDs: [Int]
    public var jointBusIndices: [Int]
    /// The buses' names, for events (``SafetyEvent/busIndex``).
    public var busNames: [String]
    /// What produces the commands the watchdog times (e.g. `policy "trajectory"`), for `staleCommand` events.
    public var commandSourceName: String?

    public init(
        jointNames: [String], joints: [JointSafetyLimits], workspaceBoxes: [WorkspaceBox] = [],
        commandTimeoutNs: Int64? = nil, busErrorBudget: Int = 5, overrunBudget: Int? = nil,
        eventCapacity: Int = 1024, jointServoIDs: [Int] = [], jointBusIndices: [Int] = [], busNames: [String] = [],
        commandSourceName: String? = nil
    ) {
        self.commandSourceName = commandSourceName
        precondition(jointNames.count == joints.count, "one name per joint")
        precondition(jointServoIDs.isEmpty || jointServoIDs.count == joints.count, "one servo ID per joint")
        precondition(jointBusIndices.isEmpty || jointBusIndices.count == joints.count, "one bus per joint")
        self.jointServoIDs = jointServoIDs
        self.jointBusIndices = jointBusIndices
        self.busNames = busNames
        self.jointNames = jointNames
        self.joints = joints
        self.workspaceBoxes = workspaceBoxes
        self.commandTimeoutNs = commandTimeoutNs
        self.busErrorBudget = busErrorBudget
        self.overrunBudget = overrunBudget
        self.eventCapacity = eventCapacity
    }
}

/// One safety event: when, where, why.
public struct SafetyEvent: Sendable {
    /// Seconds since the loop started.
    public var timeSeconds: Double
    public var cause: SafetyCause
    /// Index into `SafetyConfiguration.jointNames`, or -1 when no joint is involved.
    public var jointIndex: Int32
    /// Index into `SafetyConfiguration.workspaceBoxes` for `workspaceLimit`, else -1.
    public var workspaceBoxIndex: Int32
    /// The offending value and the limit it crossed, in the rule's unit (rad, rad/s, N·m, ns, count,
    /// error flags); NaN when not meaningful.
    public var value: Double
    public var limit: Double
    /// A short fixed text: which bound or source.
    public var detail: StaticString
    /// The bus ID of the joint's (first) servo, or -1 when no servo is involved or it is not known.
    public var servoID: Int32
    /// Index into `SafetyConfiguration.busNames`: the joint's bus, or for a bus-wide `busErrors` the bus
    /// that failed; -1 when no bus is involved or it is not known.
    public var busIndex: Int32

    public init(
        timeSeconds: Double, cause: SafetyCause, jointIndex: Int32 = -1, workspaceBoxIndex: Int32 = -1,
        value: Double = .nan, limit: Double = .nan, detail: StaticString = "", servoID: Int32 = -1,
        busIndex: Int32 = -1
    ) {
        self.servoID = servoID
        self.busIndex = busIndex
        self.timeSeconds = timeSeconds
        self.cause = cause
        self.jointIndex = jointIndex
        self.workspaceBoxIndex = workspaceBoxIndex
        self.value = value
        self.limit = limit
        self.detail = detail
    }
}

/// A fixed-capacity, append-only log of safety events: one writer (the loop thread), readers on any
/// thread. Never overwrites (so readers never race the writer); events past capacity are counted.
public final class SafetyEventLog: @unchecked Sendable {
    public let capacity: Int
    private let storage: UnsafeMutablePointer<SafetyEvent>
    private let published = Atomic<Int>(0)
    private let droppedCount = Atomic<Int>(0)

    public init(capacity: Int) {
        self.capacity = max(capacity, 1)
        storage = .allocate(capacity: self.capacity)
    }

    deinit {
        storage.deinitialize(count: published.load(ordering: .acquiring))
        storage.deallocate()
    }

    /// Appends an event (writer thread only; allocation-free). Returns false when the log is full.
    @discardableResult
    public func append(_ event: SafetyEvent) -> Bool {
        let index = published.load(ordering: .relaxed)
        guard index < capacity else {
            droppedCount.add(1, ordering: .relaxed)
            return false
        }
        (storage + index).initialize(to: event)
        published.store(index + 1, ordering: .releasing)
        return true
    }

    /// Events recorded so far (any thread).
    public var count: Int { published.load(ordering: .acquiring) }
    /// Events that did not fit.
    public var dropped: Int { droppedCount.load(ordering: .relaxed) }

    /// The event at `index` (< `count`).
    public subscript(index: Int) -> SafetyEvent {
        precondition(index >= 0 && index < count)
        return storage[index]
    }

    /// A copy of the events (allocates; not on the loop thread).
    public var events: [SafetyEvent] { (0..<count).map { storage[$0] } }

    /// Forgets every event; only while the writer is not running.
    public func removeAll() {
        storage.deinitialize(count: published.load(ordering: .acquiring))
        published.store(0, ordering: .releasing)
        droppedCount.store(0, ordering: .relaxed)
    }
}
