import CAllocCounter
import Foundation
import SinewDrivers
import SinewPolicy
import SinewRuntime
import SinewTwin
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
private let so101 = "\(repositoryRoot)/Hardware/robots/so101"

/// The shipped SO-101 with one of its task files, ready for episodes.
func twinSetup(_ task: String) throws -> TwinSetup {
    let checked = try RobotConfiguration.loadChecked(contentsOf: "\(so101)/robot.yaml")
    let catalog = try ServoCatalog.load(directory: "\(repositoryRoot)/Hardware/servos")
    let loaded = try TaskConfiguration.load(
        contentsOf: "\(so101)/tasks/\(task)", robot: checked.configuration, model: checked.model)
    return try TwinSetup(
        configuration: checked.configuration, model: checked.model, catalog: catalog, task: loaded.task)
}

/// Episodes on the digital twin: lockstep on the simulation clock, so one seed is one episode, bit for bit; the
/// scripted experts do their tasks; randomisation changes the physics but not the task's draw; the task's per-tick
/// work allocates nothing.
@Suite struct TwinEpisodeTests {
    static let reach = try! twinSetup("reach.yaml")
    static let tracking = try! twinSetup("trajectory_tracking.yaml")

    /// Everything but the wall-clock time.
    func same(_ a: EpisodeResult, _ b: EpisodeResult) -> Bool {
        var a = a
        var b = b
        a.wallS = 0
        b.wallS = 0
        return a == b
    }

    @Test(arguments: [false, true])
    func oneSeedGivesOneEpisodeBitForBit(randomized: Bool) throws {
        let setup = Self.reach
        var options = EpisodeOptions(randomization: randomized ? setup.task.randomization : nil)
        options.frameRateHz = 30
        let first = TwinEpisode.run(setup, seed: 11, policy: .fromTask("cartesian"), options: options)
        let again = TwinEpisode.run(setup, seed: 11, policy: .fromTask("cartesian"), options: options)
        let other = TwinEpisode.run(setup, seed: 12, policy: .fromTask("cartesian"), options: options)
        #expect(first.result.outcome == "success", "\(first.result)")
        #expect(same(first.result, again.result))
        #expect(first.frames == again.frames)
        #expect(!first.frames.isEmpty)
        #expect(first.result.traceHash != other.result.traceHash)
        #expect(first.result.goal != other.result.goal)
        #expect(first.result.randomized == randomized)
        print(
            "reach seed 11 (randomised: \(randomized)): \(first.result.outcome) at \(first.result.timeToSuccessS ?? -1) s, "
                + "trace \(first.result.traceHash), \(first.frames.count) frames, wall \(first.result.wallS) s")
    }

    /// Randomisation moves the physics and the bus, not the task: the same seed draws the same target.
    @Test func randomisationChangesThePhysicsNotTheGoal() throws {
        let setup = Self.reach
        let nominal = TwinEpisode.run(setup, seed: 5, policy: .fromTask("cartesian")).result
        let randomized = TwinEpisode.run(
            setup, seed: 5, policy: .fromTask("cartesian"),
            options: EpisodeOptions(randomization: setup.task.randomization)
        ).result
        #expect(nominal.goal == randomized.goal)
        #expect(nominal.traceHash != randomized.traceHash)
        #expect(!nominal.randomized && randomized.randomized)
        // One knob at a time changes the episode too.
        for key in ["link_mass_scale", "servo_gain_scale", "encoder_noise_counts", "loop_jitter_us", "bus_latency_us"] {
            var one = DomainRandomization()
            _ = one.set(key, setup.task.randomization.ranges[key]!)
            let result = TwinEpisode.run(
                setup, seed: 5, policy: .fromTask("cartesian"), options: EpisodeOptions(randomization: one)
            ).result
            #expect(result.traceHash != nominal.traceHash, "\(key)")
            #expect(result.outcome == "success", "\(key): \(result)")
        }
    }

    @Test func scriptedExpertsDoTheirTasks() throws {
        for seed in UInt64(100)..<104 {
            let reach = TwinEpisode.run(Self.reach, seed: seed, policy: .fromTask("cartesian")).result
            #expect(reach.outcome == "success", "\(reach)")
            #expect(reach.taskFinalError <= 0.02 && reach.taskErrorUnit == "m")
            let tracking = TwinEpisode.run(Self.tracking, seed: seed, policy: .fromTask("trajectory")).result
            #expect(tracking.outcome == "success", "\(tracking)")
            #expect(tracking.taskRMSError <= 0.03 && tracking.taskErrorUnit == "rad")
        }
    }

    /// Holding still never reaches a target: the episode ends at its time limit; a policy that cannot take its
    /// goal from the task is refused with a reason.
    @Test func failuresAreNamed() throws {
        let hold = TwinEpisode.run(
            Self.reach, seed: 3, policy: .settings(RobotConfiguration.Policy.hold.settings)
        ).result
        #expect(hold.outcome == "timeout")
        #expect(abs(hold.durationS - Self.reach.task.timeLimitS) < 0.01)
        #expect(hold.reason?.contains("time limit") == true)
        let wrong = TwinEpisode.run(Self.reach, seed: 3, policy: .fromTask("trajectory")).result
        #expect(wrong.outcome == "error")
        #expect(wrong.reason?.contains("cannot take its goal") == true, "\(wrong.reason ?? "")")
    }

    /// The task's update runs after every tick: no allocation once warm.
    @Test func taskUpdatesAllocateNothing() throws {
        for setup in [Self.reach, Self.tracking] {
            let start = setup.task.startPose(configuration: setup.configuration, model: setup.model, seed: 1)
            var random = TaskConfiguration.random(seed: 1, stream: .task)
            let episode = try setup.task.settings.makeEpisode(
                TaskEpisodeContext(configuration: setup.configuration, model: setup.model, startRad: start),
                random: &random)
            let q = UnsafeMutableBufferPointer<Double>.allocate(capacity: start.count)
            defer { q.deallocate() }
            for j in start.indices { q[j] = start[j] }
            for k in 0..<10 { _ = episode.update(timeS: Double(k) * 0.002, positionsRad: UnsafeBufferPointer(q)) }
            let before = sinew_thread_allocations()
            for k in 10..<3000 {
                q[0] = start[0] + 1e-4 * Double(k % 50)
                _ = episode.update(timeS: Double(k) * 0.002, positionsRad: UnsafeBufferPointer(q))
            }
            let allocations = sinew_thread_allocations() - before
            #expect(allocations == 0, "\(setup.task.name): \(allocations) allocations")
        }
    }

    @Test func wilsonInterval() {
        let none = EvaluationSummary.wilson(successes: 0, trials: 100)
        #expect(none.low == 0 && abs(none.high - 0.0370) < 1e-3)
        let all = EvaluationSummary.wilson(successes: 100, trials: 100)
        #expect(abs(all.low - 0.9630) < 1e-3 && all.high == 1)
        let half = EvaluationSummary.wilson(successes: 50, trials: 100)
        #expect(abs(half.low - 0.4038) < 1e-3 && abs(half.high - 0.5962) < 1e-3)
    }
}
