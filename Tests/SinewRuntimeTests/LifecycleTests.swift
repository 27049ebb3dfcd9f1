import SinewRuntime
import Testing

struct HookFailure: Error, Equatable {
    var step: String
}

final class RecordingNode: LifecycleNode {
    var calls: [String] = []
    var failOn: Set<String> = []

    private func call(_ name: String) throws(HookFailure) {
        calls.append(name)
        if failOn.contains(name) { throw HookFailure(step: name) }
    }

    func onConfigure() throws(HookFailure) { try call("configure") }
    func onCleanup() throws(HookFailure) { try call("cleanup") }
    func onActivate() throws(HookFailure) { try call("activate") }
    func onDeactivate() throws(HookFailure) { try call("deactivate") }
    func onEnterSafeState(cause: SafetyCause?, jointIndex: Int?) {
        calls.append("safe:\(cause.map { "\($0)" } ?? "-"):\(jointIndex.map { "\($0)" } ?? "-")")
    }
    func onRecover() throws(HookFailure) { try call("recover") }
    func onShutdown() throws(HookFailure) { try call("shutdown") }
}

@Suite("Lifecycle") struct LifecycleTests {
    @Test("unconfigured → configured → active → safe → active → shutdown")
    func happyPath() throws {
        let node = RecordingNode()
        let lifecycle = Lifecycle(node: node)
        #expect(lifecycle.state == .unconfigured)
        try lifecycle.configure()
        #expect(lifecycle.state == .configured)
        try lifecycle.activate()
        #expect(lifecycle.state == .active)
        #expect(lifecycle.enterSafeState(cause: .effortLimit, jointIndex: 2))
        #expect(lifecycle.state == .safe)
        #expect(!lifecycle.enterSafeState(cause: .overrun, jointIndex: nil))
        try lifecycle.recover()
        #expect(lifecycle.state == .active)
        try lifecycle.shutdown()
        #expect(lifecycle.state == .shutdown)
        #expect(
            node.calls == [
                "configure", "activate", "safe:effortLimit:2", "recover", "safe:-:-", "shutdown",
            ])
        #expect(lifecycle.safeStateEntries == 2)
    }

    @Test("invalid transitions are refused with a typed error and call nothing")
    func invalidTransitions() throws {
        let node = RecordingNode()
        let lifecycle = Lifecycle(node: node)
        do {
            try lifecycle.activate()
            Issue.record("activate from unconfigured must fail")
        } catch {
            guard case .invalidTransition(.activate, from: .unconfigured) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect("\(error)".contains("cannot activate from state unconfigured"))
        }
        #expect(throws: LifecycleError<HookFailure>.self) { try lifecycle.recover() }
        try lifecycle.configure()
        #expect(throws: LifecycleError<HookFailure>.self) { try lifecycle.configure() }
        try lifecycle.shutdown()
        #expect(throws: LifecycleError<HookFailure>.self) { try lifecycle.configure() }
        #expect(throws: LifecycleError<HookFailure>.self) { try lifecycle.shutdown() }
        #expect(!lifecycle.enterSafeState(cause: nil, jointIndex: nil))
        #expect(node.calls == ["configure", "shutdown"])
    }

    @Test("failing hooks: configure stays unconfigured, recover stays safe, shutdown still shuts down")
    func failingHooks() throws {
        let node = RecordingNode()
        let lifecycle = Lifecycle(node: node)
        node.failOn = ["configure"]
        do {
            try lifecycle.configure()
        } catch {
            guard case .hookFailed(.configure, stateAfter: .unconfigured, let failure) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(failure.step == "configure")
        }
        #expect(lifecycle.state == .unconfigured)
        node.failOn = ["recover", "shutdown"]
        try lifecycle.configure()
        try lifecycle.activate()
        lifecycle.enterSafeState(cause: .busErrors, jointIndex: 4)
        #expect(throws: LifecycleError<HookFailure>.self) { try lifecycle.recover() }
        #expect(lifecycle.state == .safe)
        #expect(throws: LifecycleError<HookFailure>.self) { try lifecycle.shutdown() }
        #expect(lifecycle.state == .shutdown)
    }

    @Test("a failed deactivation leaves the robot in the safe state; a failed activation stays configured")
    func failedDeactivation() throws {
        let node = RecordingNode()
        let lifecycle = Lifecycle(node: node)
        try lifecycle.configure()
        node.failOn = ["activate"]
        #expect(throws: LifecycleError<HookFailure>.self) { try lifecycle.activate() }
        #expect(lifecycle.state == .configured)
        node.failOn = ["deactivate"]
        try lifecycle.activate()
        #expect(throws: LifecycleError<HookFailure>.self) { try lifecycle.deactivate() }
        #expect(lifecycle.state == .safe)
        #expect(node.calls.suffix(2) == ["deactivate", "safe:-:-"])
    }
}
