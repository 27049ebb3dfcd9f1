import CAllocCounter
import Foundation
import SinewRuntime
import Testing

/// Two joints and one workspace box; joint 0 holds in the safe state, joint 1 goes limp.
func makeSupervisor(estop: EmergencyStopSources = EmergencyStopSources()) -> SafetySupervisor {
    let configuration = SafetyConfiguration(
        jointNames: ["shoulder_pan", "elbow_flex"],
        joints: [
            JointSafetyLimits(
                positionMinRad: -1, positionMaxRad: 1, positionMarginRad: 0.1, velocityLimitRadPerS: 3,
                effortLimitNm: 2, maxStepRadPerTick: 0.05, stepFaultRadPerTick: 0.5, safeState: .hold),
            JointSafetyLimits(
                positionMinRad: -2, positionMaxRad: 2, positionMarginRad: 0.2, velocityLimitRadPerS: 3,
                effortLimitNm: 2, maxStepRadPerTick: 0.05, stepFaultRadPerTick: 0.5, safeState: .torqueOff),
        ],
        workspaceBoxes: [WorkspaceBox(frameName: "gripper", minM: (-0.5, -0.5, 0.0), maxM: (0.5, 0.5, 0.6))],
        commandTimeoutNs: 50_000_000, busErrorBudget: 3, overrunBudget: 2)
    let supervisor = SafetySupervisor(configuration: configuration, emergencyStop: estop)
    supervisor.measuredPositionRad[0] = 0.2
    supervisor.measuredPositionRad[1] = -0.3
    supervisor.commandedPositionRad[0] = 0.2
    supervisor.commandedPositionRad[1] = -0.3
    supervisor.framePositionM[0] = 0.1
    supervisor.framePositionM[1] = 0.1
    supervisor.framePositionM[2] = 0.3
    supervisor.rearm()
    return supervisor
}

let loopStartNs: Int64 = 1_000_000_000

func input(atSeconds t: Double, busErrors: Int = 0, overrunsInARow: Int = 0, commandAgeNs: Int64 = 0)
    -> SafetyTickInput
{
    let now = loopStartNs + Int64(t * 1e9)
    return SafetyTickInput(
        nowNs: now, loopStartNs: loopStartNs, lastCommandTimeNs: now - commandAgeNs, busErrorsThisTick: busErrors,
        overrunsInARow: overrunsInARow)
}

/// How each rule is provoked, and the joint it should name (-1: none).
enum Provocation: String, CaseIterable, CustomTestStringConvertible {
    case positionAboveMax, positionBelowMin, velocity, effort, step, nonFiniteCommand, workspace, stale,
        busErrors, silentServo, hardwareError, overrun, estopKeyboard, estopApi

    var testDescription: String { rawValue }

    var expected: (cause: SafetyCause, joint: Int32) {
        switch self {
        case .positionAboveMax: (.positionLimit, 1)
        case .positionBelowMin: (.positionLimit, 0)
        case .velocity: (.velocityLimit, 1)
        case .effort: (.effortLimit, 0)
        case .step, .nonFiniteCommand: (.stepLimit, 1)
        case .workspace: (.workspaceLimit, -1)
        case .stale: (.staleCommand, -1)
        case .busErrors: (.busErrors, -1)
        case .silentServo: (.busErrors, 1)
        case .hardwareError: (.servoHardwareError, 0)
        case .overrun: (.overrun, -1)
        case .estopKeyboard, .estopApi: (.emergencyStop, -1)
        }
    }

