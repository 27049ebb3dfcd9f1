import Foundation
import SinewBus
import SinewDrivers
import SinewSim
import Testing

/// Counts the physics steps and what each step sees: every servo of every bus of the group, once a step.
final class CountingDynamics: JointDynamics {
    var steps = 0
    var servosSeen = 0
    /// Output torque of each servo in the last step.
    var torques: [Double] = []
    /// Pushes every shaft by this much a step, rad.
    var driftRad = 0.001

    func step(
        outputs: UnsafeBufferPointer<ActuatorOutput>, dtS: Double, positionsRad: UnsafeMutableBufferPointer<Double>,
        velocitiesRadPerS: UnsafeMutableBufferPointer<Double>
    ) {
        steps += 1
        servosSeen = outputs.count
        torques = outputs.map(\.torqueNm)
        for i in 0..<positionsRad.count { positionsRad[i] += driftRad }
    }
}

/// Several buses of one robot behind one physics: the group steps them together, a server serves them from one
/// thread, lockstep transports share one simulated now, and a bus master on each reads them all at once.
@Suite struct VirtualBusGroupTests {
    func twoBuses(wireTiming: Bool = true) throws -> (VirtualBus, VirtualBus) {
        var options = VirtualBusOptions()
        options.wireTiming = wireTiming
        let a = try VirtualBus(model: try loadModel("sts3215"), ids: [1, 2, 3], options: options)
        let b = try VirtualBus(model: try loadModel("sts3215"), ids: [1, 2], options: options)
        return (a, b)
    }

    /// Advancing any bus of a group steps the one physics (once a step, every servo of both buses in it) and
    /// brings every bus to the same time; each bus's servos see their own shafts where the physics put them.
    @Test func oneStepMovesEveryBus() throws {
        let (a, b) = try twoBuses()
        let dynamics = CountingDynamics()
        let group = try VirtualBusGroup(buses: [a, b], dynamics: dynamics)
        #expect(group.servoCount == 5 && group.servoOffsets == [0, 3])
        #expect(a.group === group && b.group === group)
        let start = (a.servos + b.servos).map(\.positionRad)
        b.advance(toNs: 10_000_000)
        #expect(dynamics.steps == 10)
        #expect(dynamics.servosSeen == 5)
        #expect(a.timeNs == 10_000_000 && b.timeNs == 10_000_000 && group.timeNs == 10_000_000)
        // Advancing the other bus to the same time does nothing more.
        a.advance(toNs: 10_000_000)
        #expect(dynamics.steps == 10)
        for (servo, before) in zip(a.servos + b.servos, start) {
            #expect(abs(servo.positionRad - (before + 10 * dynamics.driftRad)) < 1e-9)
        }
        group.setShaftState(servo: 4, positionRad: 1.0)
        #expect(abs(b.servos[1].positionRad - 1.0) < 1e-12)
        a.advance(toNs: 11_000_000)
        #expect(abs(b.servos[1].positionRad - (1.0 + dynamics.driftRad)) < 1e-9)
    }

    /// A servo's torque on one bus reaches the physics with the other bus's: a powered servo on bus b pushed
    /// off its goal shows in the outputs the group hands over, beside bus a's unpowered ones.
    @Test func theDynamicsSeesEveryBusesOutputs() throws {
        let (a, b) = try twoBuses()
        let dynamics = CountingDynamics()
        dynamics.driftRad = 0
        let group = try VirtualBusGroup(buses: [a, b], dynamics: dynamics)
        for servo in b.servos { servo.setRegisterValue(named: "Torque Enable", 1) }
        group.setShaftState(servo: 3, positionRad: b.servos[0].positionRad + 0.3)
        a.advance(toNs: 2_000_000)
        #expect(dynamics.torques.count == 5)
        #expect(dynamics.torques[0...2].allSatisfy { $0 == 0 }, "bus a's servos are unpowered")
        #expect(abs(dynamics.torques[3]) > 0.01, "bus b's first servo pushes back: \(dynamics.torques)")
    }

