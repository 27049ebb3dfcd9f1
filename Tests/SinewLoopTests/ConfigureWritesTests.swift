import Foundation
import SinewRuntime
import SinewSim
import Testing

/// Configure reads every setting it manages and writes only those that differ: a second configure of the same
/// servos writes nothing to their EEPROM (which wears out), and what the first one changed is listed.
@Suite struct ConfigureWritesTests {
    @Test(arguments: ["so101", "dxl6"])
    func aSecondConfigureWritesNothing(robot: String) throws {
        let rig = try SimulatedRig(robot: robot, lockstep: true)
        func eepromWrites() -> Int { rig.bus.servos.reduce(0) { $0 + $1.eepromWrites } }
        try rig.loop.lifecycle.configure()
        let first = eepromWrites()
        let changes = rig.loop.configurationChanges
        print("\(robot): first configure changed \(changes.count) settings with \(first) EEPROM writes")
        // Fresh servos: at least Return Delay Time (factory 250 = 500 µs) changes on each.
        #expect(first >= rig.bus.servos.count)
        #expect(changes.contains { $0.contains("Return Delay Time") }, "\(changes)")
        try rig.loop.lifecycle.cleanup()
        try rig.loop.lifecycle.configure()
        #expect(eepromWrites() == first, "the second configure wrote the EEPROM")
        #expect(rig.loop.configurationChanges.isEmpty, "\(rig.loop.configurationChanges)")
        try rig.loop.lifecycle.shutdown()
    }
}
