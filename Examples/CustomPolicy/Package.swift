// swift-tools-version: 6.2
// A user's own policy for Sinew, in a package of its own: Sources/CustomPolicy/SineSweepPolicy.swift is the policy
// and its robot.yaml type, main.swift runs it on the simulated SO-101 (see docs/policies.md).
// `swift run --package-path Examples/CustomPolicy` from the checkout; `make test` builds and runs it.
import PackageDescription

let package = Package(
    name: "CustomPolicy",
    dependencies: [
        // Sinew's checkout (named, because a path dependency's identity is its folder's name, which varies).
        .package(name: "Sinew", path: "../..")
    ],
    targets: [
        .executableTarget(
            name: "CustomPolicy",
            dependencies: [
                .product(name: "SinewPolicy", package: "Sinew"),
                .product(name: "SinewRuntime", package: "Sinew"),
                .product(name: "SinewCore", package: "Sinew"),
                .product(name: "SinewKinematics", package: "Sinew"),
                .product(name: "SinewDrivers", package: "Sinew"),
                // The simulator: a program may use it; Sinew's runtime never imports it.
                .product(name: "SinewSim", package: "Sinew"),
            ])
    ],
    swiftLanguageModes: [.v6]
)
