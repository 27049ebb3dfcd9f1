import Foundation
import SinewBus
import SinewDrivers
import SinewPolicy

/// One look at every servo, taken by the record stage every few ticks for telemetry: the bus master's counters
/// and what the tick's own sync read already holds (voltage, temperature and current where the model's registers
/// lie inside the read window), plus the hardware-error flags of the last status. Buffers are allocated once; the
/// record stage fills them in place.
public final class ServoHealthFrame: @unchecked Sendable {
    // @unchecked: filled by the loop thread and read by one other, handed over through a `TripleBuffer`.

    /// Servos, in ``ServoHealthTap/servos`` order.
    public let servoCount: Int
    /// The tick the frame was taken in (-1: none yet).
    public internal(set) var tick: Int64 = -1
    public let transactions: UnsafeMutableBufferPointer<UInt64>
    public let replies: UnsafeMutableBufferPointer<UInt64>
    public let timeouts: UnsafeMutableBufferPointer<UInt64>
    public let checksumErrors: UnsafeMutableBufferPointer<UInt64>
    /// Truncated packets, packets from the wrong ID and garbage: the other failed attempts.
    public let otherErrors: UnsafeMutableBufferPointer<UInt64>
    public let retries: UnsafeMutableBufferPointer<UInt64>
    /// Replies that flagged a hardware error.
    public let hardwareErrorReplies: UnsafeMutableBufferPointer<UInt64>
    /// Supply voltage (V), winding temperature (°C) and current (A, signed); NaN where the tick does not read it.
    public let voltageV: UnsafeMutableBufferPointer<Double>
    public let temperatureC: UnsafeMutableBufferPointer<Double>
    public let currentA: UnsafeMutableBufferPointer<Double>
    /// The joint's servo's last hardware-error status bits (0: none; the servo's own bit layout).
    public let hardwareErrorFlags: UnsafeMutableBufferPointer<UInt8>

    init(servoCount: Int) {
        self.servoCount = servoCount
        func counters() -> UnsafeMutableBufferPointer<UInt64> {
            let p = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: max(servoCount, 1))
            p.initialize(repeating: 0)
            return p
        }
        func values() -> UnsafeMutableBufferPointer<Double> {
            let p = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(servoCount, 1))
            p.initialize(repeating: .nan)
            return p
        }
        transactions = counters()
        replies = counters()
        timeouts = counters()
        checksumErrors = counters()
        otherErrors = counters()
        retries = counters()
        hardwareErrorReplies = counters()
        voltageV = values()
        temperatureC = values()
        currentA = values()
        hardwareErrorFlags = .allocate(capacity: max(servoCount, 1))
        hardwareErrorFlags.initialize(repeating: 0)
    }

    deinit {
        for p in [
            transactions, replies, timeouts, checksumErrors, otherErrors, retries, hardwareErrorReplies,
        ] {
            p.deallocate()
        }
        voltageV.deallocate()
        temperatureC.deallocate()
        currentA.deallocate()
        hardwareErrorFlags.deallocate()
    }
}

/// Where the record stage publishes a ``ServoHealthFrame`` every `decimation` ticks for a telemetry thread to take
/// (`frames.take()`, then `frames.readSlot`). The loop thread never waits for the reader.
public final class ServoHealthTap: @unchecked Sendable {
    /// One servo: its bus, ID and joint (a coupled second servo shares its joint), and which readings the tick's
    /// sync read carries for it.
    public struct Servo: Sendable {
        public var bus: String
        public var id: Int
        public var joint: String
        public var model: String
        public var readsVoltage: Bool
        public var readsTemperature: Bool
        public var readsCurrent: Bool
        /// The model's firmware temperature limit (the servo table's `temperatureLimitC`), °C.
        public var temperatureLimitC: Double
    }

    public let servos: [Servo]
    /// Ticks between two frames.
    public let decimation: Int64
    public let frames: TripleBuffer<ServoHealthFrame>
    /// Per servo: bus index, slot on the bus, configuration joint, and the registers inside the read window.
    let sources: [(bus: Int, slot: Int, joint: Int, voltage: RegisterSpec?, temperature: RegisterSpec?)]

