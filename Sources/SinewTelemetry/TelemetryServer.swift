import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix
import SinewRuntime
import Synchronization

/// Errors starting the telemetry servers.
public struct TelemetryServerError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// What a running robot shows and accepts over the network: the metrics, the dashboard's feed and its e-stop and
/// recover requests. One per run; the servers share it.
public final class TelemetryHub: Sendable {
    public let robot: TelemetryRobot
    public let token: AccessToken
    let metrics: RobotMetrics
    let feed: DashboardFeed
    /// The sink to hand the run's ``RecordingWriter`` (it feeds the metrics and the dashboard).
    public let sink: TelemetrySink
    let emergencyStop: EmergencyStopSources?
    let clients = Atomic<Int>(0)
    /// Commands taken from dashboard clients (e-stops and recoveries), for reports and tests.
    let commandsTaken = Atomic<Int>(0)

    /// - Parameters:
    ///   - recorder: the loop's snapshot ring (its drops are a metric).
    ///   - tap: the loop's servo-health tap.
    ///   - emergencyStop: where the dashboard's e-stop and recover buttons act (nil: the buttons are refused).
    public init(
        robot: TelemetryRobot, token: AccessToken, recorder: TickRecorder?, tap: ServoHealthTap?,
        emergencyStop: EmergencyStopSources?, describeJoint: @escaping (Int32) -> String? = { _ in nil }
    ) {
        self.robot = robot
        self.token = token
        self.emergencyStop = emergencyStop
        metrics = RobotMetrics(
            jointNames: robot.joints.map(\.name), busNames: robot.buses, servos: robot.servos,
            targetRateHz: robot.targetRateHz)
        feed = DashboardFeed(hello: Self.hello(robot))
        sink = TelemetrySink(
            robot: robot, metrics: metrics, feed: feed, recorder: recorder, tap: tap, describeJoint: describeJoint)
    }

    /// The session's overrun count so far (from its monitor).
    public func overrunsSoFar(_ total: Int64) { sink.overrunsSoFar(total) }

    /// The Prometheus text exposition of every metric.
    public func metricsText() -> [UInt8] { metrics.exposition() }

    /// Acts on a dashboard command: the e-stop source `dashboard` (the safe state in the next tick) or a recovery
    /// request (the session recovers once every source reads clear).
    func perform(_ command: DashboardCommand) -> Bool {
        guard let emergencyStop else { return false }
        switch command {
        case .emergencyStop: emergencyStop.trigger(.dashboard)
        case .recover: emergencyStop.requestRecovery()
        }
        commandsTaken.add(1, ordering: .relaxed)
        return true
    }

    static func hello(_ robot: TelemetryRobot) -> [UInt8] {
        var json = TelemetryJSON()
        json.beginObject()
        json.key("type")
        json.string("hello")
        json.key("robot")
        json.string(robot.name)
        json.key("rate_hz")
        json.number(robot.targetRateHz)
        json.key("stages")
        json.beginArray()
        for stage in TickStage.allCases { json.string("\(stage.name)") }
        json.endArray()
        json.key("joints")
        json.beginArray()
        for joint in robot.joints {
            json.beginObject()
            json.key("name")
            json.string(joint.name)
            json.key("min")
            json.number(joint.positionMinRad)
            json.key("max")
            json.number(joint.positionMaxRad)
            json.key("velocity_limit")
            json.number(joint.velocityLimitRadPerS)
            json.key("effort_limit")
            json.number(joint.effortLimitNm)
            json.endObject()
        }
        json.endArray()
        json.key("buses")
        json.beginArray()
        for bus in robot.buses { json.string(bus) }
        json.endArray()
        json.key("servos")
        json.beginArray()
        for servo in robot.servos {
            json.beginObject()
            json.key("bus")
            json.string(servo.bus)
            json.key("id")
            json.integer(Int64(servo.id))
            json.key("joint")
            json.string(servo.joint)
            json.key("model")
            json.string(servo.model)
            json.key("reads_temperature")
            json.bool(servo.readsTemperature)
            json.key("reads_voltage")
            json.bool(servo.readsVoltage)
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return json.bytes
    }
}

/// One HTTP server (metrics or dashboard) on its own task, with one event-loop thread.
public final class TelemetryServer: @unchecked Sendable {
    // @unchecked: `task` is set once in `start` and read in `stop`, both on the thread that owns the server.
    public let name: String
    /// Where it listens (the port the system gave, for a requested port 0).
    public private(set) var address: ListenAddress
    private var task: Task<Void, Never>?
    private let group: MultiThreadedEventLoopGroup

