import SinewCore

/// The wire protocol a servo model speaks.
public enum ServoProtocol: String, Sendable, Hashable, CaseIterable {
    /// ROBOTIS Dynamixel Protocol 2.0 (little-endian).
    case dynamixel2 = "dynamixel2"
    /// Feetech STS/SMS series (little-endian, sign-magnitude fields).
    case feetechSTS = "feetech-sts"
    /// Feetech SCS series (big-endian).
    case feetechSCS = "feetech-scs"

    /// Whether multi-byte registers are stored least significant byte first.
    public var isLittleEndian: Bool { self != .feetechSCS }
}

/// Where a register lives: EEPROM values survive power cycles and, on Dynamixel, can only be written
/// with torque off; RAM values reset at power-on.
public enum RegisterArea: String, Sendable, Hashable {
    case eeprom = "EEPROM"
    case ram = "RAM"
}

/// Whether a host may write a register.
public enum RegisterAccess: String, Sendable, Hashable {
    case readOnly = "R"
    case readWrite = "RW"
}

/// How a register's raw bytes map to a signed value.
public enum RegisterEncoding: Sendable, Hashable {
    /// Plain unsigned integer.
    case unsigned
    /// Two's complement over the register's size (Dynamixel).
    case twosComplement
    /// Magnitude in the bits below `signBit`, sign in bit `signBit` (Feetech STS).
    case signMagnitude(signBit: Int)
}

extension RegisterEncoding {
    /// The decoded value of the low `size` bytes of `raw`.
    @inlinable @inline(__always)
    public func decode(raw: UInt32, size: Int) -> Int64 {
        let bits = size * 8
        let masked = bits >= 32 ? UInt64(raw) : UInt64(raw) & ((1 << UInt64(bits)) - 1)
        switch self {
        case .unsigned:
            return Int64(masked)
        case .twosComplement:
            let signBit = UInt64(1) << UInt64(bits - 1)
            return masked & signBit != 0 ? Int64(masked) - Int64(1 << UInt64(bits)) : Int64(masked)
        case .signMagnitude(let signBit):
            let sign = UInt64(1) << UInt64(signBit)
            let magnitude = Int64(masked & (sign - 1))
            return masked & sign != 0 ? -magnitude : magnitude
        }
    }

    /// The raw bits of a decoded value in a `size`-byte field; magnitudes too large are clamped to it.
    @inlinable @inline(__always)
    public func encode(_ value: Int64, size: Int) -> UInt32 {
        let bits = size * 8
        let mask: UInt64 = bits >= 32 ? 0xFFFF_FFFF : (1 << UInt64(bits)) - 1
        switch self {
        case .unsigned, .twosComplement:
            return UInt32(truncatingIfNeeded: UInt64(bitPattern: value) & mask)
        case .signMagnitude(let signBit):
            let sign = UInt64(1) << UInt64(signBit)
            let magnitude = min(value.magnitude, sign - 1)
            return UInt32(truncatingIfNeeded: (value < 0 ? magnitude | sign : magnitude) & mask)
        }
    }
}

/// One entry of a servo's control table.
public struct RegisterSpec: Sendable, Hashable {
    /// Name as the vendor writes it (e.g. "Goal Position"); lookups are by this name.
    public var name: String
    /// Byte address in the control table.
    public var address: Int
    /// Size in bytes: 1, 2 or 4.
    public var size: Int
    public var area: RegisterArea
    public var access: RegisterAccess
    /// Factory default as a decoded (signed) value; nil where the vendor lists none ("-").
    public var defaultValue: Int64?
    /// Physical unit of one count times ``scale`` (e.g. "mA" with scale 2.69); nil when unitless.
    public var unit: String?
    /// Physical value per count.
    public var scale: Double
    public var encoding: RegisterEncoding
    /// Valid range of decoded values, when the vendor gives one.
    public var minimum: Int64?
    public var maximum: Int64?
    /// The only values the register takes, when the vendor lists them (an Operating Mode); nil: any value in
    /// ``minimum``…``maximum``.
    public var allowedValues: [Int64]?
    public var note: String?

    public init(
        name: String, address: Int, size: Int, area: RegisterArea, access: RegisterAccess,
        defaultValue: Int64? = nil, unit: String? = nil, scale: Double = 1, encoding: RegisterEncoding = .unsigned,
        minimum: Int64? = nil, maximum: Int64? = nil, allowedValues: [Int64]? = nil, note: String? = nil
    ) {
        self.name = name
        self.address = address
        self.size = size
        self.area = area
        self.access = access
        self.defaultValue = defaultValue
        self.unit = unit
        self.scale = scale
        self.encoding = encoding
        self.minimum = minimum
        self.maximum = maximum
        self.allowedValues = allowedValues
        self.note = note
    }

