import Foundation
import SinewDrivers

/// Hardware faults a virtual servo can develop, independent of how each protocol reports them.
public struct ServoFault: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Input voltage outside the Min/Max Voltage Limit registers.
    public static let inputVoltage = ServoFault(rawValue: 1 << 0)
    /// Winding temperature above the Temperature Limit register.
    public static let overheating = ServoFault(rawValue: 1 << 1)
    /// Output held near stall for longer than the model's overload time.
    public static let overload = ServoFault(rawValue: 1 << 2)
    /// Current above the protection current (Feetech).
    public static let overcurrent = ServoFault(rawValue: 1 << 3)
}

/// The outcome of a host access to the control table, before protocol-specific encoding.
public enum AccessOutcome: Sendable, Equatable {
    case ok
    /// A value outside the register's min/max.
    case dataRange
    /// Data that ends or starts inside a multi-byte register, or runs past the table.
    case dataLength
    /// A value beyond a limit register (e.g. Goal Current above Current Limit).
    case dataLimit
    /// Read-only register, or EEPROM while torque is on.
    case accessError
    /// The servo cannot do it now (e.g. torque on while a hardware error shuts it down).
    case resultFail
}

/// Where a register's value sits and how it is coded: a trivial value (no reference inside), so that the
/// firmware's register reads of every physics step copy no reference-counted storage. Size 0: no register.
struct RegisterCodec {
    var address: Int = 0
    var size: Int = 0
    var encoding: RegisterEncoding = .unsigned
}

/// A register's shape, without strings, for the simulation's inner loops.
struct RegisterLayout {
    var address: Int
    var size: Int
    var area: RegisterArea
    var access: RegisterAccess
    var encoding: RegisterEncoding
    var minimum: Int64?
    var maximum: Int64?
    var allowedValues: [Int64]?

    init(_ spec: RegisterSpec) {
        address = spec.address
        size = spec.size
        area = spec.area
        access = spec.access
        encoding = spec.encoding
        minimum = spec.minimum
        maximum = spec.maximum
        allowedValues = spec.allowedValues
    }

    @inline(__always)
    func decode(raw: UInt32) -> Int64 { encoding.decode(raw: raw, size: size) }

    @inline(__always)
    func encode(_ value: Int64) -> UInt32 { encoding.encode(value, size: size) }

    @inline(__always)
    func accepts(_ value: Int64) -> Bool {
        if let minimum, value < minimum { return false }
        if let maximum, value > maximum { return false }
        if let allowedValues, !allowedValues.contains(value) { return false }
        return true
    }
}

/// Addresses of the registers the simulation drives; -1 where a model has none.
struct RegisterMap {
    var id = -1, baudRate = -1, returnDelay = -1, operatingMode = -1, driveMode = -1, homingOffset = -1
    var temperatureLimit = -1, maxVoltage = -1, minVoltage = -1, pwmLimit = -1, currentLimit = -1
    var velocityLimit = -1, maxPosition = -1, minPosition = -1, shutdown = -1
    var torqueEnable = -1, statusReturnLevel = -1, registeredInstruction = -1, hardwareErrorStatus = -1
    var velocityI = -1, velocityP = -1, positionD = -1, positionI = -1, positionP = -1
    var goalPWM = -1, goalCurrent = -1, goalVelocity = -1, profileAcceleration = -1, profileVelocity = -1
    var busWatchdog = -1
    var goalPosition = -1, realtimeTick = -1, moving = -1, movingStatus = -1, movingThreshold = -1
    var presentPWM = -1, presentCurrent = -1, presentVelocity = -1, presentPosition = -1
    var velocityTrajectory = -1, positionTrajectory = -1, presentVoltage = -1, presentTemperature = -1
    // Feetech
    var maxTorque = -1, unloadingCondition = -1, overloadTorque = -1, protectionTime = -1
    var protectionCurrent = -1, overcurrentTime = -1, acceleration = -1, goalTime = -1, torqueLimit = -1
    var lock = -1, presentLoad = -1, status = -1, goalPosition2 = -1
    /// Dynamixel indirect addressing, as the table lays it out (XM430: two banks of 28; XL330: one of 20):
    /// per bank, the first Indirect Data address, how many there are, and the first Indirect Address register.
    var indirectData1 = -1, indirectCount1 = 0, indirectAddress1 = -1
    var indirectData2 = -1, indirectCount2 = 0, indirectAddress2 = -1

