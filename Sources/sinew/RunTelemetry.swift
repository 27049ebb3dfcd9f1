import ArgumentParser
import Foundation
import SinewRuntime
import SinewTelemetry

/// `--metrics`, `--dashboard` and `--token-file` of `sinew run` and `sinew demo` (overriding robot.yaml's
/// `telemetry:`).
struct TelemetryArguments: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics at http://ADDRESS/metrics (HOST:PORT, e.g. 127.0.0.1:9464; loopback unless "
                + "you name another address). Requires the token (Authorization: Bearer TOKEN).",
            valueName: "address"))
    var metrics: String?

    @Option(
        help: ArgumentHelp(
            "Serve the live dashboard (plots, 3D view, e-stop and recover) at http://ADDRESS/ (HOST:PORT, e.g. "
                + "127.0.0.1:8464). The page and its socket require the token.",
            valueName: "address"))
    var dashboard: String?

    @Option(
        help: ArgumentHelp(
            "The token the dashboard and the metrics require, in this file (16–256 letters, digits, - _ . ~); "
                + "without it one is generated and printed at start.",
            valueName: "path"))
    var tokenFile: String?

    func validate() throws {
        for (name, text) in [("--metrics", metrics), ("--dashboard", dashboard)] {
            guard let text else { continue }
            do { _ = try ListenAddress(parsing: text) } catch { throw ValidationError("\(name): \(error)") }
        }
    }

    /// The values given, as plain data for ``RunOptions``.
    var overrides: TelemetryOverrides {
        TelemetryOverrides(metrics: metrics, dashboard: dashboard, tokenFile: tokenFile)
    }
}

/// What the command line says about telemetry (nil: robot.yaml's `telemetry:` decides).
struct TelemetryOverrides {
    var metrics: String?
    var dashboard: String?
    var tokenFile: String?

    /// The settings these arguments make, over robot.yaml's.
    func settings(over configured: RobotConfiguration.Telemetry) throws -> RobotConfiguration.Telemetry {
        do {
            return RobotConfiguration.Telemetry(
                metrics: try metrics.map { try ListenAddress(parsing: $0) } ?? configured.metrics,
                dashboard: try dashboard.map { try ListenAddress(parsing: $0) } ?? configured.dashboard,
                tokenFile: tokenFile ?? configured.tokenFile)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// The metrics and dashboard servers of a run and the hub they share.
final class RunTelemetry {
    let hub: TelemetryHub
    var servers: [TelemetryServer] = []

    init(hub: TelemetryHub) { self.hub = hub }

    /// Starts what `settings` asks for, before any servo is touched: the servers bind (an address in use fails the
    /// run with the robot unpowered) and the lines saying where they are and the token are printed. The hub's sink
    /// goes to the run's recorder thread.
    static func start(
        settings: RobotConfiguration.Telemetry, loop: RobotLoop, recorder: TickRecorder, tap: ServoHealthTap
    ) throws -> RunTelemetry {
        let token: AccessToken
        let tokenFromFile: Bool
        if let path = settings.tokenFile {
            token = try AccessToken.load(path: path)
            tokenFromFile = true
        } else {
            token = AccessToken.generate()
            tokenFromFile = false
        }
        var description: RobotVisualDescription?
        do {
            description = try RobotVisualDescription(urdfPath: loop.configuration.modelPath)
        } catch {
            printError("warning: dashboard: the 3D view has no robot: \(error)")
        }
        let hub = TelemetryHub(
            robot: TelemetryRobot(loop: loop, tap: tap, description: description), token: token, recorder: recorder,
            tap: tap, emergencyStop: loop.supervisor.emergencyStop,
            describeJoint: { [supervisor = loop.supervisor] in supervisor.jointName($0) })
        let telemetry = RunTelemetry(hub: hub)
        do {
            if let address = settings.metrics {
                let server = try TelemetryServer.startMetrics(hub: hub, address: address)
                telemetry.servers.append(server)
                printError(
                    "metrics: http://\(server.address)/metrics (header Authorization: Bearer "
                        + (tokenFromFile ? "<the token in \(settings.tokenFile!)>" : token.value) + ")")
            }
            if let address = settings.dashboard {
                let server = try TelemetryServer.startDashboard(hub: hub, address: address)
                telemetry.servers.append(server)
                printError(
                    "dashboard: http://\(server.address)/?token="
                        + (tokenFromFile ? "<the token in \(settings.tokenFile!)>" : token.value))
                if let missing = description?.missingMeshes, !missing.isEmpty {
                    printError(
                        "note: dashboard: \(missing.count) mesh file(s) the URDF names are not on this machine; the 3D "
                            + "view draws those links as a skeleton")
                }
            }
        } catch {
            telemetry.stop()
            throw error
        }
        for server in telemetry.servers where !server.address.isLoopback {
            printError(
                "warning: \(server.name) listens on \(server.address), reachable from other machines: plain HTTP, "
                    + "the token travels unencrypted (prefer loopback and an SSH port forward)")
        }
        return telemetry
    }

    func stop() {
        for server in servers { server.stop() }
        servers.removeAll()
    }

    deinit { stop() }
}