    /// The decoded value of raw register bits (the low `size` bytes of `raw`).
    @inlinable
    public func decode(raw: UInt32) -> Int64 { encoding.decode(raw: raw, size: size) }

    /// The raw register bits of a decoded value; magnitudes too large for the field are clamped to it.
    @inlinable
    public func encode(_ value: Int64) -> UInt32 { encoding.encode(value, size: size) }

    /// The decoded value of this register in `bytes` at `offset` (the register's first byte), in the
    /// protocol's byte order. Allocation-free.
    @inlinable
    public func load(from bytes: UnsafeRawBufferPointer, at offset: Int, littleEndian: Bool) -> Int64 {
        var raw: UInt32 = 0
        for k in 0..<size {
            raw |= UInt32(bytes[offset + k]) << UInt32(8 * (littleEndian ? k : size - 1 - k))
        }
        return decode(raw: raw)
    }

    /// Encodes `value` into `bytes` at `offset`, in the protocol's byte order. Allocation-free.
    @inlinable
    public func store(_ value: Int64, into bytes: UnsafeMutableRawBufferPointer, at offset: Int, littleEndian: Bool) {
        let raw = encode(value)
        for k in 0..<size {
            bytes[offset + k] = UInt8(truncatingIfNeeded: raw >> UInt32(8 * (littleEndian ? k : size - 1 - k)))
        }
    }

    /// Whether a decoded value lies within ``minimum``…``maximum`` and, when the register lists them, is one of
    /// its ``allowedValues`` (true when no range is given).
    @inlinable
    public func accepts(_ value: Int64) -> Bool {
        if let minimum, value < minimum { return false }
        if let maximum, value > maximum { return false }
        if let allowedValues, !allowedValues.contains(value) { return false }
        return true
    }
}

/// What a motor, gearbox and thermal model need to simulate one servo. Datasheet figures are at
/// ``ratedVoltageV``; the table's `derivations` field says which figures are estimates.
public struct ServoPhysicalParameters: Sendable, Hashable {
    public var ratedVoltageV: Double
    public var minVoltageV: Double
    public var maxVoltageV: Double
    /// Output-shaft stall torque at the rated voltage, N·m.
    public var stallTorqueNm: Double
    public var stallCurrentA: Double
    /// Output-shaft speed without load at the rated voltage, rev/min.
    public var noLoadSpeedRpm: Double
    public var noLoadCurrentA: Double
    public var standbyCurrentA: Double
    /// Motor turns per output turn.
    public var gearRatio: Double
    /// Terminal resistance including the driver, Ω.
    public var windingResistanceOhm: Double
    /// Motor-side torque constant (= back-EMF constant in V·s/rad), N·m/A.
    public var torqueConstantNmPerA: Double
    /// Rotor inertia on the motor side, kg·m².
    public var rotorInertiaKgM2: Double
    /// Temperature at which the firmware's default limit trips, °C.
    public var temperatureLimitC: Double
    public var minOperatingTemperatureC: Double
    /// Winding-to-ambient thermal resistance, K/W.
    public var thermalResistanceKPerW: Double
    /// Time constant of the one-node thermal model, s.
    public var thermalTimeConstantS: Double
    /// How long the output must stay saturated before the firmware reports overload, s.
    public var overloadDetectTimeS: Double

    public init(
        ratedVoltageV: Double, minVoltageV: Double, maxVoltageV: Double, stallTorqueNm: Double,
        stallCurrentA: Double, noLoadSpeedRpm: Double, noLoadCurrentA: Double, standbyCurrentA: Double,
        gearRatio: Double, windingResistanceOhm: Double, torqueConstantNmPerA: Double, rotorInertiaKgM2: Double,
        temperatureLimitC: Double, minOperatingTemperatureC: Double, thermalResistanceKPerW: Double,
        thermalTimeConstantS: Double, overloadDetectTimeS: Double
    ) {
        self.ratedVoltageV = ratedVoltageV
        self.minVoltageV = minVoltageV
        self.maxVoltageV = maxVoltageV
        self.stallTorqueNm = stallTorqueNm
        self.stallCurrentA = stallCurrentA
        self.noLoadSpeedRpm = noLoadSpeedRpm
        self.noLoadCurrentA = noLoadCurrentA
        self.standbyCurrentA = standbyCurrentA
        self.gearRatio = gearRatio
        self.windingResistanceOhm = windingResistanceOhm
        self.torqueConstantNmPerA = torqueConstantNmPerA
        self.rotorInertiaKgM2 = rotorInertiaKgM2
        self.temperatureLimitC = temperatureLimitC
        self.minOperatingTemperatureC = minOperatingTemperatureC
        self.thermalResistanceKPerW = thermalResistanceKPerW
        self.thermalTimeConstantS = thermalTimeConstantS
        self.overloadDetectTimeS = overloadDetectTimeS
    }