    init(_ model: ServoModel) {
        func a(_ name: String) -> Int { model.register(named: name)?.address ?? -1 }
        // Runs of "Indirect Data N" at consecutive addresses whose "Indirect Address N" registers are
        // consecutive too.
        var banks: [(data: Int, count: Int, address: Int)] = []
        var n = 1
        while let data = model.register(named: "Indirect Data \(n)"),
            let address = model.register(named: "Indirect Address \(n)")
        {
            if let last = banks.last, data.address == last.data + last.count,
                address.address == last.address + 2 * last.count
            {
                banks[banks.count - 1].count += 1
            } else {
                banks.append((data.address, 1, address.address))
            }
            n += 1
        }
        if banks.count > 0 { (indirectData1, indirectCount1, indirectAddress1) = banks[0] }
        if banks.count > 1 { (indirectData2, indirectCount2, indirectAddress2) = banks[1] }
        id = a("ID")
        baudRate = a("Baud Rate")
        returnDelay = a("Return Delay Time")
        operatingMode = a("Operating Mode")
        driveMode = a("Drive Mode")
        homingOffset = a("Homing Offset")
        temperatureLimit = a("Temperature Limit")
        maxVoltage = a("Max Voltage Limit")
        minVoltage = a("Min Voltage Limit")
        pwmLimit = a("PWM Limit")
        currentLimit = a("Current Limit")
        velocityLimit = a("Velocity Limit")
        maxPosition = a("Max Position Limit")
        minPosition = a("Min Position Limit")
        shutdown = a("Shutdown")
        torqueEnable = a("Torque Enable")
        statusReturnLevel = a("Status Return Level")
        registeredInstruction = a("Registered Instruction")
        hardwareErrorStatus = a("Hardware Error Status")
        velocityI = a("Velocity I Gain")
        velocityP = a("Velocity P Gain")
        positionD = a("Position D Gain")
        positionI = a("Position I Gain")
        positionP = a("Position P Gain")
        goalPWM = a("Goal PWM")
        goalCurrent = a("Goal Current")
        goalVelocity = a("Goal Velocity")
        profileAcceleration = a("Profile Acceleration")
        profileVelocity = a("Profile Velocity")
        goalPosition = a("Goal Position")
        realtimeTick = a("Realtime Tick")
        busWatchdog = a("Bus Watchdog")
        moving = a("Moving")
        movingStatus = a("Moving Status")
        movingThreshold = a("Moving Threshold")
        presentPWM = a("Present PWM")
        presentCurrent = a("Present Current")
        presentVelocity = a("Present Velocity")
        presentPosition = a("Present Position")
        velocityTrajectory = a("Velocity Trajectory")
        positionTrajectory = a("Position Trajectory")
        presentVoltage = model.register(named: "Present Input Voltage")?.address ?? a("Present Voltage")
        presentTemperature = a("Present Temperature")
        maxTorque = a("Max Torque Limit")
        unloadingCondition = a("Unloading Condition")
        overloadTorque = a("Overload Torque")
        protectionTime = a("Protection Time")
        protectionCurrent = a("Protection Current")
        overcurrentTime = a("Over Current Protection Time")
        acceleration = a("Acceleration")
        goalTime = a("Goal Time")
        torqueLimit = a("Torque Limit")
        lock = a("Lock")
        presentLoad = a("Present Load")
        status = a("Status")
        goalPosition2 = a("Goal Position 2")
        if positionP < 0 { positionP = a("P Coefficient") }
        if positionD < 0 { positionD = a("D Coefficient") }
        if positionI < 0 { positionI = a("I Coefficient") }
        if velocityP < 0 { velocityP = a("Velocity P Coefficient") }
        if velocityI < 0 { velocityI = a("Velocity I Coefficient") }
    }
}

/// One simulated servo: a control-table memory initialised from the model's factory defaults, the
/// firmware's servo controller, and a DC motor + gearbox + thermal model. Protocol framing lives in the
/// ``VirtualBus``; this type answers register accesses and produces output torque.
///
/// Not thread-safe: owned by one bus, used on its thread.
public final class VirtualServo {
    public let model: ServoModel
    public let isDynamixel: Bool
    let map: RegisterMap
    let tableSize: Int
    /// Live control table.
    let memory: UnsafeMutablePointer<UInt8>
    /// What survives a power cycle: the EEPROM area as last persisted.
    var persistedImage: [UInt8]
    let factoryImage: [UInt8]
    /// Register index covering each address, -1 for gaps.
    let registerAt: [Int16]
    /// The model's registers without their names and notes: what the hot path reads, free of ARC traffic.
    let layout: [RegisterLayout]
    /// For each address of the table, the codec of the register covering it (size 0 in gaps), in memory of
    /// its own: what ``value(_:)`` and ``setValue(_:_:)`` read on every physics step, one load per register.
    let codecAt: UnsafeMutableBufferPointer<RegisterCodec>
    /// Whether the physics moved the shaft since the present-value registers were last written.
    var presentRegistersStale = false
    let littleEndian: Bool
    let countsPerRad: Double
    /// mA per count of the current registers (XM430: 2.69, XL330: 1, STS: 6.5).
    let milliampsPerCurrentUnit: Double

    public var motor: DCMotorGearModel
    public var thermal: ThermalModel
    /// Supply voltage at the servo's connector, V.
    public var supplyVoltageV: Double

    /// The ID the servo answers to on the bus; follows the ID register after the reply that changed it.
    public internal(set) var busID: UInt8
    /// The bit rate the servo listens at; follows the Baud Rate register after the reply that changed it.
    public internal(set) var busBaudRate: Int
    /// Host WRITEs that touched the EEPROM area (a real servo's EEPROM wears out; configure should write it only
    /// when a setting differs).
    public internal(set) var eepromWrites = 0
    /// A dead servo or a broken cable (fault injection): the servo hears nothing and never answers. Not a
    /// register: REBOOT and FACTORY_RESET do not bring it back.
    public var isSilent = false

    /// Output-shaft state, written by the physics each step (rad, rad/s; 0 rad = encoder count 0).
    public internal(set) var positionRad: Double
    public internal(set) var velocityRadPerS: Double = 0
    /// Winding current of the last step, A.
    public private(set) var currentA: Double = 0
    /// Applied duty of the last step, −1…1.
    public private(set) var duty: Double = 0
    public private(set) var faults: ServoFault = []
    /// Faults forced by fault injection; set until REBOOT.
    var injectedFaults: ServoFault = []

    // Controller state.
    var trajectoryCounts: Double = 0
    var trajectoryVelocity: Double = 0
    var positionIntegral: Double = 0
    var velocityIntegral: Double = 0
    var lastErrorCounts: Double = 0
    var overloadSeconds: Double = 0
    var overcurrentSeconds: Double = 0

    // REG_WRITE buffer.
    let registered: UnsafeMutablePointer<UInt8>
    var registeredAddress = -1
    var registeredLength = 0

