import Synchronization

/// States of a robot's lifecycle (docs/design.md, like ros2_control's): unconfigured → configured (ports open,
/// servos found and checked, model loaded) → active (torque on, soft start from the present pose) →
/// safe (hold or torque off, per joint) → recovered → active; shutdown is final.
public enum LifecycleState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case unconfigured = 0
    case configured
    case active
    case safe
    case shutdown

    /// Lower-case name, as in JSON output (`final_state`).
    public var name: StaticString {
        switch self {
        case .unconfigured: "unconfigured"
        case .configured: "configured"
        case .active: "active"
        case .safe: "safe"
        case .shutdown: "shutdown"
        }
    }

    public var description: String { "\(name)" }
}

/// The transitions between lifecycle states.
public enum LifecycleTransition: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// unconfigured → configured
    case configure
    /// configured → unconfigured
    case cleanup
    /// configured → active
    case activate
    /// active → configured
    case deactivate
    /// active → safe (also configured → safe)
    case enterSafeState
    /// safe → active
    case recover
    /// any state but shutdown → shutdown
    case shutdown

    public var description: String {
        switch self {
        case .configure: "configure"
        case .cleanup: "cleanup"
        case .activate: "activate"
        case .deactivate: "deactivate"
        case .enterSafeState: "enter safe state"
        case .recover: "recover"
        case .shutdown: "shutdown"
        }
    }

    /// The state this transition starts from must be one of these.
    public var allowedFrom: [LifecycleState] {
        switch self {
        case .configure: [.unconfigured]
        case .cleanup: [.configured]
        case .activate: [.configured]
        case .deactivate: [.active]
        case .enterSafeState: [.active, .configured]
        case .recover: [.safe]
        case .shutdown: [.unconfigured, .configured, .active, .safe]
        }
    }

    /// Whether the transition may start from `state` (allocation-free, unlike `allowedFrom`).
    public func isAllowed(from state: LifecycleState) -> Bool {
        switch self {
        case .configure: state == .unconfigured
        case .cleanup, .activate: state == .configured
        case .deactivate: state == .active
        case .enterSafeState: state == .active || state == .configured
        case .recover: state == .safe
        case .shutdown: state != .shutdown
        }
    }

    /// The state reached when the hook succeeds.
    public var target: LifecycleState {
        switch self {
        case .configure: .configured
        case .cleanup: .unconfigured
        case .activate: .active
        case .deactivate: .configured
        case .enterSafeState: .safe
        case .recover: .active
        case .shutdown: .shutdown
        }
    }
}

/// What a robot does at each lifecycle transition; the runtime calls these hooks, in the thread that
/// asks for the transition. `onEnterSafeState` runs inside a tick (the guard stage) and must not fail or
/// allocate: it only switches each joint's command to hold or torque off.
public protocol LifecycleNode: AnyObject {
    associatedtype Failure: Error

    /// Open ports, find and check every servo, write and read back the settings (torque off).
    func onConfigure() throws(Failure)
    /// Close ports, forget what configure found.
    func onCleanup() throws(Failure)
    /// Torque on with a soft start from the present pose. If it fails, leave the joints torque-off.
    func onActivate() throws(Failure)
    /// Torque off (or hold) and stop commanding.
    func onDeactivate() throws(Failure)
    /// Bring every joint to its safe-state behaviour (hold or torque off). Real-time: no allocation.
    func onEnterSafeState(cause: SafetyCause?, jointIndex: Int?)
    /// Leave the safe state: clear latched faults and ramp from the present pose. If it fails, stay safe.
    func onRecover() throws(Failure)
    /// Safe state, flush recordings, close ports. Always ends in `shutdown`.
    func onShutdown() throws(Failure)
}

/// A failed lifecycle transition.
public enum LifecycleError<HookFailure: Error>: Error {
    /// The transition is not allowed from the current state; nothing was called.
    case invalidTransition(LifecycleTransition, from: LifecycleState)
    /// The node's hook failed; the state is now `stateAfter`.
    case hookFailed(LifecycleTransition, stateAfter: LifecycleState, HookFailure)
}

