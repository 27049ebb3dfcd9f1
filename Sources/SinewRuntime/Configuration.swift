import SinewCore

/// A robot as configured by its `robot.yaml`: the body (URDF), the servo buses, how each joint maps to a
/// servo, the loop, the policy, safety limits, recording and an optional IMU. Parsed once, immutable.
///
/// Load with `RobotConfiguration.load(contentsOf:)`; cross-check against the URDF with
/// `check(against:)` (or do both with `RobotConfiguration.loadChecked(contentsOf:)`).
public struct RobotConfiguration: Sendable, Equatable {
    /// Robot name (`name:`; defaults to the name of the directory holding the yaml file).
    public let name: String
    /// Path of the yaml file as given to the loader.
    public let file: String
    /// Absolute or as-given path of the URDF, resolved against the yaml file's directory.
    public let modelPath: String
    public let buses: [Bus]
    /// Joints in configuration order; trajectory arrays and joint-indexed buffers use this order.
    public let joints: [Joint]
    public internal(set) var loop: Loop
    public internal(set) var policy: Policy
    public let safety: Safety
    public let recording: Recording
    /// Metrics and dashboard servers (`telemetry:`); both off unless set here or on the command line.
    public let telemetry: Telemetry
    public let imu: IMU?
    /// The calibration file (`calibration:`, written by `sinew calibrate`), resolved against the yaml file's
    /// directory; nil when the robot runs with the default zero of every servo.
    public let calibrationPath: String?
    /// What only the simulator uses (`simulation:`): nil when robot.yaml has no such section.
    public let simulation: Simulation?
    /// The robot on ROS 2's DDS wire (`ros:`; off unless enabled there or by `sinew run --ros`).
    public internal(set) var ros = ROS()

    public init(
        name: String, file: String, modelPath: String, buses: [Bus], joints: [Joint],
        loop: Loop = Loop(), policy: Policy = .hold,
        safety: Safety = Safety(),
        recording: Recording = Recording(),
        imu: IMU? = nil, calibrationPath: String? = nil, simulation: Simulation? = nil,
        telemetry: Telemetry = Telemetry()
    ) {
        self.telemetry = telemetry
        self.name = name
        self.file = file
        self.modelPath = modelPath
        self.buses = buses
        self.joints = joints
        self.loop = loop
        self.policy = policy
        self.safety = safety
        self.recording = recording
        self.imu = imu
        self.calibrationPath = calibrationPath
        self.simulation = simulation
    }

    public func bus(named name: String) -> Bus? { buses.first { $0.name == name } }

    /// The same robot with another policy (a front end's override, such as `sinew teleop`'s).
    public func replacingPolicy(_ policy: Policy) -> RobotConfiguration {
        var copy = self
        copy.policy = policy
        return copy
    }
    /// The same robot read through `busIO` (`sinew bench loop` compares them; tests).
    public func replacingBusIO(_ busIO: BusIO) -> RobotConfiguration {
        var copy = self
        copy.loop.busIO = busIO
        return copy
    }
    public func jointIndex(named name: String) -> Int? { joints.firstIndex { $0.name == name } }
    /// The joints on one bus, in configuration order, with their index in `joints`.
    public func joints(onBus name: String) -> [(index: Int, joint: Joint)] {
        joints.enumerated().filter { $0.element.bus == name }.map { (index: $0.offset, joint: $0.element) }
    }
}

extension RobotConfiguration {
    /// Wire protocol of a servo bus.
    public enum BusProtocol: String, Sendable, CaseIterable {
        /// ROBOTIS Dynamixel Protocol 2.0.
        case dynamixel
        /// Feetech SCS/STS.
        case feetech
    }

    /// Where a bus is: a serial device, or Sinew's virtual bus (simulation).
    public enum Port: Sendable, Equatable, CustomStringConvertible {
        case virtual
        /// A device path such as `/dev/ttyACM0` or `/dev/serial/by-id/…`.
        case device(String)

        public var description: String {
            switch self {
            case .virtual: "virtual"
            case .device(let path): path
            }
        }
    }