    var timeNs: UInt64 = 0
    /// When the servo last received an instruction addressed to it (feeds the Bus Watchdog).
    var lastInstructionNs: UInt64 = 0

    /// - Parameters:
    ///   - id: bus ID, written to the ID register (as a factory-set servo that was configured once).
    ///   - baudRate: bit rate, written to the Baud Rate register; must be one the model supports.
    public init(model: ServoModel, id: UInt8, baudRate: Int, supplyVoltageV: Double? = nil) {
        self.model = model
        isDynamixel = model.wireProtocol == .dynamixel2
        map = RegisterMap(model)
        littleEndian = model.wireProtocol.isLittleEndian
        let image = model.factoryImage()
        factoryImage = image
        tableSize = image.count
        memory = .allocate(capacity: tableSize)
        memory.initialize(repeating: 0, count: tableSize)
        var index = [Int16](repeating: -1, count: tableSize)
        for (n, register) in model.registers.enumerated() {
            for address in register.address..<(register.address + register.size) { index[address] = Int16(n) }
        }
        registerAt = index
        layout = model.registers.map(RegisterLayout.init)
        codecAt = .allocate(capacity: max(tableSize, 1))
        codecAt.initialize(repeating: RegisterCodec())
        for register in layout {
            for address in register.address..<(register.address + register.size) {
                codecAt[address] = RegisterCodec(
                    address: register.address, size: register.size, encoding: register.encoding)
            }
        }
        countsPerRad = Double(model.countsPerTurn) / (2 * Double.pi)
        milliampsPerCurrentUnit = model.register(named: "Present Current")?.scale ?? 1
        motor = DCMotorGearModel(model.physical)
        thermal = ThermalModel(
            thermalResistanceKPerW: model.physical.thermalResistanceKPerW,
            timeConstantS: model.physical.thermalTimeConstantS)
        self.supplyVoltageV = supplyVoltageV ?? model.physical.ratedVoltageV
        registered = .allocate(capacity: tableSize)
        busID = id
        busBaudRate = baudRate
        positionRad = Double(model.countsPerTurn / 2) / (Double(model.countsPerTurn) / (2 * Double.pi))
        persistedImage = image
        image.withUnsafeBufferPointer { memory.update(from: $0.baseAddress!, count: tableSize) }
        storeUnsigned(map.id, 1, UInt32(id))
        if let index = model.baudRateIndex(forBitsPerSecond: baudRate) {
            storeUnsigned(map.baudRate, 1, UInt32(index))
        }
        persistEEPROM()
        resetRAM()
    }

    deinit {
        memory.deallocate()
        registered.deallocate()
        codecAt.deallocate()
    }

    // MARK: Raw memory

    @inline(__always)
    func loadUnsigned(_ address: Int, _ size: Int) -> UInt32 {
        if address < 0 { return 0 }
        var value: UInt32 = 0
        for byte in 0..<size {
            let shift = littleEndian ? byte * 8 : (size - 1 - byte) * 8
            value |= UInt32(memory[address + byte]) << UInt32(shift)
        }
        return value
    }

    @inline(__always)
    func storeUnsigned(_ address: Int, _ size: Int, _ value: UInt32) {
        if address < 0 { return }
        for byte in 0..<size {
            let shift = littleEndian ? byte * 8 : (size - 1 - byte) * 8
            memory[address + byte] = UInt8(truncatingIfNeeded: value >> UInt32(shift))
        }
    }

    /// The decoded value of the register at `address` (0 where the model has none).
    @inline(__always)
    func value(_ address: Int) -> Int64 {
        guard address >= 0 else { return 0 }
        let codec = codecAt[address]
        return codec.size == 0 ? 0 : codec.encoding.decode(raw: load(codec), size: codec.size)
    }

    @inline(__always)
    func setValue(_ address: Int, _ newValue: Int64) {
        guard address >= 0 else { return }
        let codec = codecAt[address]
        guard codec.size > 0 else { return }
        storeUnsigned(codec.address, codec.size, codec.encoding.encode(newValue, size: codec.size))
    }

    /// A register's raw bits (sizes 1, 2 and 4 unrolled: the general loop is what every physics step would run).
    @inline(__always)
    func load(_ codec: RegisterCodec) -> UInt32 {
        let p = memory + codec.address
        switch (codec.size, littleEndian) {
        case (1, _): return UInt32(p[0])
        case (2, true): return UInt32(p[0]) | UInt32(p[1]) << 8
        case (2, false): return UInt32(p[1]) | UInt32(p[0]) << 8
        default: return loadUnsigned(codec.address, codec.size)
        }
    }

    /// The decoded value of a register by name, for tests and tools.
    public func registerValue(named name: String) -> Int64? {
        guard let register = model.register(named: name) else { return nil }
        refreshPresentRegistersIfStale()
        return register.decode(raw: loadUnsigned(register.address, register.size))
    }

    /// Sets a register by name without any host-side checks (for tests and scenario set-up).
    public func setRegisterValue(named name: String, _ newValue: Int64) {
        guard let register = model.register(named: name) else { return }
        storeUnsigned(register.address, register.size, register.encode(newValue))
    }

    var torqueEnabled: Bool { map.torqueEnable >= 0 && memory[map.torqueEnable] != 0 }
    var returnDelayNs: UInt64 { map.returnDelay >= 0 ? UInt64(memory[map.returnDelay]) * 2000 : 0 }
    var statusReturnLevel: UInt8 { map.statusReturnLevel >= 0 ? memory[map.statusReturnLevel] : 2 }

