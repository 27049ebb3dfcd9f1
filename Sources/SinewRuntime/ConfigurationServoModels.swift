/// The servo models a configuration may name, and the protocol each speaks. This is the one list the
/// configuration checks against; it can later be built from `Hardware/servos/*.json` instead.
public enum ServoModelCatalog {
    public struct Entry: Sendable, Equatable {
        /// Lower-case model name as the vendor writes it, e.g. `xl330-m288`.
        public let name: String
        public let busProtocol: RobotConfiguration.BusProtocol
        /// Model number the servo reports to PING / its model register.
        public let modelNumber: Int
        /// Baud rates of its protocol that this model cannot be set to (bit/s).
        public var unsupportedBaudRates: [Int] = []
    }

    public static let entries: [Entry] = [
        Entry(name: "sts3215", busProtocol: .feetech, modelNumber: 777),
        // The STS3215's table on a 12 V, 50 kg·cm servo (model number from LeRobot's Feetech tables).
        Entry(name: "sts3250", busProtocol: .feetech, modelNumber: 2825),
        // Baud Rate value 7 (4.5 Mbit/s) does not exist on the XL330.
        // The XL330-M077 (Koch leader arms): the XL330-M288's table behind a 77.5:1 gearbox, easy to move by hand.
        Entry(name: "xl330-m077", busProtocol: .dynamixel, modelNumber: 1190, unsupportedBaudRates: [4_500_000]),
        Entry(name: "xl330-m288", busProtocol: .dynamixel, modelNumber: 1200, unsupportedBaudRates: [4_500_000]),
        // The XL430-W250 (Koch follower shoulder): no current sensor, so no current-based modes.
        Entry(name: "xl430-w250", busProtocol: .dynamixel, modelNumber: 1060),
        Entry(name: "xm430-w350", busProtocol: .dynamixel, modelNumber: 1020),
    ]

    public static func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    public static var names: [String] { entries.map(\.name) }
}

extension RobotConfiguration.BusProtocol {
    /// Valid servo IDs (broadcast and reserved values excluded): Dynamixel 2.0 0–252, Feetech 0–253.
    public var servoIDRange: ClosedRange<Int> {
        switch self {
        case .dynamixel: 0...252
        case .feetech: 0...253
        }
    }

    /// Baud rates the protocol's servos can be set to (bit/s).
    public var supportedBaudRates: [Int] {
        switch self {
        case .dynamixel: [9600, 57600, 115_200, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 4_500_000]
        case .feetech: [38400, 57600, 76800, 115_200, 128_000, 250_000, 500_000, 1_000_000]
        }
    }
}
