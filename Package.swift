// swift-tools-version: 6.2
// Sinew: a real-time control runtime for embodied robots. Layers point down this list (see README.md):
// C shims → SinewCore → SinewKinematics / SinewBus → SinewDrivers / SinewFusion → SinewSim
// → SinewPolicy (the `Policy` protocol, the built-in policies, the asynchronous runner) → SinewRuntime → the
// `sinew` command.
import PackageDescription

let package = Package(
    name: "Sinew",
    products: [
        .executable(name: "sinew", targets: ["sinew"]),
        // Value types the other products' public API uses (SourceLocation of configuration errors, RigidTransform).
        .library(name: "SinewCore", targets: ["SinewCore"]),
        .library(name: "SinewKinematics", targets: ["SinewKinematics"]),
        .library(name: "SinewBus", targets: ["SinewBus"]),
        .library(name: "SinewDrivers", targets: ["SinewDrivers"]),
        .library(name: "SinewSim", targets: ["SinewSim"]),
        .library(name: "SinewPolicy", targets: ["SinewPolicy"]),
        .library(name: "SinewRuntime", targets: ["SinewRuntime"]),
        .library(name: "SinewRecording", targets: ["SinewRecording"]),
        .library(name: "SinewTwin", targets: ["SinewTwin"]),
        .library(name: "SinewROS", targets: ["SinewROS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // Telemetry (SinewTelemetry): metrics through swift-metrics into a Prometheus registry, and the dashboard's
        // HTTP and WebSocket server.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CSerialPort",
            pkgConfig: "libserialport",
            providers: [.apt(["libserialport-dev"])]
        ),
        .systemLibrary(
            name: "CEigen",
            pkgConfig: "eigen3",
            providers: [.apt(["libeigen3-dev"])]
        ),
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .target(
            name: "CKinematics",
            dependencies: ["CEigen"],
            cxxSettings: [
                .define("NDEBUG", .when(configuration: .release)),
                .define("EIGEN_NO_DEBUG", .when(configuration: .release)),
                .unsafeFlags(["-O3", "-fno-math-errno"], .when(configuration: .release)),
            ]
        ),
        // The `mlp` policy's feed-forward network: float64 over Eigen, no allocation per evaluation.
        .target(
            name: "CPolicyNetwork",
            dependencies: ["CEigen"],
            cxxSettings: [
                .define("NDEBUG", .when(configuration: .release)),
                .define("EIGEN_NO_DEBUG", .when(configuration: .release)),
                .unsafeFlags(["-O3", "-fno-math-errno"], .when(configuration: .release)),
            ]
        ),
        .target(name: "SinewCore"),
        .target(name: "SinewKinematics", dependencies: ["SinewCore", "CKinematics"]),
        // termios / pty / ppoll / serial ioctl helpers that Swift's Glibc module does not expose.
        .target(name: "CSinewSystem"),
        .target(name: "SinewBus", dependencies: ["SinewCore", "CSerialPort", "CSinewSystem"]),
        .target(name: "SinewDrivers", dependencies: ["SinewCore"]),
        .target(
            name: "SinewSim",
            dependencies: [
                "SinewCore", "SinewKinematics", "SinewBus", "SinewDrivers", "SinewFusion", "CSinewSystem",
            ],
            // The simulator's servos, bus and physics are classes whose stored properties every physics step reads
            // and writes; Swift's run-time exclusivity checks on them cost a fifth of a lockstep run (`sinew bench
            // sim`). Single-threaded by design (a VirtualBus is used from one thread), so the compile-time checks
            // stay and the run-time ones go, in release builds of the simulator only.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),
        .target(name: "SinewFusion", dependencies: ["SinewCore"]),
        // MCAP (mcap.dev) writer, reader and repair for the flight recorder, and the ROS 2 CDR messages it can carry.
        .target(name: "SinewRecording", dependencies: ["SinewCore", "CZstd"]),
        // Real-time system calls Swift cannot see (GNU _np affinity, sched_getcpu, prctl timer slack), the
        // async-signal-safe signal flags, and the bare C timer loop used as the in-run baseline.
        .target(name: "CRealtime"),
        // TLS for the remote-policy websocket (wss://): a thin C client over the system's OpenSSL (libssl-dev).
        .target(name: "CSinewTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        // Cyclone DDS (Debian's cyclonedds-dev): the ROS 2 message types idlc generated from idl/ros_messages.idl
        // (`make ros-idl`; the output is committed), a sertype that hands samples over as their bytes, and a thin API.
        .target(
            name: "CSinewDDS", exclude: ["idl"], cSettings: [.define("DDS_NDEBUG")],
            linkerSettings: [.linkedLibrary("ddsc")]),
        .target(
            name: "SinewPolicy",
            dependencies: ["SinewCore", "SinewKinematics", "SinewFusion", "CPolicyNetwork", "CSinewTLS"]),
        .target(
            name: "SinewRuntime",
            dependencies: [
                "SinewCore", "SinewKinematics", "SinewBus", "SinewDrivers", "SinewFusion", "SinewPolicy",
                "SinewRecording",
                "CRealtime",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // The digital twin: tasks run on the simulator in lockstep episodes with domain randomisation (`sinew sim
        // eval`, `sinew record`). The one library where the runtime and the simulator meet, through the bus bytes.
        .target(
            name: "SinewTwin",
            dependencies: [
                "SinewCore", "SinewKinematics", "SinewBus", "SinewDrivers", "SinewFusion", "SinewSim", "SinewPolicy",
                "SinewRuntime", "SinewRecording",
            ]),
        // Seeing a running robot: Prometheus metrics at /metrics and the live dashboard (HTTP + WebSocket, the
        // page's static files embedded), both fed by a RecordingSink on the recorder's thread, off the tick.
        .target(
            name: "SinewTelemetry",
            dependencies: [
                "SinewRuntime", "SinewKinematics",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ],
            resources: [.embedInCode("Web")]
        ),
        // ROS 2 on the DDS wire (Cyclone DDS): the robot's topics fed from the recorder's thread, commands into the
        // policy layer and the e-stop sources.
        .target(
            name: "SinewROS",
            dependencies: ["SinewCore", "SinewKinematics", "SinewPolicy", "SinewRuntime", "CSinewDDS"]),
        .executableTarget(
            name: "sinew",
            dependencies: [
                "SinewTwin",
                "SinewTelemetry",
                "SinewROS",
                "SinewRecording",
                "SinewCore",
                "SinewKinematics",
                "SinewFusion",
                "SinewBus",
                "SinewDrivers",
                "SinewSim",
                "SinewRuntime",
                "SinewPolicy",
                "CRealtime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "sinew-bench-estimation", dependencies: ["SinewFusion"], path: "Benchmarks/EstimationBench"),
        // The `mlp` policy's inference latency as JSON, for Benchmarks/mlp/compare.py (`make bench-mlp`).
        .executableTarget(name: "sinew-bench-mlp", dependencies: ["SinewPolicy"], path: "Benchmarks/MLPBench"),
        // The MCAP writer's throughput (messages/s, MB/s) uncompressed and with zstd, beside a plain write() of the
        // same bytes (`swift run -c release sinew-bench-mcap`).
        .executableTarget(name: "sinew-bench-mcap", dependencies: ["SinewRecording"], path: "Benchmarks/MCAPBench"),
        // The parsers of outside input under libFuzzer (`make fuzz`), or replaying a corpus (`make test`).
        .executableTarget(
            name: "sinew-fuzz",
            dependencies: [
                "SinewCore", "SinewRuntime", "SinewKinematics", "SinewPolicy", "SinewRecording", "SinewSim", "SinewROS",
                "SinewTwin", "CRealtime",
            ],
            path: "Fuzz/ParserFuzz"),
        // Test-only: counts heap allocations per thread by defining malloc & co. itself.
        .target(name: "CAllocCounter", path: "Tests/CAllocCounter"),
        // Test-only: helpers more than one test target needs (running processes, the Python environment).
        .target(name: "SinewTestSupport", path: "Tests/SinewTestSupport"),
        .testTarget(name: "SinewCoreTests", dependencies: ["SinewCore", "CAllocCounter"]),
        .testTarget(name: "SinewCLITests", dependencies: ["sinew", "SinewBus", "SinewCore", "SinewTestSupport"]),
        .testTarget(
            name: "SinewKinematicsTests",
            dependencies: ["SinewCore", "SinewKinematics", "CAllocCounter", "SinewTestSupport"]),
        .testTarget(name: "SinewFusionTests", dependencies: ["SinewFusion", "CAllocCounter", "SinewTestSupport"]),
        .testTarget(name: "SinewBusTests", dependencies: ["SinewBus", "CAllocCounter"]),
        .testTarget(name: "SinewDriversTests", dependencies: ["SinewDrivers"]),
        .testTarget(
            name: "SinewRecordingTests", dependencies: ["SinewRecording", "CAllocCounter", "SinewTestSupport"]),
        .testTarget(
            name: "SinewSimTests",
            dependencies: [
                "SinewSim", "SinewKinematics", "SinewBus", "SinewDrivers", "SinewFusion", "CAllocCounter",
                "SinewTestSupport",
            ]),
        .testTarget(
            name: "SinewTelemetryTests", dependencies: ["SinewTelemetry", "SinewRuntime", "SinewTestSupport"]),
        .testTarget(name: "SinewRuntimeTests", dependencies: ["SinewRuntime", "SinewPolicy", "CAllocCounter"]),
        .testTarget(
            name: "SinewROSTests",
            dependencies: ["SinewROS", "SinewRuntime", "SinewPolicy", "CSinewDDS", "CAllocCounter", "SinewTestSupport"]),
        .testTarget(name: "SinewPolicyTests", dependencies: ["SinewPolicy", "CAllocCounter", "SinewTestSupport"]),
        // Tasks in lockstep episodes on the simulated robot, with domain randomisation (SinewTwin).
        .testTarget(
            name: "SinewTwinTests",
            dependencies: [
                "SinewTwin", "SinewRuntime", "SinewPolicy", "SinewDrivers", "CAllocCounter", "SinewTestSupport",
            ]),
        // The loop end to end on the simulator: the runtime and the simulator meet only through the bus bytes.
        .testTarget(
            name: "SinewLoopTests",
            dependencies: [
                "SinewRuntime", "SinewPolicy", "SinewSim", "SinewBus", "SinewDrivers", "SinewKinematics", "SinewFusion",
                "SinewRecording", "SinewROS", "CAllocCounter",
            ]),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