    /// Hardware error bits as the protocol reports them (Dynamixel Hardware Error Status; Feetech status).
    public var hardwareErrorBits: UInt8 {
        var bits: UInt8 = 0
        if isDynamixel {
            if faults.contains(.inputVoltage) { bits |= 1 << 0 }
            if faults.contains(.overheating) { bits |= 1 << 2 }
            if faults.contains(.overload) || faults.contains(.overcurrent) { bits |= 1 << 5 }
        } else {
            if faults.contains(.inputVoltage) { bits |= 1 }
            if faults.contains(.overheating) { bits |= 4 }
            if faults.contains(.overcurrent) { bits |= 8 }
            if faults.contains(.overload) { bits |= 32 }
        }
        return bits
    }

    /// Whether a present fault has dropped torque (Dynamixel: bit in Shutdown; Feetech: in Unloading Condition).
    var isShutDown: Bool {
        let mask = UInt8(truncatingIfNeeded: value(isDynamixel ? map.shutdown : map.unloadingCondition))
        return hardwareErrorBits & mask != 0
    }

    // MARK: Lifecycle

    func persistEEPROM() {
        for register in model.registers where register.area == .eeprom {
            for address in register.address..<(register.address + register.size) {
                persistedImage[address] = memory[address]
            }
        }
    }

    /// RAM to factory defaults, controller at rest at the present position.
    func resetRAM() {
        for register in model.registers where register.area == .ram {
            for address in register.address..<(register.address + register.size) {
                memory[address] = factoryImage[address]
            }
        }
        faults = []
        injectedFaults = []
        positionIntegral = 0
        velocityIntegral = 0
        overloadSeconds = 0
        overcurrentSeconds = 0
        registeredAddress = -1
        let actual = positionRad * countsPerRad
        trajectoryCounts = actual
        trajectoryVelocity = 0
        lastErrorCounts = 0
        if map.goalPosition >= 0 { setValue(map.goalPosition, registerCountsFromActual(actual)) }
        if isDynamixel {
            // X-series: Goal PWM and Goal Current start at their limits.
            setValue(map.goalPWM, value(map.pwmLimit))
            setValue(map.goalCurrent, value(map.currentLimit))
        }
        updatePresentRegisters()
    }

    /// Dynamixel REBOOT: RAM to defaults, hardware errors cleared, EEPROM kept.
    public func reboot() {
        resetRAM()
    }

    /// Power off and on: EEPROM back to what was persisted (Feetech writes under Lock=1 are lost), RAM
    /// to defaults; the bus ID and rate follow the restored registers.
    public func powerCycle() {
        for register in model.registers where register.area == .eeprom {
            for address in register.address..<(register.address + register.size) {
                memory[address] = persistedImage[address]
            }
        }
        resetRAM()
        commitBusSettings()
    }

    /// Dynamixel FACTORY_RESET: 0xFF resets everything, 0x01 all but ID, 0x02 all but ID and baud rate.
    func factoryReset(mode: UInt8) {
        let keepID = mode == 0x01 || mode == 0x02
        let keepBaud = mode == 0x02
        let id = memory[map.id]
        let baud = memory[map.baudRate]
        for address in 0..<tableSize { memory[address] = factoryImage[address] }
        if keepID { memory[map.id] = id }
        if keepBaud { memory[map.baudRate] = baud }
        persistEEPROM()
        resetRAM()
    }

    /// Applies an ID or baud-rate change after the reply to the write that made it has gone out.
    /// Runs after every request: the table lookup only when the baud-rate register changed.
    func commitBusSettings() {
        busID = memory[map.id]
        let index = memory[map.baudRate]
        if index == committedBaudIndex { return }
        committedBaudIndex = index
        if let rate = model.baudRates[Int(index)] { busBaudRate = rate }
    }

    /// The Baud Rate register value ``busBaudRate`` was last taken from (nil: not yet).
    private var committedBaudIndex: UInt8?

    /// Forces a fault (fault injection); it stays until REBOOT (Dynamixel) or a torque-enable write (Feetech).
    public func injectFault(_ fault: ServoFault) {
        injectedFaults.insert(fault)
        faults.insert(fault)
        applyShutdown()
    }

    func applyShutdown() {
        if map.hardwareErrorStatus >= 0 { memory[map.hardwareErrorStatus] = hardwareErrorBits }
        if map.status >= 0 { memory[map.status] = hardwareErrorBits }
        if isShutDown, map.torqueEnable >= 0 { memory[map.torqueEnable] = 0 }
    }

    // MARK: Host access

    /// Copies `length` bytes from `address` for a READ; indirect data registers read through their address.
    /// Within the table every byte reads (a reserved byte between registers reads 0). Past the table's end a
    /// Dynamixel answers with an Access Error (Protocol 2.0: reading an address that is not defined) and no
    /// data; a Feetech servo has no error to report it with (its status byte carries hardware conditions only)
    /// and answers with the bytes of its memory, 0 beyond the registers.
    func hostRead(address: Int, length: Int, into out: UnsafeMutablePointer<UInt8>) -> AccessOutcome {
        guard address >= 0, length >= 0 else { return .accessError }
        refreshPresentRegistersIfStale()
        if address + length > tableSize {
            guard !isDynamixel else { return .accessError }
            for offset in 0..<length {
                out[offset] = address + offset < tableSize ? memory[address + offset] : 0
            }
            return .ok
        }
        for offset in 0..<length {
            out[offset] = memory[resolveIndirect(address + offset)]
        }
        return .ok
    }

