import Foundation
import SinewTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The command line with robots of several buses: `sinew virtual-bus --robot` serves one pseudo-terminal per
/// bus behind one physics, `sinew run --backend pty --port DIR` drives them, the shipped multi-bus robots run
/// their demo in simulation, and `sinew bench loop --buses` reports both rates.
@Suite(.serialized) struct MultiBusCommandTests {
    /// `sinew virtual-bus --robot` of the bimanual SO-101 prints one `BUS PATH` line per bus and links DIR/left
    /// and DIR/right; `sinew run --backend pty --port DIR` drives both arms through them.
    @Test func virtualBusServesEveryBusAndRunDrivesThemAll() throws {
        let robot = repositoryRoot + "/Hardware/robots/so101-bimanual/robot.yaml"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-multibus-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try SinewChild(["virtual-bus", "--robot", robot, "--link-dir", dir])
        defer {
            server.signal(SIGTERM)
            server.wait(within: 5)
            server.kill()
        }
        let first = try #require(server.firstLine(within: 60), "nothing printed: \(server.stderr)")
        #expect(first.hasPrefix("left /dev/pts/"), "\(first)")
        // Both lines come together, before the description.
        let end = Date().addingTimeInterval(10)
        while !server.stdout.contains("Serving") && Date() < end { usleep(20_000) }
        let lines = server.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count >= 3 && lines[1].hasPrefix("right /dev/pts/"), "\(lines)")
        #expect(lines.count >= 3 && lines[2].contains("left: \(dir)/left") && lines[2].contains("right: \(dir)/right"))
        #expect(
            FileManager.default.fileExists(atPath: dir + "/left")
                && FileManager.default.fileExists(atPath: dir + "/right"))

        for attempt in 1...3 {
            let run = try runSinew(["run", robot, "--backend", "pty", "--port", dir, "--duration", "2", "--json"])
            let report = try #require(jsonObject(run.stdout), "\(run.stdout)\n\(run.stderr)")
            let buses = try #require(report["bus"] as? [String: Any], "\(report)")
            #expect(Set(buses.keys) == ["left", "right"])
            if report["final_state"] as? String != "active" && attempt < 3 && measuredStallS(in: report) > machineStallS
            {
                print(
                    "multi-bus pty run, attempt \(attempt): safe after a stall of the machine: \(safetyCauses(in: report))"
                )
                continue
            }
            #expect(run.status == 0, "\(run.stderr)")
            #expect(report["final_state"] as? String == "active", "\(safetyCauses(in: report))")
            #expect((report["ticks"] as? Int ?? 0) > 500)
            break
        }
        server.signal(SIGTERM)
        #expect(server.wait(within: 10))
        #expect(!FileManager.default.fileExists(atPath: dir + "/left"), "links removed on exit")
    }

    /// `--fault-bus` puts the faults on one bus; it needs --robot, and a bus that exists.
    @Test func faultBusIsCheckedBeforeServing() throws {
        let robot = repositoryRoot + "/Hardware/robots/so101-bimanual/robot.yaml"
        let unknown = try runSinew(["virtual-bus", "--robot", robot, "--fault", "silent=3", "--fault-bus", "middle"])
        #expect(unknown.status != 0)
        #expect(
            unknown.stderr.contains("--fault-bus middle") && unknown.stderr.contains("left, right"), "\(unknown.stderr)"
        )
        let noRobot = try runSinew(["virtual-bus", "--model", "sts3215", "--fault-bus", "left"])
        #expect(noRobot.status != 0 && noRobot.stderr.contains("--fault-bus goes with --robot"), "\(noRobot.stderr)")
    }

    /// The humanoid's demo trajectory in simulation (lockstep: all of it, as fast as the machine goes) ends
    /// where it should, with no safety event, its 26 servos on four buses read together.
    @Test(arguments: ["humanoid-upper", "so101-bimanual"])
    func theShippedMultiBusRobotsRunTheirDemo(robot: String) throws {
        let path = repositoryRoot + "/Hardware/robots/\(robot)/robot.yaml"
        let run = try runSinew(["run", path, "--fast", "--json"])
        let report = try #require(jsonObject(run.stdout), "\(run.stdout)\n\(run.stderr)")
        #expect(run.status == 0, "\(run.stderr)")
        #expect(report["final_state"] as? String == "active", "\(safetyCauses(in: report))")
        #expect(report["stopped_by"] as? String == "duration")
        let buses = try #require(report["bus"] as? [String: Any])
        #expect(buses.count == (robot == "humanoid-upper" ? 4 : 2))
        let tracking = try #require(report["tracking_rms_rad"] as? Double)
        print("\(robot): demo in lockstep, tracking \(Int(tracking * 1000)) mrad RMS")
        #expect(tracking < 0.08)
    }

    /// `sinew bench loop --buses 2 --servos 3`: the synthetic robot of two buses of three servos, measured with
    /// its buses together and in sequence in the same run. The figures depend on the machine: the test checks
    /// that they are there and plausible, never how fast.
    @Test func benchLoopReportsTheBusesTogetherAndInSequence() throws {
        let (result, parsed) = try runSinewRetryingMachineStalls([
            "bench", "loop", "--buses", "2", "--servos", "3", "--rate", "10000", "--duration", "0.5", "--json",
        ])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let object = try #require(parsed, "not one JSON object: \(result.stdout)")
        #expect(object["buses"] as? Int == 2)
        #expect(object["servos_per_bus"] as? [Int] == [3, 3])
        #expect(object["joints"] as? Int == 6)
        #expect(object["bus_io"] as? String == "poll")
        let wireLimit = try #require(object["wire_limit_hz"] as? Double)
        let sequentialWireLimit = try #require(object["sequential_wire_limit_hz"] as? Double)
        // Feetech, 3 servos reading 15 bytes and writing 2: (8 + 3) + 3 · 21 + 8 + 3 · 3 = 91 bytes a cycle.
        #expect(abs(wireLimit - 1_000_000 / 910) < 0.01)
        #expect(abs(sequentialWireLimit - wireLimit / 2) < 0.01)
        let achieved = try #require(object["achieved_hz"] as? Double)
        let sequential = try #require(object["sequential_achieved_hz"] as? Double)
        #expect(achieved > 0 && sequential > 0)
        #expect(achieved < wireLimit * 1.02)
        #expect(object["speedup_vs_sequential"] as? Double != nil)
        let perBus = try #require(object["bus_wire"] as? [[String: Any]])
        #expect(perBus.map { $0["name"] as? String } == ["bus1", "bus2"])
    }

    @Test func benchLoopRefusesBusesWithoutServosAndSequentialAsTheMode() throws {
        let noServos = try runSinew(["bench", "loop", "--buses", "2"])
        #expect(noServos.status != 0 && noServos.stderr.contains("--buses"), "\(noServos.stderr)")
        let sequential = try runSinew(["bench", "loop", "--servos", "2", "--buses", "2", "--bus-io", "sequential"])
        #expect(sequential.status != 0 && sequential.stderr.contains("--bus-io"), "\(sequential.stderr)")
    }
}
