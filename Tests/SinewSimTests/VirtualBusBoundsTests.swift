import Foundation
import SinewBus
import SinewDrivers
import SinewSim
import Testing

/// Fault specs and servo IDs the virtual bus refuses, and links it does not take from another server.
@Suite struct VirtualBusBoundsTests {
    /// `overload=3@inf` (or `@2e10`: 2e19 ns does not fit) once trapped when the bus started; times and
    /// probabilities that are not finite or out of range are refused with a message naming the item.
    @Test(arguments: [
        "overload=3@inf", "overload=3@2e10", "overload=3@nan", "overload=3@-1", "silent=3@inf", "silent=3@1e300",
        "corrupt=nan", "drop=inf", "corrupt=-0.5",
    ])
    func nonFiniteOrOutOfRangeFaultsAreRefused(_ spec: String) {
        do {
            _ = try FaultInjection.parse(spec)
            Issue.record("\(spec) was accepted")
        } catch {
            #expect(error.description.hasPrefix("invalid fault '\(spec)': expected "), "\(error)")
        }
        #expect(FaultInjection.isValidFaultTime(FaultInjection.maximumFaultSeconds))
        #expect(!FaultInjection.isValidFaultTime(.infinity) && !FaultInjection.isValidFaultTime(.nan))
    }

    /// Built in code, a fault time the parser would refuse is refused by the bus too.
    @Test func busRefusesFaultTimesItCannotSchedule() throws {
        var options = VirtualBusOptions()
        options.faults.overloads = [.init(id: 1, afterSeconds: .infinity)]
        #expect(throws: VirtualBusError.invalidFaultTime(.infinity)) {
            try VirtualBus(model: try loadModel("sts3215"), ids: [1, 2], options: options)
        }
    }

    /// `silent=7` on a bus of IDs 1–6 once did nothing, silently: it names the ID and the served IDs.
    @Test(arguments: ["silent=7", "overload=7@1", "silent=7@2"])
    func faultsForServosNotOnTheBusAreRefused(_ spec: String) throws {
        let catalog = try ServoCatalog.load(directory: servoTableDirectory)
        do throws(VirtualBusSetupError) {
            _ = try VirtualBus.make(
                catalog: catalog, protocolName: "feetech", modelName: "sts3215", ids: "1-6", faults: spec)
            Issue.record("\(spec) was accepted on IDs 1-6")
        } catch {
            #expect(error == .bus(.faultForAbsentServo(7, served: [1, 2, 3, 4, 5, 6])), "\(error)")
            #expect(error.description.contains("servo ID 7"), "\(error)")
            #expect(error.description.contains("1, 2, 3, 4, 5, 6"), "\(error)")
        }
    }

    /// Feetech servos take IDs up to 253 (the codec and the STS3215 table do), Dynamixel up to 252 (0xFD is
    /// part of the packet header): the simulator accepts what robot.yaml accepts.
    @Test func servoIDsFollowTheProtocol() throws {
        let feetech = try VirtualBus(model: try loadModel("sts3215"), ids: [1, 253])
        #expect(feetech.servos.count == 2)
        #expect(throws: VirtualBusError.invalidID(254)) { try VirtualBus(model: try loadModel("sts3215"), ids: [254]) }
        #expect(throws: VirtualBusError.invalidID(253)) {
            try VirtualBus(model: try loadModel("xl330-m288"), ids: [253])
        }
        #expect(try ServoIDList.parse("250-253", highestID: 253) == [250, 251, 252, 253])
        #expect(throws: VirtualBusSetupError.self) { try ServoIDList.parse("253") }

        // A Feetech servo at 253 answers.
        let host = try TestHost(model: "sts3215", ids: [253])
        #expect(host.ping(253).map(\.id) == [253])
    }

    /// Two servers asked for the same link: the second refuses a link that leads to the first one's live
    /// pseudo-terminal, and the first, stopping, removes the link only while it still leads to its own.
    @Test func aLinkInUseIsNotTakenAndOnlyItsOwnLinkIsRemoved() throws {
        let link = NSTemporaryDirectory() + "sinew-link-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { unlink(link) }
        let first = try VirtualBusServer.servePseudoTerminal(
            bus: try VirtualBus(model: try loadModel("sts3215"), ids: [1]), linkPath: link)
        defer { first.stop() }
        #expect(linkDestination(link) == first.path)
        let secondBus = try VirtualBus(model: try loadModel("sts3215"), ids: [2])
        do throws(VirtualBusServerError) {
            let second = try VirtualBusServer.servePseudoTerminal(bus: secondBus, linkPath: link)
            second.stop()
            Issue.record("the second server took the link of a live one")
        } catch {
            guard case .linkInUse(let path, let target) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(path == link && target == first.path)
            #expect(error.description.contains("in use"), "\(error)")
        }
        #expect(linkDestination(link) == first.path, "the first server keeps its link")

        // Someone points the link elsewhere meanwhile: stopping the first leaves it alone.
        unlink(link)
        #expect(symlink("/dev/null", link) == 0)
        first.stop()
        #expect(linkDestination(link) == "/dev/null")
    }

    /// A link left behind by a server that died without cleaning up (its pseudo-terminal is gone) is replaced.
    @Test func aStaleLinkIsReplaced() throws {
        let link = NSTemporaryDirectory() + "sinew-stale-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { unlink(link) }
        #expect(symlink("/dev/pts/999999", link) == 0)
        let server = try VirtualBusServer.servePseudoTerminal(
            bus: try VirtualBus(model: try loadModel("sts3215"), ids: [1]), linkPath: link)
        #expect(linkDestination(link) == server.path)
        server.stop()
        #expect(linkDestination(link) == nil, "its own link is removed on stop")
    }
}