    @inline(__always)
    func resolveIndirect(_ address: Int) -> Int {
        guard isDynamixel else { return address }
        var slot = address - map.indirectData1
        if slot >= 0 && slot < map.indirectCount1 {
            let target = Int(loadUnsigned(map.indirectAddress1 + 2 * slot, 2))
            return target < tableSize && target != address ? target : address
        }
        slot = address - map.indirectData2
        if slot >= 0 && slot < map.indirectCount2 {
            let target = Int(loadUnsigned(map.indirectAddress2 + 2 * slot, 2))
            return target < tableSize && target != address ? target : address
        }
        return address
    }

    /// WRITE from a byte view of the request.
    func hostWrite(address: Int, data: UnsafeRawBufferPointer) -> AccessOutcome {
        guard let base = data.baseAddress, data.count > 0 else { return .dataLength }
        return hostWrite(address: address, data: base.assumingMemoryBound(to: UInt8.self), length: data.count)
    }

    /// REG_WRITE: keeps the write until ACTION.
    func register(address: Int, data: UnsafeRawBufferPointer) -> AccessOutcome {
        guard let base = data.baseAddress, data.count > 0, address >= 0, data.count <= tableSize else {
            return .dataLength
        }
        if isDynamixel && address + data.count > tableSize { return .accessError }
        registered.update(from: base.assumingMemoryBound(to: UInt8.self), count: data.count)
        registeredAddress = address
        registeredLength = data.count
        setValue(map.registeredInstruction, 1)
        return .ok
    }

    /// ACTION: applies the registered write, if any.
    func action() -> AccessOutcome {
        guard registeredAddress >= 0 else { return .resultFail }
        let outcome = hostWrite(address: registeredAddress, data: registered, length: registeredLength)
        registeredAddress = -1
        setValue(map.registeredInstruction, 0)
        return outcome
    }

    /// Validates and applies a WRITE. Dynamixel: nothing is written unless every byte lands in a writable
    /// register and every covered register accepts its value; otherwise the outcome names the error its status
    /// packet carries (Access Error for a read-only or undefined address, EEPROM with torque on, or past the
    /// table; Data Range; Data Limit; Data Length for a register written in part). Feetech: the STS/SCS
    /// firmware has no such errors (its status byte carries hardware conditions only): read-only bytes and
    /// bytes outside the registers keep their value, the others take the data, and the write is acknowledged.
    func hostWrite(address: Int, data: UnsafePointer<UInt8>, length: Int) -> AccessOutcome {
        guard address >= 0, length > 0 else { return .dataLength }
        if isDynamixel {
            guard address + length <= tableSize else { return .accessError }
            let outcome = validateDynamixelWrite(address: address, data: data, length: length)
            if outcome != .ok { return outcome }
        }
        let length = min(length, tableSize - address)
        guard length > 0 else { return .ok }
        let torqueBefore = torqueEnabled
        var touchedEEPROM = false
        var offset = 0
        while offset < length {
            let target = resolveIndirect(address + offset)
            let index = registerAt[target]
            if index >= 0 {
                let register = layout[Int(index)]
                if register.access == .readWrite {
                    memory[target] = data[offset]
                    if register.area == .eeprom { touchedEEPROM = true }
                }
            }
            offset += 1
        }
        if touchedEEPROM {
            eepromWrites += 1
            if isDynamixel || value(map.lock) == 0 { persistEEPROM() }
        }
        return afterWrite(address: address, length: length, torqueBefore: torqueBefore)
    }

    func validateDynamixelWrite(address: Int, data: UnsafePointer<UInt8>, length: Int) -> AccessOutcome {
        let end = address + length
        var cursor = address
        while cursor < end {
            let target = resolveIndirect(cursor)
            let index = registerAt[target]
            // A byte between registers is not defined: the whole write is refused.
            if index < 0 { return .accessError }
            let register = layout[Int(index)]
            if target != cursor {
                // Indirect data: one byte at a time, checked only for access.
                if register.access == .readOnly { return .accessError }
                if register.area == .eeprom && torqueEnabled { return .accessError }
                cursor += 1
                continue
            }
            if register.address < cursor || register.address + register.size > end { return .dataLength }
            if register.access == .readOnly { return .accessError }
            if register.area == .eeprom && torqueEnabled { return .accessError }
            var raw: UInt32 = 0
            for byte in 0..<register.size {
                raw |= UInt32(data[register.address - address + byte]) << UInt32(byte * 8)
            }
            let newValue = register.decode(raw: raw)
            // Goals bounded by a limit register report the limit (Data Limit) before the static range.
            if let limit = dynamicLimit(for: register.address), abs(newValue) > limit { return .dataLimit }
            if !register.accepts(newValue) { return .dataRange }
            if register.address == map.goalPosition, operatingMode == 3 {
                if newValue > value(map.maxPosition) || newValue < value(map.minPosition) { return .dataLimit }
            }
            if register.address == map.torqueEnable, newValue != 0, isShutDown { return .resultFail }
            if watchdogTripped, isGoal(register.address) { return .dataRange }
            cursor = register.address + register.size
        }
        return .ok
    }

    /// Bus Watchdog reads -1 (0xFF) after it expired; only writing 0 to it clears the state.
    var watchdogTripped: Bool { map.busWatchdog >= 0 && memory[map.busWatchdog] == 0xFF }

    func isGoal(_ address: Int) -> Bool {
        address == map.goalPosition || address == map.goalVelocity || address == map.goalCurrent
            || address == map.goalPWM
    }

    /// Dynamixel Bus Watchdog: with a period set (×20 ms) and no instruction for longer, the servo stops
    /// (holds its position, zero velocity/PWM/current goals) and refuses goals until the period is written 0.
    func updateWatchdog() {
        guard map.busWatchdog >= 0 else { return }
        let period = memory[map.busWatchdog]
        guard period > 0 && period < 0x80 else { return }
        if timeNs > lastInstructionNs + UInt64(period) * 20_000_000 {
            memory[map.busWatchdog] = 0xFF
            holdPresentPosition()
            setValue(map.goalVelocity, 0)
            setValue(map.goalPWM, 0)
            setValue(map.goalCurrent, 0)
        }
    }