    private init(name: String, address: ListenAddress) {
        self.name = name
        self.address = address
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    deinit { try? group.syncShutdownGracefully() }

    static var quietLogger: Logger {
        var logger = Logger(label: "sinew.telemetry") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        return logger
    }

    static func metricsRouter(hub: TelemetryHub) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/metrics") { request, _ -> Response in
            guard TelemetryRoutes.authorized(request, hub: hub) else {
                return TelemetryRoutes.refused(hub, html: false)
            }
            return TelemetryRoutes.bytes(hub.metricsText(), type: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/") { _, _ -> Response in
            TelemetryRoutes.bytes(
                Array("Sinew metrics: GET /metrics with the header Authorization: Bearer TOKEN\n".utf8),
                type: "text/plain; charset=utf-8")
        }
        return router
    }

    /// Starts `/metrics` on `address`. Returns once it listens (at most 15 s); throws when it cannot bind. For a
    /// thread outside Swift concurrency's pool (the command's main thread): it waits blocking.
    public static func startMetrics(hub: TelemetryHub, address: ListenAddress) throws -> TelemetryServer {
        let server = TelemetryServer(name: "metrics", address: address)
        try server.runBlocking(makeRouter: { metricsRouter(hub: hub) }, webSocket: nil)
        return server
    }

    /// Starts the dashboard (page, static files, `/ws`, `/api/…`) on `address`. Returns once it listens.
    public static func startDashboard(hub: TelemetryHub, address: ListenAddress) throws -> TelemetryServer {
        let server = TelemetryServer(name: "dashboard", address: address)
        try server.runBlocking(makeRouter: { TelemetryRoutes.dashboardRouter(hub: hub) }, webSocket: hub)
        return server
    }

    /// `startMetrics` for async code: it awaits the server instead of blocking a thread of the pool it runs on.
    public static func startMetrics(hub: TelemetryHub, address: ListenAddress) async throws -> TelemetryServer {
        let server = TelemetryServer(name: "metrics", address: address)
        try await server.run(router: metricsRouter(hub: hub), webSocket: nil)
        return server
    }

    /// `startDashboard` for async code.
    public static func startDashboard(hub: TelemetryHub, address: ListenAddress) async throws -> TelemetryServer {
        let server = TelemetryServer(name: "dashboard", address: address)
        try await server.run(router: TelemetryRoutes.dashboardRouter(hub: hub), webSocket: hub)
        return server
    }

    private func runBlocking(
        makeRouter: @escaping @Sendable () -> Router<BasicRequestContext>, webSocket hub: TelemetryHub?
    ) throws {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        Task.detached { [self] in
            do {
                try await self.run(router: makeRouter(), webSocket: hub)
                outcome.withLock { $0 = .success(()) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        if done.wait(timeout: .now() + 15) == .timedOut {
            task?.cancel()
            throw TelemetryServerError(description: "\(name) on \(address): the server did not start in 15 s")
        }
        if case .failure(let error) = outcome.withLock({ $0 }) { throw error }
    }

    /// Starts the application on its task and returns once it listens, or throws why it could not.
    private func run(router: Router<BasicRequestContext>, webSocket hub: TelemetryHub?) async throws {
        let configuration = ApplicationConfiguration(address: .hostname(address.host, port: address.port))
        let name = name
        let address = address
        let resumed = Mutex(false)
        let boundPort: Int = try await withCheckedThrowingContinuation { continuation in
            let once: @Sendable (Result<Int, any Error>) -> Void = { result in
                guard
                    resumed.withLock({ done in
                        defer { done = true }; return !done
                    })
                else { return }
                continuation.resume(with: result)
            }
            let server: HTTPServerBuilder
            if let hub {
                server = .http1WebSocketUpgrade { request, _, _ in TelemetryRoutes.upgrade(request, hub: hub) }
            } else {
                server = .http1()
            }
            let app = Application(
                router: router, server: server, configuration: configuration,
                onServerRunning: { channel in once(.success(channel.localAddress?.port ?? -1)) },
                eventLoopGroupProvider: .shared(group), logger: Self.quietLogger)
            task = Task.detached {
                do {
                    try await app.run()
                    once(.failure(TelemetryServerError(description: "\(name) on \(address): stopped")))
                } catch {
                    once(.failure(TelemetryServerError(description: "\(name) on \(address): \(error)")))
                }
            }
        }
        guard boundPort >= 0 else { throw TelemetryServerError(description: "\(name) on \(address): not listening") }
        self.address = ListenAddress(host: address.host, port: boundPort)
    }

    /// Stops the server (open connections are closed) and waits up to 3 s for it.
    public func stop() {
        guard let task else { return }
        task.cancel()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            _ = await task.value
            done.signal()
        }
        _ = done.wait(timeout: .now() + 3)
        self.task = nil
    }
}
