import Foundation
import SinewTestSupport
import Testing

/// DDS in the tests stays on this machine: loopback only, multicast off, discovery by unicast to 127.0.0.1.
enum ROSTestNetwork {
    static let loopbackURI =
        "<CycloneDDS><Domain id=\"any\"><General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
        + "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
        + "<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex><Peers><Peer address=\"127.0.0.1\"/></Peers>"
        + "</Discovery></Domain></CycloneDDS>"

    /// A domain of this test process's own (tests of other checkouts may run on the machine at the same time).
    static func domain(_ k: Int) -> Int { 100 + Int(getpid() % 30) * 4 + k }

    /// The SO-101's robot.yaml in `directory` with its e-stop file off and a `ros:` section (`rosLines`, indented
    /// under `ros:`).
    static func robotYAML(in directory: String, rosLines: [String], loopLines: [String] = []) throws -> String {
        var text = try String(contentsOfFile: repositoryRoot + "/Hardware/robots/so101/robot.yaml", encoding: .utf8)
        text = text.replacingOccurrences(
            of: "model: so101.urdf", with: "model: \(repositoryRoot)/Hardware/robots/so101/so101.urdf")
        text = text.replacingOccurrences(
            of: "    file: /tmp/sinew-so101.estop    # `touch` it to stop the arm", with: "    required: false")
        text += "\nros:\n" + rosLines.map { "  " + $0 }.joined(separator: "\n") + "\n"
        let path = directory + "/robot.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The loopback-only lines of a robot.yaml's `ros:`.
    static let loopbackLines = ["interface: lo", "peers: [127.0.0.1]", "multicast: false"]
}

/// A child process (sinew, or Python) whose standard output goes to a file; ends with the test process.
final class BackgroundChild: @unchecked Sendable {
    let process: Process
    let outPath: String
    let errPath: String