    func dynamicLimit(for address: Int) -> Int64? {
        if address == map.goalCurrent { return value(map.currentLimit) }
        if address == map.goalVelocity { return value(map.velocityLimit) }
        if address == map.goalPWM { return value(map.pwmLimit) }
        return nil
    }

    var operatingMode: Int64 { value(map.operatingMode) }

    func afterWrite(address: Int, length: Int, torqueBefore: Bool) -> AccessOutcome {
        let range = address..<(address + length)
        if range.contains(map.operatingMode) {
            positionIntegral = 0
            velocityIntegral = 0
        }
        if map.torqueEnable >= 0, range.contains(map.torqueEnable) {
            let written = memory[map.torqueEnable]
            if !isDynamixel {
                // Feetech has no REBOOT: a torque-enable write clears latched protection, injected faults
                // included (they stand for real protection events).
                faults = []
                injectedFaults = []
                if written == 128 {
                    calibrateMiddle()
                    memory[map.torqueEnable] = torqueBefore ? 1 : 0
                }
                applyShutdown()
                if isShutDown { memory[map.torqueEnable] = 0 }
            }
            if !torqueBefore && torqueEnabled { holdPresentPosition() }
        }
        if map.goalPosition >= 0, range.contains(map.goalPosition), !isDynamixel || operatingMode != 5 {
            overloadSeconds = 0
        }
        return .ok
    }

    /// Feetech "write 128 to Torque Enable": the offset that makes the present position read 2048.
    func calibrateMiddle() {
        let actual = Int64((positionRad * countsPerRad).rounded())
        let wrapped = ((actual % 4096) + 4096) % 4096
        setValue(map.homingOffset, max(-2047, min(2047, wrapped - 2048)))
        if map.lock >= 0 && memory[map.lock] == 0 { persistEEPROM() }
        updatePresentRegisters()
    }

    func holdPresentPosition() {
        let actual = positionRad * countsPerRad
        trajectoryCounts = actual
        trajectoryVelocity = 0
        positionIntegral = 0
        velocityIntegral = 0
        lastErrorCounts = 0
        if map.goalPosition >= 0 {
            let mode = operatingMode
            if isDynamixel ? (mode == 3 || mode == 4 || mode == 5) : mode == 0 {
                setValue(map.goalPosition, registerCountsFromActual(actual))
            }
        }
    }

    // MARK: Position conventions

    var reversed: Bool { isDynamixel && (value(map.driveMode) & 1) != 0 }

    /// Register-space position (what Present/Goal Position hold) from actual encoder counts.
    func registerCountsFromActual(_ actual: Double) -> Int64 {
        let signed = reversed ? -actual : actual
        let offset = Double(value(map.homingOffset))
        if isDynamixel { return Int64((signed + offset).rounded()) }
        let counts = Int64((signed - offset).rounded())
        return ((counts % 4096) + 4096) % 4096
    }

    /// Actual encoder counts for a register-space position. Feetech position mode works within one turn
    /// (0…4095, between the angle limits): the goal is taken in the turn the present position is in.
    func actualFromRegisterCounts(_ registerCounts: Int64, near: Double) -> Double {
        let offset = Double(value(map.homingOffset))
        if isDynamixel {
            let signed = Double(registerCounts) - offset
            return reversed ? -signed : signed
        }
        var goal = registerCounts
        let low = value(map.minPosition)
        let high = value(map.maxPosition)
        if high > low { goal = max(low, min(high, goal)) }
        let turnStart = ((near - offset) / 4096).rounded(.down) * 4096
        return turnStart + Double(goal) + offset
    }

    // MARK: Simulation step

    /// Runs the firmware's controller and the motor for one physics step at the present joint state and
    /// returns the output-shaft torque. Allocation-free.
    public func actuatorOutput(dtS: Double) -> ActuatorOutput {
        updateProtection(dtS: dtS)
        if isDynamixel { updateWatchdog() }
        let velocity = velocityRadPerS
        let vin = max(supplyVoltageV, 0.1)
        var emfDamping = 0.0
        var appliedDuty = 0.0
        var current = 0.0
        if torqueEnabled {
            appliedDuty = isDynamixel ? dynamixelDuty(dtS: dtS, vin: vin) : feetechDuty(dtS: dtS, vin: vin)
            current = motor.currentA(voltageV: appliedDuty * vin, outputVelocityRadPerS: velocity)
            emfDamping =
                motor.gearRatio * motor.gearRatio * motor.torqueConstantNmPerA * motor.torqueConstantNmPerA
                * motor.gearEfficiency / motor.windingResistanceOhm
            let limit = currentLimitA()
            if abs(current) > limit {
                current = current > 0 ? limit : -limit
                appliedDuty = motor.voltageV(forCurrentA: current, outputVelocityRadPerS: velocity) / vin
                emfDamping = 0
            }
        }
        duty = appliedDuty
        currentA = current
        let friction = motor.friction(outputVelocityRadPerS: velocity)
        thermal.step(
            powerW: current * current * motor.windingResistanceOhm + model.physical.standbyCurrentA * vin, dtS: dtS)
        return ActuatorOutput(
            torqueNm: motor.outputTorqueNm(currentA: current) + friction.torqueNm,
            dampingNmsPerRad: emfDamping + friction.dampingNmsPerRad, isTorqueEnabled: torqueEnabled)
    }