    /// Gearbox efficiency that reconciles the stall figures with the back-EMF constant (0…1).
    public var gearEfficiency: Double {
        let ideal = torqueConstantNmPerA * gearRatio * stallCurrentA
        return ideal > 0 ? min(1, stallTorqueNm / ideal) : 1
    }
}

/// One servo model: identity, control table and physics, as loaded from `Hardware/servos/<model>.json`.
public struct ServoModel: Sendable {
    /// Lower-case model name as the vendor writes it, e.g. "xl330-m288".
    public var name: String
    public var displayName: String
    public var vendor: String
    public var wireProtocol: ServoProtocol
    /// What PING (Dynamixel) or the Model Number register reports.
    public var modelNumber: UInt16
    public var firmwareVersion: UInt8
    /// Encoder counts per output turn.
    public var countsPerTurn: Int
    /// Baud rate of a servo fresh from the factory, bit/s.
    public var defaultBaudRate: Int
    /// Baud Rate register value → bit/s.
    public var baudRates: [Int: Int]
    /// Registers sorted by address.
    public var registers: [RegisterSpec]
    public var physical: ServoPhysicalParameters
    /// Where the figures come from (document names).
    public var sources: [String]
    /// How derived or estimated figures were obtained, by parameter name.
    public var derivations: [String: String]

    public init(
        name: String, displayName: String, vendor: String, wireProtocol: ServoProtocol, modelNumber: UInt16,
        firmwareVersion: UInt8, countsPerTurn: Int, defaultBaudRate: Int, baudRates: [Int: Int],
        registers: [RegisterSpec], physical: ServoPhysicalParameters, sources: [String],
        derivations: [String: String]
    ) {
        self.name = name
        self.displayName = displayName
        self.vendor = vendor
        self.wireProtocol = wireProtocol
        self.modelNumber = modelNumber
        self.firmwareVersion = firmwareVersion
        self.countsPerTurn = countsPerTurn
        self.defaultBaudRate = defaultBaudRate
        self.baudRates = baudRates
        self.registers = registers.sorted { $0.address < $1.address }
        self.physical = physical
        self.sources = sources
        self.derivations = derivations
    }

    /// The register with this vendor name, if the model has one.
    public func register(named name: String) -> RegisterSpec? {
        registers.first { $0.name == name }
    }

    /// One past the highest register byte: the size of the control-table memory.
    public var controlTableSize: Int {
        registers.reduce(0) { max($0, $1.address + $1.size) }
    }

    /// The Baud Rate register value for a bit rate, if the model supports that rate.
    public func baudRateIndex(forBitsPerSecond rate: Int) -> Int? {
        baudRates.first { $0.value == rate }?.key
    }

    /// The control-table memory of a servo fresh from the factory: every register that has a default
    /// holds it, every other byte is zero.
    public func factoryImage() -> [UInt8] {
        var image = [UInt8](repeating: 0, count: controlTableSize)
        image.withUnsafeMutableBytes { bytes in
            for register in registers {
                guard let value = register.defaultValue else { continue }
                register.store(value, into: bytes, at: register.address, littleEndian: wireProtocol.isLittleEndian)
            }
        }
        return image
    }
}

/// Which goal a servo's firmware follows: its Operating Mode, in words every model shares.
public enum ServoControlMode: UInt8, Sendable, CaseIterable {
    /// Goal Position through the firmware's position loop (every model's default).
    case position
    /// Goal Velocity through its velocity loop (Dynamixel velocity mode, Feetech wheel mode).
    case velocity
    /// Goal Current through its current loop: the output torque (Dynamixel current mode).
    case current

    public var word: String {
        switch self {
        case .position: "position"
        case .velocity: "velocity"
        case .current: "current"
        }
    }
}

extension ServoModel {
    /// The Operating Mode register's value for `mode`, or nil when this model cannot run in it (Feetech STS
    /// has no current loop; a model without an Operating Mode register runs in position only). Values from
    /// the ROBOTIS X-series e-manual (0 current, 1 velocity, 3 position) and the Feetech STS memory table
    /// (0 position, 1 wheel/speed).
    public func operatingModeValue(for mode: ServoControlMode) -> Int64? {
        guard register(named: "Operating Mode") != nil else { return mode == .position ? 0 : nil }
        switch (wireProtocol, mode) {
        case (.dynamixel2, .position): return 3
        case (.dynamixel2, .velocity): return register(named: "Goal Velocity") != nil ? 1 : nil
        case (.dynamixel2, .current): return register(named: "Goal Current") != nil ? 0 : nil
        case (_, .position): return 0
        case (_, .velocity): return register(named: "Goal Velocity") != nil ? 1 : nil
        case (_, .current): return nil
        }
    }
}