    @Test func groupsRefuseMixedRatesAndSharedBuses() throws {
        let (a, b) = try twoBuses()
        var fast = VirtualBusOptions()
        fast.physicsRateHz = 2000
        let c = try VirtualBus(model: try loadModel("sts3215"), ids: [1], options: fast)
        #expect(throws: VirtualBusGroupError.self) { try VirtualBusGroup(buses: [a, c], dynamics: CountingDynamics()) }
        let group = try VirtualBusGroup(buses: [a, b], dynamics: CountingDynamics())
        #expect(throws: VirtualBusGroupError.self) { try VirtualBusGroup(buses: [b], dynamics: CountingDynamics()) }
        // The buses of a group are served together or not at all (one thread steps their physics).
        #expect(throws: VirtualBusServerError.self) {
            try VirtualBusServer.serve(buses: [a], transports: [BytePipe.makePair().1])
        }
        #expect(group.buses.count == 2)
    }

    /// One server serves both buses from its thread; a bus master on each, their sync reads begun together and
    /// waited for with one `ppoll`, takes about as long as the slower bus's read, not the sum.
    @Test func oneServerTwoBusesReadTogether() throws {
        let (a, b) = try twoBuses()
        let group = try VirtualBusGroup(buses: [a, b], dynamics: CountingDynamics())
        let (hostA, deviceA) = BytePipe.makePair(baudRate: 1_000_000)
        let (hostB, deviceB) = BytePipe.makePair(baudRate: 1_000_000)
        let server = try VirtualBusServer.serve(buses: [a, b], transports: [deviceA, deviceB])
        defer { server.stop() }
        #expect(server.paths == [nil, nil])
        let timing = BusTiming(returnDelayMicroseconds: 500, marginNanoseconds: 50_000_000, retries: 0)
        let masterA = BusMaster(transport: hostA, protocol: .feetechSTS, timing: timing)
        let masterB = BusMaster(transport: hostB, protocol: .feetechSTS, timing: timing)
        #expect(try masterA.ping(3).modelNumber == 777)
        #expect(try masterB.ping(2).modelNumber == 777)
        masterB.timing.marginNanoseconds = 2_000_000
        #expect((try? masterB.ping(3)) == nil, "bus b has no servo 3")
        masterB.timing.marginNanoseconds = 50_000_000
        let idsA: [ServoID] = [1, 2, 3]
        let idsB: [ServoID] = [1, 2]
        let dataA = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * 2, alignment: 8)
        let dataB = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * 2, alignment: 8)
        defer {
            dataA.deallocate()
            dataB.deallocate()
        }
        let together = ConcurrentBusTransactions(masters: [masterA, masterB])
        var best = (together: UInt64.max, apart: UInt64.max)
        try idsA.withUnsafeBufferPointer { listA in
            try idsB.withUnsafeBufferPointer { listB in
                for _ in 0..<5 {
                    var start = MonotonicInstant.now()
                    masterA.beginSyncRead(ids: listA, address: 56, length: 2, into: dataA)
                    masterB.beginSyncRead(ids: listB, address: 56, length: 2, into: dataB)
                    together.finishAll()
                    best.together = min(best.together, MonotonicInstant.now().nanoseconds(since: start))
                    #expect(masterA.transactionError == nil && masterB.transactionError == nil)
                    start = MonotonicInstant.now()
                    try masterA.syncRead(ids: listA, address: 56, length: 2, into: dataA)
                    try masterB.syncRead(ids: listB, address: 56, length: 2, into: dataB)
                    best.apart = min(best.apart, MonotonicInstant.now().nanoseconds(since: start))
                }
            }
        }
        // Each reply waits its servo's 500 µs Return Delay Time: bus a takes over 1.5 ms, bus b over 1 ms.
        print("two buses: \(best.together / 1000) µs together, \(best.apart / 1000) µs one after the other")
        #expect(best.together >= 1_500_000)
        #expect(best.apart >= 2_500_000)
        #expect(Double(best.together) < 0.85 * Double(best.apart))
        #expect(group.timeNs > 0)
    }

    /// Lockstep transports of a group share one simulated now: requests sent to both buses at the same moment
    /// are read by the time of the slower bus, and the clock is any of them.
    @Test func lockstepBusesShareOneClock() throws {
        let (a, b) = try twoBuses()
        let group = try VirtualBusGroup(buses: [a, b], dynamics: CountingDynamics())
        let transports = LockstepBusTransport.group([a, b])
        let timing = BusTiming(returnDelayMicroseconds: 500, marginNanoseconds: 1_000_000_000, retries: 0)
        let masterA = BusMaster(transport: transports[0], protocol: .feetechSTS, timing: timing)
        let masterB = BusMaster(transport: transports[1], protocol: .feetechSTS, timing: timing)
        transports[1].advance(toNanoseconds: 100_000_000)
        #expect(transports[0].nanoseconds == 100_000_000)
        #expect(group.timeNs == 100_000_000)
        let dataA = UnsafeMutableRawBufferPointer.allocate(byteCount: 3 * 2, alignment: 8)
        let dataB = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * 2, alignment: 8)
        defer {
            dataA.deallocate()
            dataB.deallocate()
        }
        let idsA: [ServoID] = [1, 2, 3]
        let idsB: [ServoID] = [1, 2]
        idsA.withUnsafeBufferPointer { listA in
            idsB.withUnsafeBufferPointer { listB in
                masterA.beginSyncRead(ids: listA, address: 56, length: 2, into: dataA)
                masterB.beginSyncRead(ids: listB, address: 56, length: 2, into: dataB)
                ConcurrentBusTransactions(masters: [masterA, masterB]).finishAll()
            }
        }
        #expect(masterA.transactionError == nil && masterB.transactionError == nil)
        // Bus a: request 11 bytes + 3 replies of 8 bytes at 1 Mbit/s, each after 500 µs of Return Delay Time and
        // 5 µs of firmware: 1865 µs; bus b (10 + 2 × 8 bytes, 2 replies) 1270 µs at the same time.
        let elapsed = transports[0].nanoseconds - 100_000_000
        #expect(elapsed >= 1_800_000 && elapsed < 1_950_000, "\(elapsed) ns")
    }
}