    init(executable: String, arguments: [String], environment: [String: String] = [:], directory: String) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = sinewChildEnvironment.merging(environment) { $1 }
        let name = UUID().uuidString.prefix(8)
        outPath = directory + "/\(name).out"
        errPath = directory + "/\(name).err"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    /// Waits for the child's end (at most `timeoutS`, then SIGKILL); returns its exit status.
    @discardableResult
    func wait(timeoutS: Double) -> Int32 {
        let end = Date().addingTimeInterval(timeoutS)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// The last JSON object line of standard output.
    var json: [String: Any]? {
        stdout.split(separator: "\n").last { $0.hasPrefix("{") }.flatMap { jsonObject(String($0)) }
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Sinew on ROS 2's DDS wire, tested from PyPI cyclonedds in other processes (Tests/python/ros_check.py): no ROS
/// installation. Each test runs its own robot on a domain of its own, loopback only.
@Suite(.serialized) struct ROSTests {
    static func python() throws -> String { try testPython(importing: ["cyclonedds"]) }
    static let script = repositoryRoot + "/Tests/python/ros_check.py"

    /// A sinew run and a Python peer beside it; retried (up to three times) when the run went to its safe state
    /// because the machine stalled the loop thread (an overrun event after a measured stall), not for what is tested.
    static func runWithPeer(
        robot: String, sinewArguments: [String], peerArguments: [String], directory: String, timeoutS: Double = 60
    ) throws -> (report: [String: Any], peer: [String: Any], sinewErr: String, peerErr: String) {
        let python = try python()
        var last: (report: [String: Any], peer: [String: Any], sinewErr: String, peerErr: String)?
        for attempt in 1...3 {
            let sinew = try BackgroundChild(
                executable: sinewExecutable, arguments: ["run", robot, "--json"] + sinewArguments,
                environment: ["CYCLONEDDS_URI": ROSTestNetwork.loopbackURI], directory: directory)
            let peer = try BackgroundChild(
                executable: python, arguments: [script] + peerArguments,
                environment: ["CYCLONEDDS_URI": ROSTestNetwork.loopbackURI], directory: directory)
            peer.wait(timeoutS: timeoutS)
            sinew.wait(timeoutS: timeoutS)
            let report = try #require(sinew.json, "sinew printed no report:\n\(sinew.stdout)\n\(sinew.stderr)")
            let peerReport = try #require(peer.json, "the peer printed nothing:\n\(peer.stdout)\n\(peer.stderr)")
            last = (report, peerReport, sinew.stderr, peer.stderr)
            let stalled =
                safetyCauses(in: report).contains("overrun") && measuredStallS(in: report) > machineStallS
            guard stalled, attempt < 3 else { break }
            print("ros: the loop thread stalled \(Int(measuredStallS(in: report) * 1000)) ms (overrun); run again")
        }
        return last!
    }

    /// A ROS 2 peer sees the robot as a ROS 2 robot: every topic under its namespace with ROS 2's type names (from
    /// the peer's discovery data and from the `cyclonedds ls` CLI),
    /// joint_states at the configured rate with the robot's joint names and the positions it reports, tf of every
    /// link, diagnostics, robot_description as a late joiner; a JointTrajectory it publishes is followed (within
    /// 60 mrad of the trajectory at every joint_states sample, measured from the moment it was sent, and within
    /// 40 mrad of its goal at the end); an e-stop it publishes puts the robot in its safe state in the tick that
    /// took the sample, or the next.
    @Test func aROSPeerSeesFollowsAndStopsTheRobot() throws {
        let directory = temporaryFolder("ros-peer")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let domain = ROSTestNetwork.domain(0)
        let robot = try ROSTestNetwork.robotYAML(
            in: directory,
            rosLines: ["enabled: true", "namespace: arm", "domain_id: \(domain)", "joint_states_rate_hz: 250"]
                + ROSTestNetwork.loopbackLines)
        // PyPI cyclonedds's own CLI beside the peer: `cyclonedds ls` lists the robot's joint_states writer and its type.
        let cli = URL(fileURLWithPath: try Self.python()).deletingLastPathComponent().appendingPathComponent(
            "cyclonedds")
        let listing = try BackgroundChild(
            executable: cli.path,
            arguments: [
                "ls", "--id", String(domain), "--runtime", "6s", "--topic", "rt/arm/joint_states",
                "--suppress-progress-bar", "--color", "none",
            ],
            environment: ["CYCLONEDDS_URI": ROSTestNetwork.loopbackURI, "COLUMNS": "200"], directory: directory)
        let (report, peer, sinewErr, peerErr) = try Self.runWithPeer(
            robot: robot, sinewArguments: ["--follow-ros", "--duration", "9"],
            peerArguments: ["scenario", "--namespace", "arm", "--domain", String(domain)], directory: directory)
        let context = "sinew:\n\(sinewErr)\npeer:\n\(peerErr)\n\(peer)"
        listing.wait(timeoutS: 20)
        let listed = listing.stdout
        #expect(
            listed.contains("rt/arm/joint_states") && listed.contains("sensor_msgs::msg::dds_::JointState_"),
            "cyclonedds ls:\n\(listed)\n\(listing.stderr)")
        #expect(peer["matched"] as? Bool == true, "\(context)")
        let types = peer["types"] as? [String: String] ?? [:]
        print("ros peer: types \(types)")
        #expect(types["rt/arm/joint_states"] == "sensor_msgs::msg::dds_::JointState_", "\(context)")
        #expect(types["rt/arm/tf"] == "tf2_msgs::msg::dds_::TFMessage_")
        #expect(types["rt/arm/diagnostics"] == "diagnostic_msgs::msg::dds_::DiagnosticArray_")
        #expect(types["rt/arm/robot_description"] == "std_msgs::msg::dds_::String_")
        #expect(types["rt/arm/imu"] == "sensor_msgs::msg::dds_::Imu_")
        #expect(types["rt/arm/joint_trajectory"] == "trajectory_msgs::msg::dds_::JointTrajectory_")
        #expect(types["rt/arm/cmd"] == "sensor_msgs::msg::dds_::JointState_")
        #expect(types["rt/arm/estop"] == "std_msgs::msg::dds_::Empty_")
        let names = peer["names"] as? [String] ?? []
        #expect(names == ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"])
        // The stamps are the ticks' times: 250 Hz of them, whatever the peer's own scheduling.
        let stampRate = peer["stamp_rate_hz"] as? Double ?? 0
        let receivedRate = peer["joint_states_rate_hz"] as? Double ?? 0
        print(
            "ros peer: joint_states \(stampRate) Hz by stamp, \(receivedRate) Hz received over 1 s, "
                + "\(peer["joint_states_gaps"] ?? "?") gaps")
        #expect(abs(stampRate - 250) < 12.5, "\(context)")
        // Received in the peer at that rate too (a Python peer on a loaded machine may miss a few: 90 %).
        #expect(receivedRate > 225, "\(context)")
        // The positions a peer reads are the robot's: before the trajectory the arm holds where it was activated.
        let before = peer["position_before"] as? [Double] ?? []
        #expect(before.count == 6 && before.allSatisfy { abs($0) < 2 })
        #expect((peer["tf_frames"] as? [String] ?? []).contains("gripper_frame_link"))
        #expect((peer["robot_description_bytes"] as? Int ?? 0) > 1000)
        #expect((peer["diagnostics"] as? [String: String])?["state"] == "active")
        // Diagnostics carry each servo's temperature and voltage from the loop's servo-health tap: the six simulated
        // STS3215s, read in the tick's own sync read.
        let servos = peer["servo_diagnostics"] as? [[String: Any]] ?? []
        let temperatures = servos.compactMap { ($0["temperature_c"] as? String).flatMap(Double.init) }
        let voltages = servos.compactMap { ($0["voltage_v"] as? String).flatMap(Double.init) }
        print(
            "ros peer: servo diagnostics "
                + servos.map {
                    "\($0["bus"] ?? "?")/\($0["id"] ?? "?") \($0["joint"] ?? "?"): "
                        + "\($0["temperature_c"] ?? "?") °C, \($0["voltage_v"] ?? "?") V, level \($0["level"] ?? "?")"
                }
                .joined(separator: "; "))
        #expect(servos.map { $0["joint"] as? String } == names.map { Optional($0) }, "\(context)")
        #expect(servos.allSatisfy { $0["model"] as? String == "sts3215" })
        #expect(temperatures.count == 6 && temperatures.allSatisfy { $0 >= 20 && $0 <= 80 }, "\(servos)")
        #expect(voltages.count == 6 && voltages.allSatisfy { $0 > 5 && $0 < 15 }, "\(servos)")
        #expect(servos.allSatisfy { $0["temperature_warn_above_c"] as? String == "60" })
        // The Imu has its angular velocity and linear acceleration (covariance element 0 not -1: data), the
        // accelerometer reads gravity while the arm holds, and the gyroscope sees the gripper turn on the trajectory.
        let covariance = peer["imu_covariance0"] as? [String: Double] ?? [:]
        let gravity = peer["imu_acceleration_norm_still"] as? Double ?? 0
        let turning = peer["imu_angular_speed_max_moving"] as? Double ?? 0
        print(
            "ros peer: imu \(peer["imu_samples"] ?? 0) samples, covariance[0] \(covariance), |a| still \(gravity) m/s², "
                + "|ω| max moving \(turning) rad/s")
        #expect(covariance["angular_velocity"] == 0 && covariance["linear_acceleration"] == 0, "\(context)")
        #expect(gravity > 9.0 && gravity < 10.6, "\(context)")
        #expect(turning > 0.1, "\(context)")
        let trackingMax = peer["tracking_max_rad"] as? Double ?? 1
        let finalError = peer["final_error_rad"] as? Double ?? 1
        print(
            "ros peer: trajectory tracking max \(trackingMax) rad, RMS \(peer["tracking_rms_rad"] ?? "?") rad, "
                + "final error \(finalError) rad over \(peer["tracking_samples"] ?? 0) samples")
        #expect(trackingMax < 0.06, "\(context)")
        #expect(finalError < 0.04)
        // The e-stop.
        let ros = try #require(report["ros"] as? [String: Any], "\(report)")
        #expect(ros["trajectories_accepted"] as? Int == 1)
        #expect(report["final_state"] as? String == "safe")
        let events = report["safety_events"] as? [[String: Any]] ?? []
        #expect(events.first?["cause"] as? String == "emergencyStop", "\(events)")
        #expect(events.first?["detail"] as? String == "ros")
        let received = try #require(ros["estop_received_tick"] as? Int, "\(ros)")
        let safe = try #require(ros["safe_state_tick"] as? Int, "\(ros)")
        print("ros peer: e-stop taken in tick \(received), safe state in tick \(safe)")
        #expect(safe >= received && safe <= received + 1)
        #expect(peer["state_after_estop"] as? String == "safe")
    }

    /// Telemetry and ROS 2 in one `sinew run` share the loop's one servo-health tap (a second tap would freeze the
    /// first's frames): the peer's per-servo diagnostics come from frames that move on (their `tick` grows from
    /// message to message), and the metrics scrape of the same run has the servos' temperatures too.
    @Test func telemetryAndROSShareTheServoHealthTap() throws {
        let directory = temporaryFolder("ros-telemetry")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let domain = ROSTestNetwork.domain(1)
        let robot = try ROSTestNetwork.robotYAML(
            in: directory,
            rosLines: ["enabled: true", "namespace: hot", "domain_id: \(domain)", "diagnostics_rate_hz: 5"]
                + ROSTestNetwork.loopbackLines)
        let token = "ros-telemetry-test-token-0123456789"
        let tokenPath = directory + "/token"
        try (token + "\n").write(toFile: tokenPath, atomically: true, encoding: .utf8)
        let sinew = try BackgroundChild(
            executable: sinewExecutable,
            arguments: [
                "run", robot, "--json", "--duration", "6", "--metrics", "127.0.0.1:0", "--token-file", tokenPath,
            ],
            environment: ["CYCLONEDDS_URI": ROSTestNetwork.loopbackURI], directory: directory)
        let peer = try BackgroundChild(
            executable: try Self.python(),
            arguments: [Self.script, "servos", "--namespace", "hot", "--domain", String(domain), "--seconds", "5"],
            environment: ["CYCLONEDDS_URI": ROSTestNetwork.loopbackURI], directory: directory)
        var port: Int?
        let deadline = Date().addingTimeInterval(30)
        while port == nil && Date() < deadline && sinew.process.isRunning {
            for line in sinew.stderr.split(separator: "\n") where line.hasPrefix("metrics: http://127.0.0.1:") {
                port = Int(line.dropFirst("metrics: http://127.0.0.1:".count).prefix { $0.isNumber })
            }
            usleep(50_000)
        }
        let metricsPort = try #require(port, "no metrics line:\n\(sinew.stderr)")
        usleep(2_000_000)
        let scrape = try httpRequest(
            port: metricsPort, target: "/metrics", headers: ["Authorization": "Bearer \(token)"])
        peer.wait(timeoutS: 30)
        sinew.wait(timeoutS: 30)
        let result = try #require(peer.json, "the peer printed nothing:\n\(peer.stdout)\n\(peer.stderr)")
        let context = "sinew:\n\(sinew.stderr)\npeer:\n\(peer.stderr)\n\(result)"
        let ticks = result["ticks"] as? [Int] ?? []
        let servos = result["servo_diagnostics"] as? [[String: Any]] ?? []
        let temperatures = servos.compactMap { ($0["temperature_c"] as? String).flatMap(Double.init) }
        let scraped = scrape.text.split(separator: "\n").filter { $0.hasPrefix("sinew_servo_temperature_celsius{") }
        print(
            "ros + telemetry: diagnostics from servo-health ticks \(ticks.prefix(3))…\(ticks.suffix(2)), "
                + "temperatures \(temperatures) °C; metrics: \(scraped.first ?? "none")")
        #expect(ticks.count >= 5, "\(context)")
        #expect(Set(ticks.filter { $0 >= 0 }).count >= 5, "the servo readings did not move on: \(ticks)")
        #expect(temperatures.count == 6 && temperatures.allSatisfy { $0 >= 20 && $0 <= 80 }, "\(context)")
        #expect(scrape.status == 200)
        #expect(scraped.count == 6, "\(scrape.text.prefix(2000))")
    }

    /// Direct targets on `cmd` are followed under the watchdog: streamed at 100 Hz (a ramp of 0.1 rad over a second,
    /// then held) the gripper reaches the last one (within 20 mrad); when they stop, the robot is in its safe state
    /// (`staleCommand`) as the peer sees it within a second (watchdog_ms 50; diagnostics go out on the change; 52 ms
    /// here); a `recover` sample brings it back to active.
    @Test func directTargetsStopAtTheWatchdogAndRecover() throws {
        let directory = temporaryFolder("ros-targets")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let domain = ROSTestNetwork.domain(0)
        let robot = try ROSTestNetwork.robotYAML(
            in: directory,
            rosLines: ["enabled: true", "namespace: arm", "domain_id: \(domain)", "joint_states_rate_hz: 100"]
                + ROSTestNetwork.loopbackLines)
        let (report, peer, sinewErr, peerErr) = try Self.runWithPeer(
            robot: robot, sinewArguments: ["--follow-ros", "--duration", "8"],
            peerArguments: ["targets", "--namespace", "arm", "--domain", String(domain)], directory: directory)
        let context = "sinew:\n\(sinewErr)\npeer:\n\(peerErr)\n\(peer)"
        #expect(peer["matched"] as? Bool == true, "\(context)")
        let goal = peer["gripper_goal_rad"] as? Double ?? .nan
        let reached = peer["gripper_reached_rad"] as? Double ?? .infinity
        let after = peer["after_stopping"] as? [String: Any] ?? [:]
        let recovered = peer["after_recover"] as? [String: Any] ?? [:]
        print(
            "ros targets: \(peer["targets_sent"] ?? 0) sent, gripper at \(reached) rad for \(goal); after stopping "
                + "\(after) in \(peer["safe_after_s"] ?? "?") s; after recover \(recovered)")
        #expect(abs(reached - goal) < 0.02, "\(context)")
        #expect(after["state"] as? String == "safe" && after["safety_cause"] as? String == "staleCommand", "\(context)")
        #expect((peer["safe_after_s"] as? Double ?? 9) < 1.0)
        #expect(recovered["state"] as? String == "active", "\(context)")
        let ros = try #require(report["ros"] as? [String: Any], "\(report)")
        #expect((ros["commands_accepted"] as? Int ?? 0) >= 100, "\(ros)")
        #expect(ros["commands_refused"] as? Int == 0 && ros["recoveries_requested"] as? Int == 1, "\(ros)")
        #expect(safetyCauses(in: report) == ["staleCommand"], "\(report)")
        #expect(report["final_state"] as? String == "active", "\(report)")
    }

    /// Faults: a reliable subscriber that is killed mid-run, a peer flooding trajectories at 1 kHz, and malformed
    /// samples from raw writers with the right type names. The loop keeps its rate (no safety event, ≥ 97 % of 500 Hz),
    /// every malformed sample is counted and refused, and the robot ends where it should (active).
    @Test func faultsLeaveTheLoopAtItsRate() throws {
        let directory = temporaryFolder("ros-faults")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let domain = ROSTestNetwork.domain(1)
        let robot = try ROSTestNetwork.robotYAML(
            in: directory,
            rosLines: ["enabled: true", "namespace: arm", "domain_id: \(domain)", "joint_states_rate_hz: 500"]
                + ROSTestNetwork.loopbackLines)
        let python = try Self.python()
        // The subscriber that vanishes: started first, killed (SIGKILL) once the robot runs.
        let subscriber = try BackgroundChild(
            executable: python,
            arguments: [Self.script, "subscribe", "--namespace", "arm", "--domain", String(domain)],
            environment: ["CYCLONEDDS_URI": ROSTestNetwork.loopbackURI], directory: directory)
        defer { subscriber.wait(timeoutS: 0) }
        let killer = Thread {
            let end = Date().addingTimeInterval(20)
            while !subscriber.stdout.contains("ready") && Date() < end { usleep(50_000) }
            usleep(500_000)
            kill(subscriber.process.processIdentifier, SIGKILL)
        }
        killer.start()
        let (report, peer, sinewErr, peerErr) = try Self.runWithPeer(
            robot: robot, sinewArguments: ["--follow-ros", "--duration", "7"],
            peerArguments: [
                "faults", "--namespace", "arm", "--domain", String(domain), "--flood-hz", "1000", "--flood-s", "2",
                "--malformed", "40",
            ], directory: directory)
        let context = "sinew:\n\(sinewErr)\npeer:\n\(peerErr)\n\(peer)"
        let ros = try #require(report["ros"] as? [String: Any], "\(report)\n\(context)")
        print(
            "ros faults: flood \(peer["flood_sent"] ?? 0) trajectories at \(peer["flood_rate_hz"] ?? 0) Hz; "
                + "ros \(ros); loop \(report["achieved_hz"] ?? 0) Hz, wake p99 \(report["wake_p99_us"] ?? 0) µs, "
                + "overruns \(report["overruns"] ?? 0)")
        #expect(peer["matched"] as? Bool == true, "\(context)")
        #expect(subscriber.stdout.contains("ready"), "the subscriber never matched: \(subscriber.stderr)")
        #expect(!subscriber.process.isRunning, "the subscriber was killed mid-run")
        #expect(report["final_state"] as? String == "active", "\(report)\n\(context)")
        #expect(safetyCauses(in: report).isEmpty)
        #expect((report["achieved_hz"] as? Double ?? 0) >= 485, "\(report)")
        let sent = peer["malformed_sent"] as? Int ?? 0
        #expect(sent == 80)
        // Keep-last QoS (ROS 2's default): a reader thread late on a loaded machine can find a sample overwritten by
        // the next one (a clean-clone CI run saw 79 of 80). Every sample that arrives is counted and refused.
        let malformed = ros["malformed_samples"] as? Int ?? 0
        #expect(malformed <= sent && malformed >= sent * 9 / 10, "\(ros)")
        let refused = (ros["trajectories_refused"] as? Int ?? 0) + (ros["commands_refused"] as? Int ?? 0)
        #expect(refused >= malformed, "\(ros)")
        #expect((ros["trajectories_refused"] as? Int ?? 0) >= sent * 9 / 20)
        #expect((ros["commands_refused"] as? Int ?? 0) >= sent * 9 / 20)
        #expect((ros["trajectories_accepted"] as? Int ?? 0) >= (peer["flood_sent"] as? Int ?? 0) / 2)
        #expect((ros["published"] as? [String: Int])?["joint_states"] ?? 0 > 2000)
    }

    /// A fleet: `sinew fleet up 4` starts four simulated robots in four processes on one domain, each in its own
    /// namespace, and `sinew fleet status` shows each one's state and joints, read from DDS.
    @Test func aFleetOfFourOnOneDomain() throws {
        let directory = temporaryFolder("ros-fleet")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let domain = ROSTestNetwork.domain(2)
        let robot = try ROSTestNetwork.robotYAML(in: directory, rosLines: ROSTestNetwork.loopbackLines)
        let fleet = try BackgroundChild(
            executable: sinewExecutable,
            arguments: [
                "fleet", "up", "4", "--robot", robot, "--ros-domain-id", String(domain), "--duration", "8",
                "--log-dir", directory + "/logs", "--json",
            ],
            environment: ["CYCLONEDDS_URI": ROSTestNetwork.loopbackURI], directory: directory)
        let status = try BackgroundChild(
            executable: sinewExecutable,
            arguments: [
                "fleet", "status", "--ros-domain-id", String(domain), "--seconds", "7", "--count", "4", "--json",
            ],
            environment: ["CYCLONEDDS_URI": ROSTestNetwork.loopbackURI], directory: directory)
        status.wait(timeoutS: 30)
        #expect(fleet.wait(timeoutS: 60) == 0, "\(fleet.stdout)\n\(fleet.stderr)")
        let seen = try #require(status.json, "\(status.stdout)\n\(status.stderr)")
        let robots = seen["robots"] as? [[String: Any]] ?? []
        print("fleet status: \(robots.map { "\($0["namespace"] ?? "?") \($0["state"] ?? "?")" })")
        #expect(robots.compactMap { $0["namespace"] as? String } == ["so101_0", "so101_1", "so101_2", "so101_3"])
        for r in robots {
            #expect(r["state"] as? String == "active", "\(r)")
            #expect((r["positions_rad"] as? [String: Double])?.count == 6)
            #expect((r["joint_states_received"] as? Int ?? 0) > 1)
        }
        let ended = (fleet.json?["robots"] as? [[String: Any]] ?? []).compactMap { $0["exit_status"] as? Int }
        #expect(ended == [0, 0, 0, 0], "\(fleet.stdout)")
    }

    /// Two hosts: two network namespaces joined by a veth pair (made here, removed after), multicast off and each
    /// side's peer given. The robot runs in one, without a namespace (its topics are ROS 2's plain `rt/joint_states`,
    /// …); in the other a ROS 2 peer checks joint_states, has a trajectory followed and stops it. Skipped, saying why,
    /// only where the machine refuses `ip netns`.
    @Test func twoHostsOverUnicastPeers() throws {
        let suffix = String(getpid() % 100_000)
        let robotHost = "sinew-a-\(suffix)"
        let peerHost = "sinew-b-\(suffix)"
        let add = runProcess("/usr/sbin/ip", ["netns", "add", robotHost])
        guard add.status == 0 else {
            print(
                "SKIPPED two hosts: this machine refuses `ip netns add` (\(add.output.trimmingCharacters(in: .whitespacesAndNewlines)))"
            )
            return
        }
        defer {
            _ = runProcess("/usr/sbin/ip", ["netns", "delete", robotHost])
            _ = runProcess("/usr/sbin/ip", ["netns", "delete", peerHost])
            // A veth pair not yet moved into its namespaces (a set-up step failed) is still here.
            _ = runProcess("/usr/sbin/ip", ["link", "delete", "sva\(suffix)"])
        }
        let a = "10.199.\(getpid() % 200).1"
        let b = "10.199.\(getpid() % 200).2"
        let setup: [[String]] = [
            ["netns", "add", peerHost],
            ["link", "add", "sva\(suffix)", "type", "veth", "peer", "name", "svb\(suffix)"],
            ["link", "set", "sva\(suffix)", "netns", robotHost], ["link", "set", "svb\(suffix)", "netns", peerHost],
            ["-n", robotHost, "addr", "add", a + "/24", "dev", "sva\(suffix)"],
            ["-n", peerHost, "addr", "add", b + "/24", "dev", "svb\(suffix)"],
            ["-n", robotHost, "link", "set", "sva\(suffix)", "up"],
            ["-n", peerHost, "link", "set", "svb\(suffix)", "up"],
            ["-n", robotHost, "link", "set", "lo", "up"], ["-n", peerHost, "link", "set", "lo", "up"],
        ]
        for step in setup {
            let r = runProcess("/usr/sbin/ip", step)
            try #require(r.status == 0, "ip \(step.joined(separator: " ")): \(r.output)")
        }
        let directory = temporaryFolder("ros-hosts")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let domain = ROSTestNetwork.domain(3)
        let robot = try ROSTestNetwork.robotYAML(
            in: directory,
            rosLines: [
                "enabled: true", "namespace: ''", "domain_id: \(domain)", "interface: sva\(suffix)",
                "peers: [\(b)]", "multicast: false",
            ])
        let peerURI =
            "<CycloneDDS><Domain id=\"any\"><General><Interfaces><NetworkInterface name=\"svb\(suffix)\"/></Interfaces>"
            + "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
            + "<Peers><Peer address=\"\(a)\"/></Peers></Discovery></Domain></CycloneDDS>"
        let python = try Self.python()
        let sinew = try BackgroundChild(
            executable: "/usr/sbin/ip",
            arguments: [
                "netns", "exec", robotHost, sinewExecutable, "run", robot, "--follow-ros", "--duration", "9", "--json",
            ],
            directory: directory)
        let peer = try BackgroundChild(
            executable: "/usr/sbin/ip",
            arguments: [
                "netns", "exec", peerHost, python, Self.script, "scenario", "--namespace", "", "--domain",
                String(domain),
            ],
            environment: ["CYCLONEDDS_URI": peerURI], directory: directory)
        peer.wait(timeoutS: 60)
        sinew.wait(timeoutS: 60)
        let context = "sinew:\n\(sinew.stderr)\npeer:\n\(peer.stderr)\n\(peer.stdout)"
        let peerReport = try #require(peer.json, "\(context)")
        let report = try #require(sinew.json, "\(context)")
        print(
            "two hosts: peer \(b) saw joint_states at \(peerReport["stamp_rate_hz"] ?? 0) Hz, tracking max "
                + "\(peerReport["tracking_max_rad"] ?? "?") rad; robot \(a) ended \(report["final_state"] ?? "?")")
        #expect(peerReport["matched"] as? Bool == true, "\(context)")
        #expect((peerReport["names"] as? [String])?.count == 6)
        // Without a namespace the topics are ROS 2's plain ones: /joint_states is rt/joint_states.
        let types = peerReport["types"] as? [String: String] ?? [:]
        #expect(types["rt/joint_states"] == "sensor_msgs::msg::dds_::JointState_", "\(types)")
        #expect(types["rt/joint_trajectory"] == "trajectory_msgs::msg::dds_::JointTrajectory_", "\(types)")
        #expect((peerReport["tracking_max_rad"] as? Double ?? 1) < 0.06, "\(context)")
        #expect((report["ros"] as? [String: Any])?["trajectories_accepted"] as? Int == 1)
        #expect(safetyCauses(in: report).first == "emergencyStop", "\(report)")
    }
}