    /// Applies the provocation; returns the tick input of the tick in which the rule must fire.
    func apply(to s: SafetySupervisor, at t: Double) -> SafetyTickInput {
        switch self {
        case .positionAboveMax: s.measuredPositionRad[1] = 2.01
        case .positionBelowMin: s.measuredPositionRad[0] = -1.2
        case .velocity: s.measuredVelocityRadPerS[1] = -3.5
        case .effort: s.measuredEffortNm[0] = 2.5
        case .step: s.commandedPositionRad[1] = 0.5
        case .nonFiniteCommand: s.commandedPositionRad[1] = .nan
        case .workspace: s.framePositionM[2] = -0.01
        case .stale: return input(atSeconds: t, commandAgeNs: 60_000_000)
        case .busErrors: return input(atSeconds: t, busErrors: 4)
        case .silentServo:
            // Ticks without a reading within the budget are tolerated.
            s.readingFresh[1] = false
            for k in 1...3 { _ = s.guardTick(input(atSeconds: t - 0.001 * Double(4 - k))) }
            #expect(!s.isSafeStateLatched)
        case .hardwareError: s.hardwareErrorFlags[0] = 0x20
        case .overrun: return input(atSeconds: t, overrunsInARow: 3)
        case .estopKeyboard: s.emergencyStop.pressKeyboardStop()
        case .estopApi: s.emergencyStop.trigger(.api)
        }
        return input(atSeconds: t)
    }
}

