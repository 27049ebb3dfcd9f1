// swift-tools-version: 6.1
// Sinew: a real-time control runtime for embodied robots. Layers point down this list (see README.md):
// C shims → SinewCore → SinewKinematics / SinewBus → SinewDrivers → SinewSim / SinewFusion / SinewPolicy
// → SinewRuntime → the `sinew` command.
import PackageDescription

let package = Package(
    name: "Sinew",
    products: [
        .executable(name: "sinew", targets: ["sinew"]),
        .library(name: "SinewKinematics", targets: ["SinewKinematics"]),
        .library(name: "SinewBus", targets: ["SinewBus"]),
        .library(name: "SinewDrivers", targets: ["SinewDrivers"]),
        .library(name: "SinewSim", targets: ["SinewSim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
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
        .target(
            name: "CKinematics",
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
        .target(name: "SinewSim", dependencies: ["SinewCore", "SinewBus", "SinewDrivers"]),
        .executableTarget(
            name: "sinew",
            dependencies: [
                "SinewCore",
                "SinewKinematics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Test-only: counts heap allocations per thread by defining malloc & co. itself.
        .target(name: "CAllocCounter", path: "Tests/CAllocCounter"),
        .testTarget(name: "SinewCoreTests", dependencies: ["SinewCore", "CAllocCounter"]),
        .testTarget(name: "SinewKinematicsTests", dependencies: ["SinewKinematics", "CAllocCounter"]),
        .testTarget(name: "SinewBusTests", dependencies: ["SinewBus", "CAllocCounter"]),
        .testTarget(name: "SinewDriversTests", dependencies: ["SinewDrivers"]),
        .testTarget(
            name: "SinewSimTests", dependencies: ["SinewSim", "SinewBus", "SinewDrivers", "CAllocCounter"]),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