extension VirtualBusBoundsTests {
    /// A server killed without cleaning up leaves its link to /dev/pts/N; the next server usually gets the same
    /// N (devpts hands out the lowest free number). That link is left behind, not in use by another server: it
    /// is replaced (it was once refused as "a pseudo-terminal in use", the new server's own).
    @Test func aLeftBehindLinkToTheNumberThisServerGetsIsReplaced() throws {
        let link = NSTemporaryDirectory() + "sinew-again-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { unlink(link) }
        // The killed server's terminal: opened, linked to, then gone.
        let killedPath: String = try {
            let terminal = try PseudoTerminalTransport.createPair()
            return terminal.path
        }()
        #expect(symlink(killedPath, link) == 0)
        let server = try VirtualBusServer.servePseudoTerminal(
            bus: try VirtualBus(model: try loadModel("sts3215"), ids: [1]), linkPath: link)
        defer { server.stop() }
        print("left-behind link to \(killedPath); the new server got \(server.path ?? "?")")
        #expect(linkDestination(link) == server.path)
    }

    /// A link whose pseudo-terminal number now belongs to another program's terminal (the server that made it
    /// was killed, the number reused) is left behind, not in use: it is replaced.
    @Test func aLinkToSomeoneElsesTerminalIsReplaced() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { return }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = [
            "-c", "import os, pty, sys, time; m, s = pty.openpty(); print(os.ttyname(s), flush=True); time.sleep(60)",
        ]
        let output = Pipe()
        holder.standardOutput = output
        try holder.run()
        defer {
            holder.terminate()
            holder.waitUntilExit()
        }
        let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        let terminal = line.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(terminal.hasPrefix("/dev/pts/"), "python printed \(line)")

        let link = NSTemporaryDirectory() + "sinew-reused-\(getpid())-\(UUID().uuidString.prefix(8))"
        defer { unlink(link) }
        #expect(symlink(terminal, link) == 0)
        let server = try VirtualBusServer.servePseudoTerminal(
            bus: try VirtualBus(model: try loadModel("sts3215"), ids: [1]), linkPath: link)
        defer { server.stop() }
        #expect(linkDestination(link) == server.path)
    }
}

/// Where the symbolic link at `path` leads, nil when there is none.
private func linkDestination(_ path: String) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: path)
}
