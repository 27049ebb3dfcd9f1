import Foundation
import SinewRuntime
import SinewTelemetry
import SinewTestSupport
import Testing

/// The telemetry sink on a recorder thread fed with synthetic ticks, and the two servers in process.
@Suite(.serialized) struct TelemetryTests {
    static let jointNames = ["shoulder", "elbow"]

    static func robot() throws -> TelemetryRobot {
        let description = try RobotVisualDescription(urdfPath: repositoryRoot + "/Hardware/robots/so101/so101.urdf")
        return TelemetryRobot(
            name: "test", targetRateHz: 500,
            joints: jointNames.map {
                .init(name: $0, positionMinRad: -1, positionMaxRad: 1, velocityLimitRadPerS: 2, effortLimitNm: 3)
            },
            buses: ["arm"], servos: [], descriptionJSON: description.json, meshFiles: description.meshFiles)
    }

    /// Pushes `count` ticks (state active, then safe for the last quarter) and waits until the writer took them.
    static func feed(_ recorder: TickRecorder, writer: RecordingWriter, count: Int) {
        var position = [0.1, -0.2]
        let zeros = [0.0, 0.0]
        for i in 0..<count {
            var header = TickSnapshotHeader(
                tick: Int64(i), timeSeconds: Double(i) / 500, state: i < count * 3 / 4 ? .active : .safe,
                safetyCause: i < count * 3 / 4 ? nil : .emergencyStop, wakeLatenessNs: Int64(20_000 + i % 50 * 1000),
                stageNs: (30_000, 1_000, 2_000, 500, 40_000, 800))
            header.wallTimeNs = UInt64(1_700_000_000_000_000_000) + UInt64(i) * 2_000_000
            position[0] = 0.1 + Double(i) * 1e-3
            position.withUnsafeBufferPointer { p in
                zeros.withUnsafeBufferPointer { z in
                    _ = recorder.push(
                        header, positionRad: p.baseAddress!, velocityRadPerS: z.baseAddress!,
                        effortNm: z.baseAddress!, commandRad: p.baseAddress!, targetRad: p.baseAddress!)
                }
            }
            if i % 256 == 255 { while writer.snapshotsWritten < i { usleep(1000) } }
        }
        while writer.snapshotsWritten < count { usleep(1000) }
    }