    public struct Bus: Sendable, Equatable {
        public let name: String
        public let busProtocol: BusProtocol
        public let port: Port
        /// bit/s; default 1 000 000.
        public let baudRate: Int
        /// How long past its wire time a reply may come while the loop runs (ms, 0.05–100); nil: the run's
        /// default (1 ms paced). A slow USB adapter or a long cable wants more.
        public let replyMarginMs: Double?
        /// Attempts after a failed transaction within a tick (0–5; default 1).
        public let retries: Int
        /// Where the bus entry starts in the yaml file.
        public let location: SourceLocation

        public init(
            name: String, busProtocol: BusProtocol, port: Port, baudRate: Int = 1_000_000,
            replyMarginMs: Double? = nil, retries: Int = 1, location: SourceLocation = SourceLocation(file: "")
        ) {
            self.name = name
            self.busProtocol = busProtocol
            self.port = port
            self.baudRate = baudRate
            self.replyMarginMs = replyMarginMs
            self.retries = retries
            self.location = location
        }
    }

    /// Gearing between the servo output shaft and the joint: joint angle = servo angle / `ratio`.
    public struct Reducer: Sendable, Equatable {
        /// Servo turns per joint turn (> 0); 1 when the servo drives the joint directly.
        public let ratio: Double
        /// Free play at the joint (rad, ≥ 0).
        public let backlashRad: Double
        /// Torque efficiency servo → joint, in (0, 1].
        public let efficiency: Double

        public init(ratio: Double = 1, backlashRad: Double = 0, efficiency: Double = 1) {
            self.ratio = ratio
            self.backlashRad = backlashRad
            self.efficiency = efficiency
        }
    }

    /// Joint limits from the configuration; nil means "use the URDF's". Units at the joint.
    public struct JointLimits: Sendable, Equatable {
        /// Lower and upper position (rad), lower < upper.
        public let positionRad: (lower: Double, upper: Double)?
        /// Maximum speed (rad/s, > 0).
        public let velocityRadPerS: Double?
        /// Maximum effort (N·m, > 0).
        public let effortNm: Double?
        /// Maximum acceleration a policy plans with (rad/s², > 0); nil: none (the URDF has no such limit).
        public let accelerationRadPerS2: Double?

        public init(
            positionRad: (lower: Double, upper: Double)? = nil, velocityRadPerS: Double? = nil, effortNm: Double? = nil,
            accelerationRadPerS2: Double? = nil
        ) {
            self.positionRad = positionRad
            self.velocityRadPerS = velocityRadPerS
            self.effortNm = effortNm
            self.accelerationRadPerS2 = accelerationRadPerS2
        }

        public static func == (a: Self, b: Self) -> Bool {
            a.positionRad?.lower == b.positionRad?.lower && a.positionRad?.upper == b.positionRad?.upper
                && a.velocityRadPerS == b.velocityRadPerS && a.effortNm == b.effortNm
                && a.accelerationRadPerS2 == b.accelerationRadPerS2
        }
    }

    /// What a joint does in the safe state.
    public enum SafeStateBehaviour: String, Sendable, CaseIterable {
        /// Keep torque on and hold the present position.
        case hold
        /// Drop torque (the joint goes limp).
        case torqueOff = "torque_off"
    }

    /// A second servo on the same joint (for example two servos driving one shoulder), on the same bus and
    /// of the same model as the joint's main servo.
    public struct CoupledServo: Sendable, Equatable {
        public let servoID: Int
        /// +1 if it turns the same way as the main servo for the same joint motion, -1 if mirrored.
        public let direction: Int

        public init(servoID: Int, direction: Int = 1) {
            self.servoID = servoID
            self.direction = direction
        }
    }

    /// How one joint maps to its servo: `joint = direction · servo / reducer.ratio + offsetRad`.
    public struct Joint: Sendable, Equatable {
        /// Name of the joint in the URDF.
        public let name: String
        /// Name of the bus the servo is on.
        public let bus: String
        public let servoID: Int
        /// Servo model name as in `ServoModelCatalog`, e.g. `sts3215`.
        public let servoModel: String
        public let reducer: Reducer
        /// +1 or -1.
        public let direction: Int
        /// Joint position (rad) when the servo reads its zero (after calibration).
        public let offsetRad: Double
        public let limits: JointLimits
        public let safeState: SafeStateBehaviour
        public let coupled: CoupledServo?
        /// Where the joint entry starts in the yaml file.
        public let location: SourceLocation