@Suite("Safety supervisor") struct SafetyTests {
    @Test(
        "each rule decides the safe state in the tick it fires and records time and cause",
        arguments: Provocation.allCases)
    func ruleTriggersSafeState(_ provocation: Provocation) throws {
        let s = makeSupervisor()
        for k in 0..<10 {
            let verdict = s.guardTick(input(atSeconds: 0.001 * Double(k)))
            #expect(!verdict.isSafeState)
        }
        #expect(s.events.count == 0)
        let tickInput = provocation.apply(to: s, at: 1.25)
        let verdict = s.guardTick(tickInput)
        let (cause, joint) = provocation.expected
        #expect(verdict.isSafeState)
        #expect(verdict.enteredThisTick)
        #expect(verdict.cause == cause)
        #expect(verdict.jointIndex == (joint >= 0 ? Int(joint) : nil))
        try #require(s.events.count >= 1)
        let event = s.events[0]
        #expect(event.cause == cause)
        #expect(event.jointIndex == joint)
        #expect(abs(event.timeSeconds - 1.25) < 1e-9)
        if cause == .workspaceLimit { #expect(event.workspaceBoxIndex == 0) }
        // Safe-state outputs: joint 0 holds its measured position, joint 1 is limp.
        #expect(s.outputTorqueEnabled[0])
        #expect(!s.outputTorqueEnabled[1])
        let held = s.outputPositionRad[0]
        #expect(held == s.measuredPositionRad[0])
        // Latched: the next tick stays safe and records nothing new.
        let count = s.events.count
        let next = s.guardTick(input(atSeconds: 1.26))
        #expect(next.isSafeState && !next.enteredThisTick)
        #expect(s.events.count == count)
    }

    @Test("events read as one line naming the joint or frame, the cause and the values")
    func eventDescription() throws {
        let s = makeSupervisor()
        s.measuredPositionRad[1] = 2.01
        s.framePositionM[2] = 0.75
        _ = s.guardTick(input(atSeconds: 1.25))
        try #require(s.events.count == 2)
        #expect(s.describe(s.events[0]) == "t=1.250 s elbow_flex: positionLimit (above max: 2.01 beyond 2)")
        #expect(s.describe(s.events[1]) == "t=1.250 s gripper: workspaceLimit (z: 0.75 beyond 0.6)")
    }

    @Test("commands are clamped inside the margins and rate-limited per tick")
    func clamping() {
        let s = makeSupervisor()
        // Joint 0: margin 0.1 → upper command bound 0.9; step 0.05 per tick from 0.2.
        s.commandedPositionRad[0] = 0.6
        s.commandedPositionRad[1] = -0.3
        _ = s.guardTick(input(atSeconds: 0.001))
        #expect(abs(s.outputPositionRad[0] - 0.25) < 1e-12)
        #expect(s.outputPositionRad[1] == -0.3)
        for k in 2..<40 {
            s.commandedPositionRad[0] = min(s.outputPositionRad[0] + 0.3, 5)
            _ = s.guardTick(input(atSeconds: 0.001 * Double(k)))
        }
        #expect(!s.isSafeStateLatched)
        #expect(abs(s.outputPositionRad[0] - 0.9) < 1e-12)
        // Joint 1: below the lower margin bound -1.8, approached step by step.
        for k in 40..<100 {
            s.commandedPositionRad[1] = s.outputPositionRad[1] - 0.3
            _ = s.guardTick(input(atSeconds: 0.001 * Double(k)))
        }
        #expect(abs(s.outputPositionRad[1] - -1.8) < 1e-12)
        #expect(s.outputTorqueEnabled[0] && s.outputTorqueEnabled[1])
        #expect(s.events.count == 0)
    }

    @Test("rearm recovers from the safe state, ramping from the present pose")
    func recovery() {
        let s = makeSupervisor()
        s.emergencyStop.pressKeyboardStop()
        #expect(s.guardTick(input(atSeconds: 0.5)).enteredThisTick)
        s.measuredPositionRad[0] = 0.4
        s.commandedPositionRad[0] = 0.8
        s.rearm()
        let verdict = s.guardTick(input(atSeconds: 0.6))
        #expect(!verdict.isSafeState)
        #expect(abs(s.outputPositionRad[0] - 0.45) < 1e-12)
        #expect(s.events.count == 1)
        // Shutdown: safe state without a fault event.
        s.enterSafeStateWithoutFault()
        let shutdownVerdict = s.guardTick(input(atSeconds: 0.7))
        #expect(shutdownVerdict.isSafeState && shutdownVerdict.cause == nil)
        #expect(s.outputTorqueEnabled[0] && !s.outputTorqueEnabled[1])
        #expect(s.events.count == 1)
    }

    @Test("the e-stop signal triggers through its handler")
    func estopSignal() throws {
        let estop = EmergencyStopSources()
        try estop.enableSignal(SIGUSR2)
        let s = makeSupervisor(estop: estop)
        #expect(!s.guardTick(input(atSeconds: 0.1)).isSafeState)
        let count = EmergencyStopSignal.count
        kill(getpid(), SIGUSR2)
        var waited = 0
        while EmergencyStopSignal.count == count && waited < 2_000 {
            usleep(1_000)
            waited += 1
        }
        let verdict = s.guardTick(input(atSeconds: 0.2))
        #expect(verdict.cause == .emergencyStop)
        #expect(s.events.count == 1)
        #expect(s.events.events.first?.detail.description == "signal")
    }

    @Test("the e-stop file and socket sources trigger from their watcher threads")
    func estopFileAndSocket() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-estop-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("STOP").path
        let socket = directory.appendingPathComponent("estop.sock").path

        let fileStop = EmergencyStopSources()
        try fileStop.watchFile(atPath: file)
        usleep(20_000)
        #expect(fileStop.poll() == nil)
        #expect(FileManager.default.createFile(atPath: file, contents: nil))
        var waited = 0
        while fileStop.poll() == nil && waited < 2_000 {
            usleep(1_000)
            waited += 1
        }
        #expect(fileStop.poll() == .file)
        fileStop.stopWatchers()

        let socketStop = EmergencyStopSources()
        try socketStop.listen(onSocketAt: socket)
        #expect(EmergencyStopSources.send(toSocketAt: socket, message: "hello\n") == 0)
        usleep(20_000)
        #expect(socketStop.poll() == nil)
        #expect(EmergencyStopSources.send(toSocketAt: socket) == 0)
        waited = 0
        while socketStop.poll() == nil && waited < 2_000 {
            usleep(1_000)
            waited += 1
        }
        #expect(socketStop.poll() == .socket)
        socketStop.stopWatchers()
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket is removed when its watcher stops")
        #expect(!FileManager.default.fileExists(atPath: socket + ".lock"))
    }

