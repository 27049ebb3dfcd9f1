/// Why buses could not be grouped under one physics.
public struct VirtualBusGroupError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The virtual buses of one robot driven by one physics: a robot whose servos sit on several buses (two
/// arms on two adapters, a humanoid's limbs on four) is one mechanical system, so every physics step takes
/// the output of every servo on every bus, steps the robot once and shows each servo its shaft.
///
/// Each bus keeps its own wire — its requests, replies, wire timing, faults and statistics — and is served,
/// or driven in lockstep, like a bus alone; advancing any of them (``VirtualBus/advance(toNs:)``) advances the
/// group to that time. The servos are numbered bus after bus in the group's order: `dynamics` (a
/// ``RobotJointDynamics`` built with the mappings of every bus's servos in that order) sees them so.
/// Allocation-free after init; not thread-safe (one serving thread, or the lockstep loop, drives it).
public final class VirtualBusGroup {
    public let buses: [VirtualBus]
    /// The mechanics every servo of every bus drives, servos numbered bus after bus.
    public var dynamics: any JointDynamics
    /// Time the physics has reached, ns (every bus's `timeNs` follows it).
    public private(set) var timeNs: UInt64
    /// Where each bus's servos start in the group's numbering.
    public let servoOffsets: [Int]
    public let servoCount: Int
    let stepNs: UInt64
    let stepS: Double
    let outputs: UnsafeMutableBufferPointer<ActuatorOutput>
    let positions: UnsafeMutableBufferPointer<Double>
    let velocities: UnsafeMutableBufferPointer<Double>

    /// Groups `buses` (each in no other group) under `dynamics`. They must step their physics at the same
    /// rate; they are moved onto the first bus's clock.
    public init(buses: [VirtualBus], dynamics: any JointDynamics) throws(VirtualBusGroupError) {
        guard let first = buses.first else { throw VirtualBusGroupError("a bus group needs at least one bus") }
        for bus in buses {
            guard bus.group == nil else { throw VirtualBusGroupError("a bus can be in one group only") }
            guard bus.stepNs == first.stepNs else {
                throw VirtualBusGroupError(
                    "the buses of one robot must step their physics at the same rate "
                        + "(\(first.options.physicsRateHz) Hz and \(bus.options.physicsRateHz) Hz)")
            }
        }
        self.buses = buses
        self.dynamics = dynamics
        timeNs = first.timeNs
        stepNs = first.stepNs
        stepS = first.stepS
        var offsets: [Int] = []
        var count = 0
        for bus in buses {
            offsets.append(count)
            count += bus.servos.count
        }
        servoOffsets = offsets
        servoCount = count
        outputs = .allocate(capacity: max(count, 1))
        outputs.initialize(repeating: ActuatorOutput(torqueNm: 0, dampingNmsPerRad: 0))
        positions = .allocate(capacity: max(count, 1))
        positions.initialize(repeating: 0)
        velocities = .allocate(capacity: max(count, 1))
        velocities.initialize(repeating: 0)
        for bus in buses {
            if bus.timeNs != timeNs { bus.rebaseClock(toNs: timeNs) }
            bus.group = self
        }
    }

    deinit {
        for bus in buses { bus.group = nil }
        outputs.deallocate()
        positions.deallocate()
        velocities.deallocate()
    }

    /// Steps every bus's servos and the one physics at the fixed rate until `toNs` (whole steps only).
    public func advance(toNs target: UInt64) {
        while timeNs + stepNs <= target {
            timeNs += stepNs
            for b in 0..<buses.count {
                let bus = buses[b]
                bus.timeNs = timeNs
                bus.computeOutputs()
                let offset = servoOffsets[b]
                for i in 0..<bus.servos.count {
                    outputs[offset + i] = bus.outputs[i]
                    positions[offset + i] = bus.positions[i]
                    velocities[offset + i] = bus.velocities[i]
                }
            }
            dynamics.step(
                outputs: UnsafeBufferPointer(outputs), dtS: stepS, positionsRad: positions,
                velocitiesRadPerS: velocities)
            for b in 0..<buses.count {
                let bus = buses[b]
                let offset = servoOffsets[b]
                for i in 0..<bus.servos.count {
                    bus.positions[i] = positions[offset + i]
                    bus.velocities[i] = velocities[offset + i]
                }
                bus.observeShafts()
            }
        }
    }

    /// Moves every bus onto another clock (see ``VirtualBus/rebaseClock(toNs:)``); a server calls this once
    /// before serving in real time.
    public func rebaseClock(toNs nowNs: UInt64) {
        for bus in buses { bus.rebaseClock(toNs: nowNs) }
        timeNs = nowNs
    }

    /// The group's index of servo `index` of bus `b`.
    public func servoIndex(bus b: Int, servo index: Int) -> Int { servoOffsets[b] + index }

    /// Sets a servo's shaft (group numbering) without running the controllers, as
    /// ``VirtualBus/setJointState(index:positionRad:velocityRadPerS:)`` does on its bus.
    public func setShaftState(servo index: Int, positionRad: Double, velocityRadPerS: Double = 0) {
        for b in (0..<buses.count).reversed() where index >= servoOffsets[b] {
            buses[b].setJointState(
                index: index - servoOffsets[b], positionRad: positionRad, velocityRadPerS: velocityRadPerS)
            return
        }
    }
}