        public init(
            name: String, bus: String, servoID: Int, servoModel: String, reducer: Reducer = .init(),
            direction: Int = 1, offsetRad: Double = 0, limits: JointLimits = .init(),
            safeState: SafeStateBehaviour = .torqueOff, coupled: CoupledServo? = nil,
            location: SourceLocation = SourceLocation(file: "")
        ) {
            self.name = name
            self.bus = bus
            self.servoID = servoID
            self.servoModel = servoModel
            self.reducer = reducer
            self.direction = direction
            self.offsetRad = offsetRad
            self.limits = limits
            self.safeState = safeState
            self.coupled = coupled
            self.location = location
        }

        /// How far inside its position limits the joint's commands are kept, rad: the safety margin plus half
        /// the reducer's play, since the servo reads its own shaft and the joint may sit that far beyond it.
        public func commandMarginRad(_ safety: Safety) -> Double {
            safety.positionMarginRad + reducer.backlashRad / 2
        }
    }

    /// What the loop does when a tick ends after the next deadline.
    public enum OverrunPolicy: String, Sendable, CaseIterable {
        /// Drop the missed deadlines and wait for the next one on the original grid.
        case skip
        /// Run the missed ticks back to back, at most `catchUpMax` of them, then skip the rest.
        case catchUp = "catch_up"
    }

    /// How the sense stage reads a robot with several buses (robot.yaml `loop.bus_io`). Every way reads each
    /// bus with one sync read under the same deadline and retry rules; they differ in how the buses overlap.
    public enum BusIO: String, Sendable, CaseIterable {
        /// The loop thread sends every bus's request at once and waits for all of them with non-blocking I/O
        /// (one `ppoll` over the buses' ports): the stage takes the slowest bus's time.
        case poll
        /// One I/O thread per bus (pinned, at the loop's priority, woken through a futex): each does its bus's
        /// sync read; the loop thread waits until all are done.
        case threads
        /// One bus after another, as a single-bus loop would: the stage takes the sum of the buses' times. For
        /// comparison (`sinew bench loop` measures it beside the others).
        case sequential
    }

    public struct Loop: Sendable, Equatable {
        /// Tick rate (Hz, > 0); default 500.
        public let rateHz: Double
        /// SCHED_FIFO priority 1–99; default 80.
        public let priority: Int
        /// CPU core to pin the loop thread to; nil = no pinning.
        public let cpu: Int?
        public let overrun: OverrunPolicy
        /// With `catchUp`: most ticks run late back to back (≥ 1); default 3.
        public let catchUpMax: Int
        /// While the loop waits for servo replies it polls without sleeping until this many µs after they
        /// are due (`BusTiming.busyPollNanoseconds`); 0 (the default) sleeps in the kernel. For a loop on an
        /// isolated core: it saves a thread wake-up per bus transaction and burns that core meanwhile.
        public let busyPollUs: Double
        /// How the sense stage's sync reads of several buses overlap; default ``BusIO/poll``.
        public internal(set) var busIO: BusIO

        public init(
            rateHz: Double = 500, priority: Int = 80, cpu: Int? = nil, overrun: OverrunPolicy = .skip,
            catchUpMax: Int = 3, busyPollUs: Double = 0, busIO: BusIO = .poll
        ) {
            self.rateHz = rateHz
            self.priority = priority
            self.cpu = cpu
            self.overrun = overrun
            self.catchUpMax = catchUpMax
            self.busyPollUs = busyPollUs
            self.busIO = busIO
        }

        /// ``busyPollUs`` for `BusTiming.busyPollNanoseconds` and the simulator's servers.
        public var busyPollNanoseconds: UInt64 { UInt64((busyPollUs * 1000).rounded()) }
    }

    /// A joint-space waypoint: reach `positionsRad` (one per configured joint, in `RobotConfiguration.joints`
    /// order) `durationS` seconds after the previous waypoint (the first: after the start pose).
    public struct Waypoint: Sendable, Equatable {
        public let positionsRad: [Double]
        public let durationS: Double
        /// Where the waypoint starts in the yaml file.
        public let location: SourceLocation

        public init(positionsRad: [Double], durationS: Double, location: SourceLocation = SourceLocation(file: "")) {
            self.positionsRad = positionsRad
            self.durationS = durationS
            self.location = location
        }
    }