    @Test("the file e-stop: seen the moment the file appears, and a file already there refuses to arm")
    func estopFileIsImmediateAndRefusesToArmWhenPresent() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-estop-file-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("STOP").path
        let sources = EmergencyStopSources()
        try sources.watchFile(atPath: file)
        usleep(20_000)
        #expect(sources.poll() == nil)
        let clock = ContinuousClock()
        let created = clock.now
        #expect(FileManager.default.createFile(atPath: file, contents: nil))
        while sources.poll() == nil && clock.now - created < .seconds(2) { usleep(100) }
        let waited = clock.now - created
        let latencyMs = Double(waited.components.seconds) * 1e3 + Double(waited.components.attoseconds) * 1e-15
        print(String(format: "file e-stop seen %.2f ms after the file appeared (a tick at 500 Hz: 2 ms)", latencyMs))
        #expect(sources.poll() == .file)
        // The watcher wakes on the inotify event, not on a polling period: far below the 20 ms of the old poll
        // even on a loaded machine.
        #expect(latencyMs < 15)
        sources.stopWatchers()

        let again = EmergencyStopSources()
        #expect(throws: EmergencyStopError.filePresent(path: file)) { try again.watchFile(atPath: file) }
        #expect(throws: EmergencyStopError.self) { try again.watchFile(atPath: "/nonexistent-folder/STOP") }
    }

    @Test("the e-stop socket: never takes over a file or a live run's socket, survives hostile clients")
    func estopSocketRefusesForeignPathsAndSurvivesHostileClients() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-estop-sock-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // A regular file at the path is left alone.
        let regular = directory.appendingPathComponent("notes.txt").path
        #expect(FileManager.default.createFile(atPath: regular, contents: Data("keep me".utf8)))
        #expect(throws: EmergencyStopError.socketPathTaken(path: regular)) {
            try EmergencyStopSources().listen(onSocketAt: regular)
        }
        #expect((try? String(contentsOfFile: regular, encoding: .utf8)) == "keep me")
        // A path too long for a Unix socket.
        let long = directory.appendingPathComponent(String(repeating: "x", count: 120)).path
        #expect(throws: EmergencyStopError.self) { try EmergencyStopSources().listen(onSocketAt: long) }

        let socket = directory.appendingPathComponent("estop.sock").path
        let first = EmergencyStopSources()
        try first.listen(onSocketAt: socket)
        #expect(throws: EmergencyStopError.socketInUse(path: socket)) {
            try EmergencyStopSources().listen(onSocketAt: socket)
        }
        // Clients that connect and hang up at once, send garbage or a flood: no trigger, no crash (SIGPIPE).
        for k in 0..<50 {
            let fd = socketClient(socket)
            try #require(fd >= 0)
            if k % 3 == 1 { _ = "garbage\u{0}\u{1}\u{2}".withCString { write(fd, $0, 10) } }
            if k % 3 == 2 {
                let flood = [UInt8](repeating: 0x41, count: 4096)
                _ = flood.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
            close(fd)
        }
        usleep(50_000)
        #expect(first.poll() == nil)
        #expect(EmergencyStopSources.send(toSocketAt: socket, message: "estopped\n") == 0)
        usleep(20_000)
        #expect(first.poll() == nil, "only the word estop triggers")
        #expect(EmergencyStopSources.send(toSocketAt: socket, message: "estop\n") == 0)
        var waited = 0
        while first.poll() == nil && waited < 2_000 {
            usleep(1_000)
            waited += 1
        }
        #expect(first.poll() == .socket)
        first.stopWatchers()
        // A stale socket (its run gone without cleaning up) is replaced.
        let stale = socketListener(socket)
        try #require(stale >= 0)
        close(stale)
        let next = EmergencyStopSources()
        try next.listen(onSocketAt: socket)
        next.stopWatchers()
    }

    @Test("the e-stop socket: a line that arrives in pieces is one command")
    func estopSocketGathersAMessageSentInPieces() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-estop-parts-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = directory.appendingPathComponent("estop.sock").path
        let sources = EmergencyStopSources()
        try sources.listen(onSocketAt: socket)
        defer { sources.stopWatchers() }
        // `send("es")`, a pause, `send("top\n")`: once read as "es" alone, answered as an unknown command and
        // ignored, so a client that writes in pieces could not stop the robot.
        let fd = socketClient(socket)
        try #require(fd >= 0)
        defer { close(fd) }
        _ = "es".withCString { send(fd, $0, 2, Int32(MSG_NOSIGNAL)) }
        usleep(20_000)
        _ = "top\n".withCString { send(fd, $0, 4, Int32(MSG_NOSIGNAL)) }
        var reply = [UInt8](repeating: 0, count: 64)
        var pollEntry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pollEntry, 1, 2_000) == 1)
        let count = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        #expect(String(decoding: reply.prefix(max(count, 0)), as: UTF8.self) == "ok: e-stop\n")
        var waited = 0
        while sources.poll() == nil && waited < 2_000 {
            usleep(1_000)
            waited += 1
        }
        #expect(sources.poll() == .socket)
    }

    @Test("an e-stop source whose watcher thread cannot start is an error, not a source that never reacts")
    func estopWatcherThatCannotStartIsAnError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sinew-estop-thread-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("STOP").path
        let socket = directory.appendingPathComponent("estop.sock").path
        let sources = EmergencyStopSources()
        // A stack no machine can map: pthread_create fails (as it does when memory is short). Before, the
        // run went on with nobody watching, and stopWatchers waited forever for the watcher that never ran.
        sources.watcherStackBytes = 1 << 60
        do {
            try sources.watchFile(atPath: file)
            Issue.record("the file watcher started with a \(sources.watcherStackBytes)-byte stack")
        } catch {
            guard case .watcherThread(let path, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(path == file)
            #expect(error.description.contains("cannot start the thread that watches it"), "\(error)")
        }
        #expect(throws: EmergencyStopError.self) { try sources.listen(onSocketAt: socket) }
        #expect(!FileManager.default.fileExists(atPath: socket), "no socket left that nobody answers")
        #expect(!FileManager.default.fileExists(atPath: socket + ".lock"))
        sources.stopWatchers()  // returns: no watcher is counted that never started
        // With a stack that fits, the same sources start and work.
        sources.watcherStackBytes = 256 << 10
        try sources.listen(onSocketAt: socket)
        #expect(EmergencyStopSources.send(toSocketAt: socket) == 0)
        var waited = 0
        while sources.poll() == nil && waited < 2_000 {
            usleep(1_000)
            waited += 1
        }
        #expect(sources.poll() == .socket)
        sources.stopWatchers()
    }

    @Test("zero heap allocations over 10,000 guard calls")
    func zeroAllocations() {
        let s = makeSupervisor()
        func run(_ ticks: Int) {
            for k in 0..<ticks {
                let t = 0.001 * Double(k)
                s.commandedPositionRad[0] = 0.5 * sin(t)
                s.commandedPositionRad[1] = 0.3 * cos(t)
                // A robot that tracks perfectly.
                s.measuredPositionRad[0] = s.commandedPositionRad[0]
                s.measuredPositionRad[1] = s.commandedPositionRad[1]
                s.framePositionM[0] = 0.2 * sin(t)
                if k == ticks / 2 { s.emergencyStop.pressKeyboardStop() }
                if k == 0 || k == ticks / 2 + 100 { s.rearm() }
                _ = s.guardTick(input(atSeconds: t))
            }
        }
        run(100)
        s.events.removeAll()
        let before = sinew_thread_allocations()
        run(10_000)
        let after = sinew_thread_allocations()
        #expect(after - before == 0)
        #expect(
            s.events.count == 1,
            "\(s.events.events.map { "\($0.timeSeconds) \($0.cause) \($0.jointIndex) \($0.value)" })")
    }
}

/// A Unix stream socket that `connect`s (a client) or `bind`s and listens (to leave behind as a stale socket
/// once closed) at `path`; -1 when that fails.
private func unixSocket(_ path: String, listening: Bool) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
    }
    let length = socklen_t(MemoryLayout<sockaddr_un>.size)
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            listening ? bind(fd, $0, length) : connect(fd, $0, length)
        }
    }
    guard rc == 0, !listening || listen(fd, 1) == 0 else {
        close(fd)
        return -1
    }
    return fd
}

private func socketClient(_ path: String) -> Int32 { unixSocket(path, listening: false) }
private func socketListener(_ path: String) -> Int32 { unixSocket(path, listening: true) }
