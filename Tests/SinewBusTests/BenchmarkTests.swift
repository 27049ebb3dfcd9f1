import SinewBus
import Testing

@Test func wireLimitMatchesProtocolsDoc() {
    // docs/protocols.md: 6 servos at 1 Mbit/s, return delay 0 → read 1.10 ms + write 0.44 ms → ~650 cycles/s.
    let limit = BusBenchmark.wireLimitCyclesPerSecond(protocol: .dynamixel, servos: 6)
    #expect(abs(limit - 1 / 1.54e-3) < 1)
    // 12 servos → ~357.
    #expect(abs(BusBenchmark.wireLimitCyclesPerSecond(protocol: .dynamixel, servos: 12) - 357) < 5)
}

/// Behaviour only (the figure itself is printed by `sinew bench bus`): the stack cycle runs to completion.
@Test func stackBenchmarkRuns() throws {
    for p in [BusProtocol.dynamixel, .feetechSTS] {
        let ns = try BusBenchmark.stackNanosecondsPerCycle(protocol: p, iterations: 2000)
        #expect(ns > 0)
        print("bus stack \(p): \(ns) ns per 6-servo sync read + sync write cycle")
    }
}

/// Behaviour only: the floor and the bus-master loops over a pty complete and count cycles.
@Test func ptyBenchmarkLoopsRun() throws {
    let floor = try BusBenchmark.floorCyclesPerSecond(protocol: .dynamixel, servos: 6, seconds: 0.2)
    #expect(floor > 0)
    let primary = try PseudoTerminalTransport.createPair()
    let servos = ScriptedBus(end: primary, protocol: .dynamixel, ids: [1, 2, 3, 4, 5, 6])
    defer { servos.stop() }
    let bus = BusMaster(
        transport: try PseudoTerminalTransport(path: primary.path), protocol: .dynamixel,
        timing: BusTiming(returnDelayMicroseconds: 0, marginNanoseconds: 300_000_000))
    let result = BusBenchmark.cyclesPerSecond(
        bus: bus, ids: [1, 2, 3, 4, 5, 6], readAddress: 126, readLength: 10, writeAddress: 116, writeLength: 4,
        seconds: 0.2)
    #expect(result.cyclesPerSecond > 0)
    #expect(result.failures == 0)
    print("pty floor \(floor) cycles/s; bus master vs scripted test servos \(result.cyclesPerSecond) cycles/s")
}