    public struct Trajectory: Sendable, Equatable {
        public let waypoints: [Waypoint]
        /// Start again from the first waypoint after the last.
        public let loop: Bool

        public init(waypoints: [Waypoint], loop: Bool = false) {
            self.waypoints = waypoints
            self.loop = loop
        }

        /// Sum of all waypoint durations (s): one pass.
        public var durationS: Double { waypoints.reduce(0) { $0 + $1.durationS } }
    }

    /// The policy robot.yaml's `policy:` names: its type and parsed settings (a ``PolicyType`` read them;
    /// ``PolicySettings/makePolicy(in:)`` builds the policy a loop runs). A program can also hand `RobotLoop` a
    /// policy of its own instead.
    public struct Policy: Sendable, Equatable {
        public let settings: any PolicySettings
        /// Where `policy:` is in the yaml file (the file alone when it is absent).
        public let location: SourceLocation

        public init(settings: any PolicySettings, location: SourceLocation = SourceLocation(file: "")) {
            self.settings = settings
            self.location = location
        }

        /// Hold the pose the robot was in when activated. The default.
        public static let hold = Policy(settings: HoldPolicySettings())

        /// A joint-space trajectory through `trajectory`'s waypoints.
        public static func trajectory(_ trajectory: Trajectory) -> Policy { Policy(settings: trajectory) }

        /// The name robot.yaml's `policy.type` gives it.
        public var typeName: String { settings.typeName }

        public static func == (a: Policy, b: Policy) -> Bool { a.settings.isEqual(to: b.settings) }
    }

    /// An axis-aligned box a named frame's origin must stay in, in the URDF root frame (m).
    public struct WorkspaceBox: Sendable, Equatable {
        /// URDF link name.
        public let frame: String
        public let minM: SIMD3<Double>
        public let maxM: SIMD3<Double>
        public let location: SourceLocation

        public init(
            frame: String, minM: SIMD3<Double>, maxM: SIMD3<Double>, location: SourceLocation = SourceLocation(file: "")
        ) {
            self.frame = frame
            self.minM = minM
            self.maxM = maxM
            self.location = location
        }
    }

    /// External emergency-stop sources: the loop goes to the safe state when `file` exists, or when a client
    /// sends the line `estop` on the Unix socket at `socket`.
    public struct EmergencyStop: Sendable, Equatable {
        public let file: String?
        public let socket: String?
        /// Whether a configured source that cannot start refuses activation (default true); false lets the
        /// robot run without it, with a warning.
        public let required: Bool

        public init(file: String? = nil, socket: String? = nil, required: Bool = true) {
            self.file = file
            self.socket = socket
            self.required = required
        }
    }

    public struct Safety: Sendable, Equatable {
        /// Commands are kept this far inside the position limits (rad, ≥ 0); default 0.02.
        public let positionMarginRad: Double
        /// Fraction of each joint's velocity limit allowed, in (0, 1]; default 1.
        public let velocityLimitScale: Double
        /// Largest change of a position command in one tick (rad, > 0); default 0.05.
        public let maxStepRad: Double
        public let workspace: [WorkspaceBox]
        /// A command older than this goes to the safe state (ms, > 0); default 50.
        public let watchdogMs: Double
        /// Consecutive failed bus transactions tolerated before the safe state (≥ 1); default 5.
        public let busErrorBudget: Int
        public let estop: EmergencyStop

        public init(
            positionMarginRad: Double = 0.02, velocityLimitScale: Double = 1, maxStepRad: Double = 0.05,
            workspace: [WorkspaceBox] = [], watchdogMs: Double = 50, busErrorBudget: Int = 5,
            estop: EmergencyStop = .init()
        ) {
            self.positionMarginRad = positionMarginRad
            self.velocityLimitScale = velocityLimitScale
            self.maxStepRad = maxStepRad
            self.workspace = workspace
            self.watchdogMs = watchdogMs
            self.busErrorBudget = busErrorBudget
            self.estop = estop
        }
    }

    /// How an MCAP recording writes its joint states: `json` (every field for Foxglove), or `ros2` (also
    /// `sensor_msgs/msg/JointState` in CDR, for rosbag2's tools).
    public enum RecordingProfile: String, Sendable, CaseIterable {
        case json, ros2
    }