    /// The firmware's current clamp: Current Limit in current-based modes, the winding's stall current
    /// otherwise (Feetech: no clamp beyond the motor itself).
    func currentLimitA() -> Double {
        if isDynamixel {
            let mode = operatingMode
            if mode == 0 || mode == 5 {
                let goal = Double(abs(value(map.goalCurrent)))
                return min(goal, Double(value(map.currentLimit))) * milliampsPerCurrentUnit / 1000
            }
        }
        return .greatestFiniteMagnitude
    }

    /// Profile generator: moves the trajectory toward `target` under velocity/acceleration limits
    /// (counts/s, counts/s²; 0 = unlimited).
    func advanceTrajectory(target: Double, maxVelocity: Double, maxAcceleration: Double, dtS: Double) {
        if maxVelocity <= 0 && maxAcceleration <= 0 {
            trajectoryCounts = target
            trajectoryVelocity = 0
            return
        }
        let error = target - trajectoryCounts
        let vLimit = maxVelocity > 0 ? maxVelocity : .greatestFiniteMagnitude
        var desired = error / dtS
        if maxAcceleration > 0 {
            // Velocity that still stops at the target.
            let stopping = (2 * maxAcceleration * abs(error)).squareRoot()
            desired = min(abs(desired), stopping) * (error >= 0 ? 1 : -1)
            let change = max(-maxAcceleration * dtS, min(maxAcceleration * dtS, desired - trajectoryVelocity))
            desired = trajectoryVelocity + change
        }
        desired = max(-vLimit, min(vLimit, desired))
        if abs(desired * dtS) >= abs(error) {
            trajectoryCounts = target
            trajectoryVelocity = 0
        } else {
            trajectoryCounts += desired * dtS
            trajectoryVelocity = desired
        }
    }

    func dynamixelDuty(dtS: Double, vin: Double) -> Double {
        let actual = positionRad * countsPerRad
        // Goals other than position are in register direction; Drive Mode "reverse" flips it.
        let direction: Double = reversed ? -1 : 1
        let velocityUnits = direction * velocityRadPerS * 60 / (2 * Double.pi) / 0.229
        let pwmLimit = Double(value(map.pwmLimit))
        let rpmPerUnit = 0.229 / 60 * Double(model.countsPerTurn)  // counts/s per velocity unit
        var pwm: Double
        switch operatingMode {
        case 0:  // current: ideal inner current loop
            let target = direction * Double(value(map.goalCurrent)) * milliampsPerCurrentUnit / 1000
            let voltage = motor.voltageV(forCurrentA: target, outputVelocityRadPerS: velocityRadPerS)
            pwm = voltage / vin * 885
        case 1:  // velocity: PI on 0.229 rpm units, gains as the e-manual scales them
            let limit = Double(value(map.velocityLimit))
            let goal = max(-limit, min(limit, Double(value(map.goalVelocity))))
            let error = goal - velocityUnits
            velocityIntegral += error * dtS * 1000
            let kp = Double(value(map.velocityP)) / 128
            let ki = Double(value(map.velocityI)) / 65536
            let integralLimit = ki > 0 ? pwmLimit / ki : 0
            velocityIntegral = max(-integralLimit, min(integralLimit, velocityIntegral))
            pwm = direction * (kp * error + ki * velocityIntegral)
            trajectoryVelocity = direction * goal * rpmPerUnit
        case 16:
            pwm = direction * Double(value(map.goalPWM))
        default:  // 3, 4, 5: position PID behind the profile generator
            let goal = actualFromRegisterCounts(value(map.goalPosition), near: actual)
            advanceTrajectory(
                target: goal, maxVelocity: Double(value(map.profileVelocity)) * rpmPerUnit,
                maxAcceleration: Double(value(map.profileAcceleration)) * 214.577 / 3600 * Double(model.countsPerTurn),
                dtS: dtS)
            let error = trajectoryCounts - actual
            let ki = Double(value(map.positionI)) / 65536
            positionIntegral += error * dtS * 1000
            if ki > 0 { positionIntegral = max(-pwmLimit / ki, min(pwmLimit / ki, positionIntegral)) }
            let derivative = (error - lastErrorCounts) / (dtS * 1000)
            lastErrorCounts = error
            pwm =
                Double(value(map.positionP)) / 128 * error + ki * positionIntegral
                + Double(value(map.positionD)) / 16 * derivative
        }
        pwm = max(-pwmLimit, min(pwmLimit, pwm))
        return pwm / 885
    }

    func feetechDuty(dtS: Double, vin: Double) -> Double {
        let actual = positionRad * countsPerRad
        let torqueLimit = Double(min(value(map.torqueLimit), value(map.maxTorque))) / 1000
        var permille: Double
        switch operatingMode {
        case 1:  // closed-loop speed, count/s
            let goal = Double(value(map.goalVelocity))
            let speed = velocityRadPerS * countsPerRad
            let error = goal - speed
            velocityIntegral += error * dtS
            let feedForward = motor.outputEMFConstant * goal / countsPerRad / vin * 1000
            permille =
                feedForward + Double(value(map.velocityP)) * 0.05 * error
                + Double(value(map.velocityI)) * 0.01 * velocityIntegral
            trajectoryVelocity = goal
        case 2:  // open loop: Goal Time holds the PWM in 0.1 %, sign in bit 10
            let raw = loadUnsigned(map.goalTime, 2)
            let magnitude = Double(raw & 0x3FF)
            permille = raw & 0x400 != 0 ? -magnitude : magnitude
        default:  // 0 (and 3, step): position with speed/acceleration profile
            let goal = actualFromRegisterCounts(value(map.goalPosition), near: actual)
            let accelerationRegister = Double(value(map.acceleration))
            advanceTrajectory(
                target: goal, maxVelocity: Double(abs(value(map.goalVelocity))),
                maxAcceleration: accelerationRegister * 100, dtS: dtS)
            let error = trajectoryCounts - actual
            let derivative = (error - lastErrorCounts) / (dtS * 1000)
            lastErrorCounts = error
            positionIntegral += error * dtS
            permille =
                Double(value(map.positionP)) * 0.5 * error + Double(value(map.positionD)) * 0.5 * derivative
                + Double(value(map.positionI)) * 0.01 * positionIntegral
        }
        permille = max(-1000 * torqueLimit, min(1000 * torqueLimit, permille))
        return permille / 1000
    }

