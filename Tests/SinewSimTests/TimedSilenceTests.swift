import SinewBus
import SinewSim
import Testing

@Suite struct TimedSilenceTests {
    /// `silent=ID@SECONDS` is a servo that dies mid-run; plain `silent=ID` stays silent from the start.
    @Test func timedSilenceParses() throws {
        let faults = try FaultInjection.parse("silent=3@2.5,silent=4,overload=2@1")
        #expect(faults.silences == [.init(id: 3, afterSeconds: 2.5)])
        #expect(faults.silentIDs == [4])
        #expect(faults.overloads == [.init(id: 2, afterSeconds: 1)])
        for bad in ["silent=3@", "silent=3@-1", "silent=x@1", "silent=300@1", "silent=3@nan", "silent=@2"] {
            #expect(throws: FaultSpecError.self, "\(bad)") { try FaultInjection.parse(bad) }
        }
        do {
            _ = try FaultInjection.parse("silent=3@soon")
        } catch {
            print("silent=3@soon: \(error)")
            #expect(error.description.contains("ID@SECONDS"))
        }
    }

    /// The servo answers until its time, then never again (REBOOT does not bring it back); the others
    /// keep answering.
    @Test(arguments: ["xl330-m288", "sts3215"])
    func aServoFallsSilentAtItsTime(model: String) throws {
        let host = try TestHost(model: model, ids: [1, 2, 3]) { $0.faults.silences = [.init(id: 2, afterSeconds: 0.5)] }
        #expect(host.ping(2).map(\.id) == [2])
        host.wait(seconds: 0.3)
        #expect(host.ping(2).map(\.id) == [2], "still answering before its time")
        host.wait(seconds: 0.3)
        #expect(host.ping(2).isEmpty, "silent after 0.5 s")
        #expect(host.ping(1).map(\.id) == [1])
        #expect(host.ping(3).map(\.id) == [3])
        #expect(try #require(host.bus.servo(id: 2)).isSilent)
        try #require(host.bus.servo(id: 2)).reboot()
        #expect(host.ping(2).isEmpty, "a dead servo stays dead")
    }
}
