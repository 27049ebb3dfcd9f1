import SinewBus
import Testing

@Test func wireLimitMatchesProtocolsDoc() {
    // PROTOCOLS.md: 6 servos at 1 Mbit/s, return delay 0 → read 1.10 ms + write 0.44 ms → ~650 cycles/s.
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