extension LifecycleError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .invalidTransition(let transition, let from):
            "cannot \(transition) from state \(from) (allowed from: "
                + transition.allowedFrom.map(\.description).joined(separator: ", ") + ")"
        case .hookFailed(let transition, let stateAfter, let failure):
            "\(transition) failed (now \(stateAfter)): \(failure)"
        }
    }
}

/// The lifecycle state machine around a `LifecycleNode`. Transitions are made by one thread at a time
/// (the control thread, or the loop thread for `enterSafeState`); the state can be read from any thread.
/// `enterSafeState` and successful transitions allocate nothing themselves (the hooks may), so they can
/// run inside a tick; a failed transition throws, which allocates.
public final class Lifecycle<Node: LifecycleNode>: @unchecked Sendable {
    public let node: Node
    private let rawState = Atomic<UInt8>(LifecycleState.unconfigured.rawValue)
    /// Times the safe state was entered.
    public private(set) var safeStateEntries = 0

    public init(node: Node) { self.node = node }

    /// The current state (any thread).
    public var state: LifecycleState { LifecycleState(rawValue: rawState.load(ordering: .acquiring))! }

    private func set(_ state: LifecycleState) { rawState.store(state.rawValue, ordering: .releasing) }

    /// Whether `transition` is allowed from the current state.
    public func canPerform(_ transition: LifecycleTransition) -> Bool {
        transition.isAllowed(from: state)
    }

    public func configure() throws(LifecycleError<Node.Failure>) {
        try perform(.configure, onFailure: .unconfigured)
    }

    public func cleanup() throws(LifecycleError<Node.Failure>) {
        try perform(.cleanup, onFailure: .configured)
    }

    public func activate() throws(LifecycleError<Node.Failure>) {
        try perform(.activate, onFailure: .configured)
    }

    /// A failed deactivation leaves the robot in the safe state.
    public func deactivate() throws(LifecycleError<Node.Failure>) {
        try perform(.deactivate, onFailure: .safe)
    }

    /// A failed recovery stays in the safe state.
    public func recover() throws(LifecycleError<Node.Failure>) {
        try perform(.recover, onFailure: .safe)
    }

    /// From `active`, enters the safe state first. Ends in `shutdown` even when a hook fails (the error
    /// is still thrown).
    public func shutdown() throws(LifecycleError<Node.Failure>) {
        let from = state
        guard LifecycleTransition.shutdown.isAllowed(from: from) else {
            throw .invalidTransition(.shutdown, from: from)
        }
        if from == .active { _ = enterSafeState(cause: nil, jointIndex: nil) }
        do {
            try node.onShutdown()
        } catch {
            set(.shutdown)
            throw .hookFailed(.shutdown, stateAfter: .shutdown, error)
        }
        set(.shutdown)
    }

    /// Enters the safe state from `active` or `configured` (the supervisor's decision in the guard stage).
    /// Returns false, calling nothing, from any other state (already safe, unconfigured, shut down).
    /// Allocation-free when the node's hook is.
    @discardableResult
    public func enterSafeState(cause: SafetyCause?, jointIndex: Int?) -> Bool {
        let from = state
        guard from == .active || from == .configured else { return false }
        node.onEnterSafeState(cause: cause, jointIndex: jointIndex)
        set(.safe)
        safeStateEntries += 1
        return true
    }

    private func callHook(_ transition: LifecycleTransition) throws(Node.Failure) {
        switch transition {
        case .configure: try node.onConfigure()
        case .cleanup: try node.onCleanup()
        case .activate: try node.onActivate()
        case .deactivate: try node.onDeactivate()
        case .recover: try node.onRecover()
        case .shutdown: try node.onShutdown()
        case .enterSafeState: node.onEnterSafeState(cause: nil, jointIndex: nil)
        }
    }

    private func perform(
        _ transition: LifecycleTransition, onFailure: LifecycleState
    ) throws(LifecycleError<Node.Failure>) {
        let from = state
        guard transition.isAllowed(from: from) else { throw .invalidTransition(transition, from: from) }
        do {
            try callHook(transition)
        } catch {
            if onFailure == .safe && from != .safe {
                node.onEnterSafeState(cause: nil, jointIndex: nil)
                safeStateEntries += 1
            }
            set(onFailure)
            throw .hookFailed(transition, stateAfter: onFailure, error)
        }
        set(transition.target)
    }
}
