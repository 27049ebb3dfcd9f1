import CAllocCounter
import Foundation
import SinewPolicy
import Synchronization
import Testing

struct TripleBufferTests {
    /// The reader sees nothing until the writer publishes, then the newest value, once.
    @Test func theReaderTakesTheNewestPublishedValueOnce() {
        let buffer = TripleBuffer { PolicyCommand(jointCount: 1) }
        #expect(!buffer.take())
        buffer.writeSlot.positionRad[0] = 1
        buffer.publish()
        buffer.writeSlot.positionRad[0] = 2
        buffer.publish()
        #expect(buffer.take())
        #expect(buffer.readSlot.positionRad[0] == 2)
        #expect(!buffer.take())
        #expect(buffer.readSlot.positionRad[0] == 2)
    }

    /// A writer and a reader on two threads: every value the reader takes is complete (all entries from one
    /// publication) and newer than the one before.
    @Test func valuesCrossThreadsWhole() async {
        let buffer = TripleBuffer { PolicyCommand(jointCount: 64) }
        let done = Atomic<Bool>(false)
        let writer = Thread {
            for k in 1...200_000 {
                let slot = buffer.writeSlot
                for j in 0..<64 { slot.positionRad[j] = Double(k) }
                slot.computedForNs = Int64(k)
                buffer.publish()
            }
            done.store(true, ordering: .releasing)
        }
        writer.start()
        var last: Int64 = 0
        var torn = 0
        var taken = 0
        while true {
            let finished = done.load(ordering: .acquiring)
            guard buffer.take() else {
                if finished { break }
                continue
            }
            let slot = buffer.readSlot
            taken += 1
            if slot.computedForNs < last { torn += 1 }
            last = slot.computedForNs
            for j in 0..<64 where slot.positionRad[j] != Double(slot.computedForNs) { torn += 1 }
        }
        print("triple buffer: \(taken) values taken, the last \(last)")
        #expect(torn == 0)
        #expect(taken > 0)
    }
}

struct TrajectoryPolicyTests {
    static let joints = ["a", "b"]

    static func observation(at positions: [Double], timeS: Double = 0) -> PolicyObservation {
        let o = PolicyObservation(jointNames: joints)
        for (j, p) in positions.enumerated() { o.positionRad[j] = p }
        o.timeNs = Int64((timeS * 1e9).rounded())
        return o
    }

    /// Waypoint durations are lower bounds: a segment too fast for a joint's velocity or acceleration limit is
    /// stretched to the shortest minimum-jerk duration within it, and a notice says which joint and limit.
    @Test func aSegmentTooFastIsStretchedAndSaysSo() throws {
        let policy = TrajectoryPolicy(
            jointNames: Self.joints,
            waypoints: [
                .init(positionsRad: [0, 0], durationS: 1),
                .init(positionsRad: [1, 0], durationS: 0.1),  // 1 rad in 0.1 s peaks at 18.75 rad/s
                .init(positionsRad: [1, 1], durationS: 2),  // 1 rad in 2 s: within both limits
                .init(positionsRad: [1, 0.9], durationS: 0.05),  // 0.1 rad: the acceleration limit sets it
            ],
            loops: false,
            limits: [
                .init(velocityRadPerS: 2, accelerationRadPerS2: 100),
                .init(velocityRadPerS: 2, accelerationRadPerS2: 10),
            ])
        #expect(policy.notices.count == 2, "\(policy.notices)")
        let notices = policy.notices.joined(separator: "\n")
        #expect(notices.contains("segment to waypoint 2 stretched from 0.1 s to 0.938 s: joint a"), "\(notices)")
        #expect(notices.contains("velocity limit 2.0 rad/s"), "\(notices)")
        #expect(notices.contains("waypoint 4"), "\(notices)")
        #expect(notices.contains("joint b would exceed its acceleration limit 10.0 rad/s²"), "\(notices)")
        // 1 + 0.9375 + 2 + sqrt(5.7735 · 0.1 / 10)
        let expected = 1 + 0.9375 + 2 + (10 / 3.0.squareRoot() * 0.1 / 10).squareRoot()
        #expect(abs(policy.nominalDurationS - expected) < 1e-9)

        // Sampled finely, no joint's speed exceeds its limit on the stretched segments.
        let start = Self.observation(at: [0, 0])
        let command = PolicyCommand(jointCount: 2)
        policy.reset(from: start, into: command)
        var previous = [0.0, 0.0]
        var peak = [0.0, 0.0]
        let dt = 1e-4
        for k in 0...Int(policy.nominalDurationS / dt) {
            let o = Self.observation(at: [0, 0], timeS: Double(k) * dt)
            policy.compute(o, into: command)
            for j in 0..<2 {
                if k > 0 { peak[j] = max(peak[j], abs(command.positionRad[j] - previous[j]) / dt) }
                previous[j] = command.positionRad[j]
            }
        }
        #expect(peak[0] <= 2 * 1.0001, "joint a peaked at \(peak[0]) rad/s")
        #expect(peak[1] <= 2 * 1.0001, "joint b peaked at \(peak[1]) rad/s")
        #expect(abs(command.positionRad[0] - 1) < 1e-9)
        #expect(abs(command.positionRad[1] - 0.9) < 1e-9)
    }

    /// The approach starts where the robot is (no jump) and takes at least long enough for half of each
    /// joint's velocity limit.
    @Test func theApproachStartsFromThePresentPose() {
        let policy = TrajectoryPolicy(
            jointNames: Self.joints, waypoints: [.init(positionsRad: [1, 1], durationS: 0.5)], loops: false,
            limits: [.init(velocityRadPerS: 2), .init(velocityRadPerS: 4)])
        let here = Self.observation(at: [-1, 0.5])
        let command = PolicyCommand(jointCount: 2)
        policy.reset(from: here, into: command)
        #expect(command.positionRad[0] == -1 && command.positionRad[1] == 0.5)
        // Joint a: 2 rad at half of 2 rad/s, minimum jerk: 1.875 · 2 / 1 = 3.75 s.
        #expect(abs(policy.approachS - 3.75) < 1e-12)
        policy.compute(here, into: command)
        #expect(command.positionRad[0] == -1 && command.positionRad[1] == 0.5)
        policy.compute(Self.observation(at: [0, 0], timeS: 3.75), into: command)
        #expect(abs(command.positionRad[0] - 1) < 1e-12 && abs(command.positionRad[1] - 1) < 1e-12)
    }

    /// A built-in's computation allocates nothing: 10,000 decisions of the trajectory and hold policies.
    @Test func builtInsDecideWithoutAllocating() {
        let trajectory = TrajectoryPolicy(
            jointNames: Self.joints,
            waypoints: [.init(positionsRad: [0, 0], durationS: 1), .init(positionsRad: [1, 1], durationS: 1)],
            loops: true, limits: [.init(), .init()])
        let hold = HoldPolicy(jointNames: Self.joints)
        let observation = Self.observation(at: [0.2, 0.3])
        let command = PolicyCommand(jointCount: 2)
        trajectory.reset(from: observation, into: command)
        hold.reset(from: observation, into: command)
        let policies: [any Policy] = [trajectory, hold]
        for policy in policies {
            let before = sinew_thread_allocations()
            for k in 0..<10_000 {
                observation.timeNs = Int64(k) * 2_000_000
                command.computedForNs = observation.timeNs
                policy.compute(observation, into: command)
            }
            #expect(sinew_thread_allocations() - before == 0, "\(policy.typeName)")
        }
    }
}