    init(
        servos: [Servo], decimation: Int64,
        sources: [(bus: Int, slot: Int, joint: Int, voltage: RegisterSpec?, temperature: RegisterSpec?)]
    ) {
        self.servos = servos
        self.decimation = max(decimation, 1)
        self.sources = sources
        let count = servos.count
        frames = TripleBuffer { ServoHealthFrame(servoCount: count) }
    }
}

extension RobotLoop.BusLink {
    /// `spec` when it lies inside the sync read's window, so the tick reads it already.
    func inReadWindow(_ spec: RegisterSpec?) -> RegisterSpec? {
        guard let spec, spec.address >= Int(readAddress), spec.address + spec.size <= Int(readAddress) + readLength
        else { return nil }
        return spec
    }
}

extension RobotLoop {
    /// Makes the record stage publish a ``ServoHealthFrame`` every `decimation` ticks (counters and readings it
    /// already has: no bus transaction is added). Call before the scheduler starts.
    ///
    /// A loop has one tap: a later call returns the tap already attached, with its decimation (a second tap would
    /// leave the first one's reader with a frame that never changes). Its frames have one reader thread; every
    /// reader on that thread (the recorder's: telemetry and the ROS 2 publisher are sinks of it) calls
    /// `frames.take()` then reads `frames.readSlot`, which only a `take()` on that thread moves.
    public func attachHealthTap(decimation: Int) -> ServoHealthTap {
        if let healthTap { return healthTap }
        var servos: [ServoHealthTap.Servo] = []
        var sources: [(bus: Int, slot: Int, joint: Int, voltage: RegisterSpec?, temperature: RegisterSpec?)] = []
        for (b, bus) in buses.enumerated() {
            for slot in 0..<bus.ids.count {
                let model = bus.slotModels[slot]
                let voltage = bus.inReadWindow(
                    model.register(named: "Present Input Voltage") ?? model.register(named: "Present Voltage"))
                let temperature = bus.inReadWindow(model.register(named: "Present Temperature"))
                let current = bus.inReadWindow(bus.currentSpec)
                servos.append(
                    ServoHealthTap.Servo(
                        bus: bus.name, id: Int(bus.ids[slot]), joint: configuration.joints[bus.joints[slot]].name,
                        model: model.name, readsVoltage: voltage != nil, readsTemperature: temperature != nil,
                        readsCurrent: current != nil, temperatureLimitC: model.physical.temperatureLimitC))
                sources.append((b, slot, bus.joints[slot], voltage, temperature))
            }
        }
        let tap = ServoHealthTap(servos: servos, decimation: Int64(decimation), sources: sources)
        healthTap = tap
        return tap
    }

    /// Record stage, every `decimation` ticks: copies the counters and readings into the tap's write slot and
    /// publishes it (allocation-free, never waits).
    func publishHealth(_ tap: ServoHealthTap, tick: Int64) {
        let frame = tap.frames.writeSlot
        frame.tick = tick
        for i in 0..<tap.sources.count {
            let source = tap.sources[i]
            let bus = buses[source.bus]
            let id = bus.ids[source.slot]
            let stats = bus.master.statistics(for: id)
            frame.transactions[i] = stats.transactions
            frame.replies[i] = stats.replies
            frame.timeouts[i] = stats.timeouts
            frame.checksumErrors[i] = stats.checksumErrors
            frame.otherErrors[i] = stats.truncatedPackets &+ stats.foreignPackets &+ stats.garbageErrors
            frame.retries[i] = stats.retries
            frame.hardwareErrorReplies[i] = stats.hardwareErrors
            let mapping = mappings[source.joint]
            if let v = source.voltage {
                frame.voltageV[i] = Double(bus.value(v, slot: source.slot)) * v.scale
            }
            if let t = source.temperature {
                frame.temperatureC[i] = Double(bus.value(t, slot: source.slot)) * t.scale
            }
            if let c = bus.currentSpec, bus.inReadWindow(c) != nil {
                frame.currentA[i] = Double(bus.value(c, slot: source.slot)) * mapping.currentAPerUnit
            }
            frame.hardwareErrorFlags[i] = supervisor.hardwareErrorFlags[source.joint]
        }
        tap.frames.publish()
    }
}