    @Test func metricsFromSnapshots() throws {
        let recorder = TickRecorder(jointNames: Self.jointNames, capacity: 512, recordsTarget: true)
        let hub = TelemetryHub(
            robot: try Self.robot(), token: AccessToken.generate(), recorder: recorder, tap: nil, emergencyStop: nil)
        let writer = RecordingWriter(recorder: recorder, path: nil, sinks: [hub.sink])
        Self.feed(recorder, writer: writer, count: 2000)
        hub.overrunsSoFar(3)
        try writer.close()
        let text = String(decoding: hub.metricsText(), as: UTF8.self)
        #expect(text.contains("# HELP sinew_wake_lateness_seconds "))
        #expect(text.contains("# TYPE sinew_wake_lateness_seconds histogram"))
        #expect(text.contains("sinew_wake_lateness_seconds_count 2000"))
        #expect(text.contains("sinew_ticks_total 2000"))
        #expect(text.contains("sinew_overruns_total 3"))
        #expect(text.contains("sinew_stage_duration_seconds_count{stage=\"act\"} 2000"))
        #expect(text.contains("sinew_lifecycle_state{state=\"safe\"} 1"))
        #expect(text.contains("sinew_safe_state_cause{cause=\"emergencyStop\"} 1"))
        #expect(text.contains("sinew_joint_position_radians{joint=\"shoulder\"} 2.099"))
        // Every metric that is printed has its HELP line, and every name carries its unit or _total.
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let name = line.split(separator: " ")[2]
            #expect(text.contains("# HELP \(name) "), "\(name)")
        }
        for description in MetricDescription.catalogue {
            #expect(description.kind != .counter || description.name.hasSuffix("_total"))
        }
    }

    @Test func servers() async throws {
        let recorder = TickRecorder(jointNames: Self.jointNames, capacity: 512, recordsTarget: true)
        let estop = EmergencyStopSources()
        let token = try AccessToken("0123456789abcdef0123")
        let hub = TelemetryHub(
            robot: try Self.robot(), token: token, recorder: recorder, tap: nil, emergencyStop: estop)
        let writer = RecordingWriter(recorder: recorder, path: nil, sinks: [hub.sink])
        let metrics = try await TelemetryServer.startMetrics(
            hub: hub, address: ListenAddress(host: "127.0.0.1", port: 0))
        let dashboard = try await TelemetryServer.startDashboard(
            hub: hub, address: ListenAddress(host: "127.0.0.1", port: 0))
        defer {
            metrics.stop()
            dashboard.stop()
        }
        Self.feed(recorder, writer: writer, count: 100)
        let m = metrics.address.port
        #expect(try await httpRequestOffPool(port: m, target: "/metrics").status == 401)
        #expect(
            try await httpRequestOffPool(port: m, target: "/metrics", headers: ["Authorization": "Bearer wrong"]).status
                == 401)
        let scrape = try await httpRequestOffPool(
            port: m, target: "/metrics", headers: ["Authorization": "Bearer \(token.value)"])
        #expect(scrape.status == 200)
        #expect(scrape.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(scrape.text.contains("sinew_ticks_total 100"))
        #expect(scrape.text.contains("sinew_telemetry_refused_requests_total 2"))

        let d = dashboard.address.port
        #expect(try await httpRequestOffPool(port: d, target: "/").status == 401)
        #expect(try await httpRequestOffPool(port: d, target: "/app.js").status == 401)
        #expect(try await httpRequestOffPool(port: d, target: "/?token=0123456789abcdef0124").status == 401)
        let page = try await httpRequestOffPool(port: d, target: "/?token=\(token.value)")
        #expect(page.status == 200)
        #expect(page.text.contains("E-STOP"))
        #expect(page.headers["set-cookie"]?.contains("sinew_token=\(token.value)") == true)
        let cookie = ["Cookie": "sinew_token=\(token.value)"]
        #expect(try await httpRequestOffPool(port: d, target: "/app.js", headers: cookie).status == 200)
        let robot = try await httpRequestOffPool(port: d, target: "/robot.json", headers: cookie)
        let json = try JSONSerialization.jsonObject(with: Data(robot.body)) as? [String: Any]
        #expect((json?["links"] as? [Any])?.count == 8)
        #expect(try await httpRequestOffPool(port: d, target: "/mesh/0", headers: cookie).status == 404)
        #expect(
            try await httpRequestOffPool(port: d, target: "/mesh/..%2f..%2fetc%2fpasswd", headers: cookie).status == 404
        )
        var state = try await httpRequestOffPool(port: d, target: "/api/state", headers: cookie)
        for _ in 0..<40 where !state.text.contains("frame") {
            usleep(50_000)
            state = try await httpRequestOffPool(port: d, target: "/api/state", headers: cookie)
        }
        #expect(state.text.contains("\"type\":\"frame\""), "\(state.status) \(state.headers) \(state.text)")
        // Buttons: a cross-origin POST is refused even with the cookie; the page's own acts at once.
        let cross = cookie.merging(["Origin": "http://evil.example"]) { $1 }
        #expect(
            try await httpRequestOffPool(port: d, method: "POST", target: "/api/estop", headers: cross).status == 403)
        #expect(estop.poll() == nil)
        #expect(
            try await httpRequestOffPool(port: d, method: "POST", target: "/api/estop", headers: cookie).status == 200)
        #expect(estop.poll() == .dashboard)
        #expect(
            try await httpRequestOffPool(port: d, method: "POST", target: "/api/recover", headers: cookie).status == 200
        )
        #expect(estop.takeRecoveryRequest())
        // The WebSocket upgrade without the token is refused.
        let upgrade = [
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        ]
        #expect(try await httpRequestOffPool(port: d, target: "/ws", headers: upgrade).status != 101)
        // Mangled requests: the server answers or closes, and still serves the next good request.
        var random = SeededRandom(seed: 18)
        let good = Array("GET /?token=\(token.value) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        for _ in 0..<60 {
            var bytes = good
            for _ in 0...(random.next() % 6) {
                let i = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 3 {
                case 0: bytes[i] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes.remove(at: i)
                default: bytes.insert(contentsOf: bytes[i..<min(bytes.count, i + 40)], at: i)
                }
            }
            _ = try? await httpRequestOffPool(port: d, target: "", raw: bytes, timeoutS: 3)
        }
        #expect(try await httpRequestOffPool(port: d, target: "/?token=\(token.value)").status == 200)
        try writer.close()
    }

    @Test func robotDescriptions() throws {
        let so101 = try RobotVisualDescription(urdfPath: repositoryRoot + "/Hardware/robots/so101/so101.urdf")
        // The SO-101's STL files are not shipped: every mesh is missing, the view draws a skeleton.
        #expect(so101.meshFiles.isEmpty)
        #expect(so101.missingMeshes.count == 13)
        let json = try JSONSerialization.jsonObject(with: Data(so101.json)) as? [String: Any]
        #expect(json?["root"] as? String == "base_link")
        #expect((json?["joints"] as? [Any])?.count == 7)

        // Shapes and meshes that exist, found through package:// from the URDF's folder.
        let folder = temporaryFolder("urdf")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/meshes", withIntermediateDirectories: true)
        try Data(count: 84).write(to: URL(fileURLWithPath: folder + "/meshes/part.stl"))
        let urdf = """
            <robot name="t"><material name="red"><color rgba="1 0 0 1"/></material>
            <link name="base"><visual><origin xyz="0 0 0.1" rpy="0 0 0"/><geometry><box size="0.1 0.2 0.3"/></geometry>
            <material name="red"/></visual></link>
            <link name="arm"><visual><geometry><cylinder radius="0.02" length="0.3"/></geometry></visual>
            <visual><geometry><sphere radius="0.05"/></geometry><material name="x"><color rgba="0 1 0 1"/></material></visual>
            <visual><geometry><mesh filename="package://my_robot/meshes/part.stl" scale="0.001 0.001 0.001"/></geometry></visual>
            <visual><geometry><mesh filename="package://my_robot/meshes/absent.stl"/></geometry></visual></link>
            <joint name="j" type="revolute"><parent link="base"/><child link="arm"/><origin xyz="0 0 0.2"/>
            <axis xyz="0 1 0"/><limit lower="-1" upper="1" effort="1" velocity="1"/></joint></robot>
            """
        try urdf.write(toFile: folder + "/t.urdf", atomically: true, encoding: .utf8)
        let description = try RobotVisualDescription(urdfPath: folder + "/t.urdf")
        #expect(description.meshFiles == [(folder + "/meshes/part.stl" as NSString).standardizingPath])
        #expect(description.missingMeshes == ["package://my_robot/meshes/absent.stl"])
        let text = String(decoding: description.json, as: UTF8.self)
        #expect(text.contains("\"type\":\"box\",\"size\":[0.1,0.2,0.3]"))
        #expect(text.contains("\"color\":[1,0,0,1]"))
        #expect(text.contains("\"url\":\"mesh/0\""))
        #expect(text.contains("\"root\":\"base\""))
        // A URDF named relative to the working directory, or by an odd path (robot.yaml beside it gives "x.urdf").
        for file in ["t.urdf", "./t.urdf", "", ".", "/", "//t.urdf", "../t.urdf"] {
            _ = try RobotVisualDescription(urdf: urdf, file: file)
        }
    }
}