    /// How an MCAP recording's chunks are compressed.
    public enum RecordingCompression: String, Sendable, CaseIterable {
        case zstd, none
    }

    public struct Recording: Sendable, Equatable {
        public let enabled: Bool
        /// Output path as written (relative paths are relative to the working directory): a directory (the file
        /// `<robot>-<date>.mcap` inside it), a `.mcap` file, or a `.csv` file; nil = the runtime's default.
        public let path: String?
        /// Record every n-th tick (≥ 1); default 1.
        public let decimation: Int
        public let profile: RecordingProfile
        public let compression: RecordingCompression

        public init(
            enabled: Bool = false, path: String? = nil, decimation: Int = 1, profile: RecordingProfile = .json,
            compression: RecordingCompression = .zstd
        ) {
            self.enabled = enabled
            self.path = path
            self.decimation = decimation
            self.profile = profile
            self.compression = compression
        }
    }

    /// Where the running robot can be watched (`telemetry:`): Prometheus metrics and the web dashboard, each
    /// off when nil. Both require the token of `token_file` (or one generated at start).
    public struct Telemetry: Sendable, Equatable {
        /// `listen`: the metrics endpoint (`/metrics`).
        public let metrics: ListenAddress?
        /// `dashboard`: the dashboard's page and socket.
        public let dashboard: ListenAddress?
        /// `token_file`, resolved against robot.yaml's directory.
        public let tokenFile: String?

        public init(metrics: ListenAddress? = nil, dashboard: ListenAddress? = nil, tokenFile: String? = nil) {
            self.metrics = metrics
            self.dashboard = dashboard
            self.tokenFile = tokenFile
        }
    }

    /// An inertial measurement unit rigidly mounted on a link.
    public struct IMU: Sendable, Equatable {
        public let port: Port
        /// Driver/protocol name, lower-case (default `virtual`); checked by the driver layer.
        public let imuProtocol: String
        /// URDF link the IMU is mounted on.
        public let link: String
        /// Pose of the IMU frame in the link frame: translation (m) and roll-pitch-yaw (rad, fixed axes x-y-z).
        public let mountingXYZ: SIMD3<Double>
        public let mountingRPY: SIMD3<Double>
        /// Sample rate (Hz, > 0); default 100.
        public let rateHz: Double
        /// Serial line rate of a device port, bit/s; default 921600, what MAVLink IMU boards commonly stream at
        /// (HIGHRES_IMU at 400 Hz needs about 300 kbit/s).
        public let baudRate: Int
        public let location: SourceLocation

        /// The protocols an IMU may speak: MAVLink 2 (HIGHRES_IMU or SCALED_IMU), or `virtual`, the simulator's
        /// IMU (which speaks MAVLink 2 too).
        public static let protocols = ["mavlink", "virtual"]
        /// Serial line rates a device port can be set to, bit/s (the Linux termios rates from 9600 up).
        public static let baudRates = [
            9_600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 500_000, 576_000, 921_600, 1_000_000,
            1_152_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000, 3_500_000, 4_000_000,
        ]

        public init(
            port: Port, imuProtocol: String = "virtual", link: String, mountingXYZ: SIMD3<Double> = .zero,
            mountingRPY: SIMD3<Double> = .zero, rateHz: Double = 100, baudRate: Int = 921_600,
            location: SourceLocation = SourceLocation(file: "")
        ) {
            self.port = port
            self.imuProtocol = imuProtocol
            self.link = link
            self.mountingXYZ = mountingXYZ
            self.mountingRPY = mountingRPY
            self.rateHz = rateHz
            self.baudRate = baudRate
            self.location = location
        }
    }

    /// Settings only a simulated robot uses; the runtime ignores them.
    public struct Simulation: Sendable, Equatable {
        /// `motion:`, resolved against the yaml file's directory: a file of joint angles over time that a hand
        /// moves the simulated arm's joints along (a leader arm a person holds); nil when none is given.
        public let motionPath: String?
        /// That file, read and checked when robot.yaml was loaded (its columns are configured joints).
        public let motion: JointMotion?
        public let location: SourceLocation

        public init(
            motionPath: String? = nil, motion: JointMotion? = nil, location: SourceLocation = SourceLocation(file: "")
        ) {
            self.motionPath = motionPath
            self.motion = motion
            self.location = location
        }
    }
}