    /// Thermal, voltage, overload and overcurrent protection; latched faults drop torque per the mask.
    func updateProtection(dtS: Double) {
        var present = faults
        let voltage10 = Int64((supplyVoltageV * 10).rounded())
        if voltage10 > value(map.maxVoltage) || voltage10 < value(map.minVoltage) {
            present.insert(.inputVoltage)
        } else if !isDynamixel {
            present.remove(.inputVoltage)
        }
        if thermal.temperatureC > Double(value(map.temperatureLimit)) { present.insert(.overheating) }
        let stallCurrent = max(supplyVoltageV, 0) / motor.windingResistanceOhm
        if isDynamixel {
            if torqueEnabled && abs(currentA) >= 0.8 * stallCurrent {
                overloadSeconds += dtS
            } else {
                overloadSeconds = max(0, overloadSeconds - dtS)
            }
            if overloadSeconds >= model.physical.overloadDetectTimeS { present.insert(.overload) }
        } else {
            let overloadFraction = Double(value(map.overloadTorque)) / 100
            if torqueEnabled && abs(duty) >= overloadFraction && abs(currentA) >= 0.5 * stallCurrent {
                overloadSeconds += dtS
            } else {
                overloadSeconds = 0
            }
            if overloadSeconds >= Double(value(map.protectionTime)) * 0.01 { present.insert(.overload) }
            let protectionA = Double(value(map.protectionCurrent)) * 6.5 / 1000
            if torqueEnabled && protectionA > 0 && abs(currentA) > protectionA {
                overcurrentSeconds += dtS
            } else {
                overcurrentSeconds = 0
            }
            if overcurrentSeconds >= Double(value(map.overcurrentTime)) * 0.01 { present.insert(.overcurrent) }
        }
        present.formUnion(injectedFaults)
        if present != faults {
            faults = present
        }
        applyShutdown()
    }

    /// Receives the joint state from the physics and refreshes the present-value registers.
    public func observe(positionRad: Double, velocityRadPerS: Double, timeNs: UInt64) {
        self.positionRad = positionRad
        self.velocityRadPerS = velocityRadPerS
        self.timeNs = timeNs
        // The present-value registers are refreshed when something reads them (``hostRead``,
        // ``registerValue(named:)``), not on every physics step: a bus reads them once a tick, the physics
        // steps several times between reads, and they only depend on the state left by the last step.
        presentRegistersStale = true
    }

    /// The present-value registers from the state the last physics step left. Called before the control
    /// table is read; writes none but the present-value registers.
    @inline(__always)
    func refreshPresentRegistersIfStale() {
        if presentRegistersStale { updatePresentRegisters() }
    }

    func updatePresentRegisters() {
        presentRegistersStale = false
        let actual = positionRad * countsPerRad
        let present = registerCountsFromActual(actual)
        setValue(map.presentPosition, present)
        let countsPerS = velocityRadPerS * countsPerRad * (reversed ? -1 : 1)
        let currentSign: Double = reversed ? -1 : 1
        if isDynamixel {
            let units = countsPerS / Double(model.countsPerTurn) * 60 / 0.229
            setValue(map.presentVelocity, Int64(units.rounded()))
            setValue(
                map.presentCurrent, Int64((currentSign * currentA * 1000 / milliampsPerCurrentUnit).rounded()))
            setValue(map.presentPWM, Int64((currentSign * duty * 885).rounded()))
            setValue(
                map.velocityTrajectory,
                Int64(
                    ((reversed ? -1 : 1) * trajectoryVelocity / Double(model.countsPerTurn) * 60 / 0.229).rounded())
            )
            setValue(map.positionTrajectory, registerCountsFromActual(trajectoryCounts))
            setValue(map.realtimeTick, Int64((timeNs / 1_000_000) % 32768))
            let moving = abs(Int64(units.rounded())) > value(map.movingThreshold)
            setValue(map.moving, moving ? 1 : 0)
            let inPosition = abs(Double(value(map.goalPosition) - present)) <= 20
            var status: Int64 = inPosition ? 1 : 0
            if abs(trajectoryVelocity) > 0 { status |= 2 }
            setValue(map.movingStatus, status)
            // Models without a current sensor (XL430) report the load: the winding current as a share of stall.
            let load = currentSign * currentA / max(model.physical.stallCurrentA, 1e-9) * 1000
            setValue(map.presentLoad, Int64(max(-1000, min(1000, load)).rounded()))
        } else {
            setValue(map.goalPosition2, value(map.goalPosition))
            setValue(map.presentVelocity, Int64(countsPerS.rounded()))
            setValue(map.presentLoad, Int64((duty * 1000).rounded()))
            setValue(map.presentCurrent, Int64((abs(currentA) * 1000 / milliampsPerCurrentUnit).rounded()))
            setValue(map.moving, abs(countsPerS) > 10 ? 1 : 0)
        }
        setValue(map.presentVoltage, Int64((supplyVoltageV * 10).rounded()))
        setValue(map.presentTemperature, Int64(thermal.temperatureC.rounded()))
    }
}
