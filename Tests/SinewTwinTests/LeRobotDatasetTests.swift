import Foundation
import SinewDrivers
import SinewPolicy
import SinewRuntime
import SinewTestSupport
import SinewTwin
import Testing

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// What `python -m sinew_dataset dump` prints.
struct DatasetDump: Decodable {
    struct Info: Decodable {
        let codebase_version: String
        let fps: Int
        let total_episodes: Int
        let total_frames: Int
        let total_tasks: Int
        let robot_type: String?
    }
    struct Episode: Decodable {
        let episode_index: Int
        let length: Int
        let tasks: [String]
    }
    let info: Info
    let tasks: [String]
    let stats: [String: [String: [Double]]]
    let episodes: [Episode]
    let frames: [String: FrameColumn]

    /// A column: scalars or vectors per frame.
    enum FrameColumn: Decodable {
        case scalars([Double])
        case vectors([[Double]])
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let vectors = try? container.decode([[Double]].self) {
                self = .vectors(vectors)
            } else {
                self = .scalars(try container.decode([Double].self))
            }
        }
        var rows: [[Double]] {
            switch self {
            case .scalars(let values): values.map { [$0] }
            case .vectors(let values): values
            }
        }
    }
}

/// Runs `python -m sinew_dataset ARGUMENTS` from this checkout.
func datasetHelper(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let python = try testPython(importing: ["pyarrow", "numpy"])
    return runProcess(
        "/usr/bin/env", ["PYTHONPATH=\(repositoryRoot)/python", python, "-m", "sinew_dataset"] + arguments)
}

func temporaryDirectory(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent(
        "sinew-\(name)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)"
    ).path
}

/// LeRobotDataset v3.0 directories as Sinew writes them: every value written comes back as the float32 it was
/// stored as, the statistics equal those recomputed from the data, our layout checker (written from the published
/// format) accepts the directory and reports each way of breaking it, and the joint units are LeRobot's.
@Suite struct LeRobotDatasetTests {
    static let so101 = try! RobotConfiguration.loadChecked(
        contentsOf: "\(repositoryRoot)/Hardware/robots/so101/robot.yaml")

    /// Three episodes of random values (seeded), two tasks, in LeRobot's degrees.
    static func spec() -> LeRobotDatasetSpec {
        let conversion = LeRobotJointConversion(
            units: .degrees, configuration: so101.configuration, model: so101.model)
        var random = SplitMix64(seed: 2026)
        var episodes: [LeRobotEpisode] = []
        for (e, length) in [7, 12, 5].enumerated() {
            func rows(_ width: Int, _ scale: Double) -> [[Double]] {
                (0..<length).map { _ in (0..<width).map { _ in random.uniform(-scale...scale) } }
            }
            episodes.append(
                LeRobotEpisode(
                    task: e == 1 ? "second task" : "reach the target", state: rows(6, 120), action: rows(6, 120),
                    environment: rows(3, 0.3)))
        }
        return LeRobotDatasetSpec(
            fps: 30, robotType: "so101", conversion: conversion,
            environmentNames: ["target.x", "target.y", "target.z"],
            episodes: episodes, notes: [("source", "test")])
    }

    func write(_ spec: LeRobotDatasetSpec) throws -> String {
        let directory = temporaryDirectory("dataset")
        let input = directory + ".json"
        try spec.jsonText.write(toFile: input, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: input) }
        let result = try datasetHelper(["write", "--input", input, "--output", directory])
        try #require(result.status == 0, "\(result.output)")
        return directory
    }

    @Test func valuesRoundTripAndStatisticsAreRight() throws {
        let spec = Self.spec()
        let directory = try write(spec)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try datasetHelper(["dump", directory])
        try #require(result.status == 0, "\(result.output)")
        let dump = try JSONDecoder().decode(DatasetDump.self, from: Data(result.output.utf8))
        #expect(dump.info.codebase_version == "v3.0")
        #expect(dump.info.total_episodes == 3 && dump.info.total_frames == 24 && dump.info.total_tasks == 2)
        #expect(dump.tasks == ["reach the target", "second task"])
        #expect(dump.episodes.map(\.length) == [7, 12, 5])
        #expect(dump.episodes[1].tasks == ["second task"])
        let state = try #require(dump.frames["observation.state"]).rows
        let action = try #require(dump.frames["action"]).rows
        let environment = try #require(dump.frames["observation.environment_state"]).rows
        let timestamp = try #require(dump.frames["timestamp"]).rows.map { $0[0] }
        let frameIndex = try #require(dump.frames["frame_index"]).rows.map { $0[0] }
        let episodeIndex = try #require(dump.frames["episode_index"]).rows.map { $0[0] }
        let index = try #require(dump.frames["index"]).rows.map { $0[0] }
        let taskIndex = try #require(dump.frames["task_index"]).rows.map { $0[0] }
        var row = 0
        var mismatches = 0
        for (e, episode) in spec.episodes.enumerated() {
            for k in 0..<episode.state.count {
                for j in 0..<6 {
                    if Double(Float(episode.state[k][j])) != state[row][j] { mismatches += 1 }
                    if Double(Float(episode.action[k][j])) != action[row][j] { mismatches += 1 }
                }
                for i in 0..<3 where Double(Float(episode.environment[k][i])) != environment[row][i] { mismatches += 1 }
                #expect(timestamp[row] == Double(Float(Double(k) / 30)))
                #expect(frameIndex[row] == Double(k) && episodeIndex[row] == Double(e) && index[row] == Double(row))
                #expect(taskIndex[row] == (e == 1 ? 1 : 0))
                row += 1
            }
        }
        #expect(mismatches == 0)
        // The statistics over the whole dataset, recomputed here from the stored float32 values.
        for (name, rows) in [
            ("observation.state", state), ("action", action), ("observation.environment_state", environment),
        ] {
            let stats = try #require(dump.stats[name])
            for j in 0..<rows[0].count {
                let column = rows.map { $0[j] }
                let mean = column.reduce(0, +) / Double(column.count)
                let std = (column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(column.count)).squareRoot()
                #expect(abs(stats["mean"]![j] - mean) <= 1e-9 * max(1, abs(mean)), "\(name)[\(j)] mean")
                #expect(abs(stats["std"]![j] - std) <= 1e-9 * max(1, std), "\(name)[\(j)] std")
                #expect(stats["min"]![j] == column.min() && stats["max"]![j] == column.max())
                #expect(stats["count"]! == [24])
                #expect(stats["q01"]![j] >= column.min()! && stats["q99"]![j] <= column.max()!)
            }
        }
        let frameStats = try #require(dump.stats["frame_index"])
        #expect(frameStats["max"] == [11] && frameStats["min"] == [0])
    }

    @Test func checkerFindsEveryBrokenCopy() throws {
        let directory = try write(Self.spec())
        let scratch = temporaryDirectory("dataset-broken")
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: scratch)
        }
        let python = try testPython(importing: ["pyarrow", "numpy"])
        let result = runProcess(python, ["\(repositoryRoot)/Tests/python/dataset_check.py", directory, scratch])
        try #require(result.status == 0, "\(result.output)")
        let line = try #require(result.output.split(separator: "\n").last)
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let valid = try #require(report["valid"] as? [String])
        #expect(valid.isEmpty, "\(valid)")
        let broken = try #require(report["broken"] as? [String: [String]])
        #expect(broken.count == 9)
        for (name, problems) in broken.sorted(by: { $0.key < $1.key }) {
            #expect(!problems.isEmpty, "\(name) was not found")
            print("\(name): \(problems.first ?? "")")
        }
    }

    @Test func jointUnitsFollowLeRobot() throws {
        let configuration = Self.so101.configuration
        let model = Self.so101.model
        let degrees = LeRobotJointConversion(units: .degrees, configuration: configuration, model: model)
        let range = LeRobotJointConversion(units: .range, configuration: configuration, model: model)
        let gripper = try #require(configuration.jointIndex(named: "gripper"))
        let pan = try #require(configuration.jointIndex(named: "shoulder_pan"))
        #expect(degrees.isGripper[gripper] && !degrees.isGripper[pan])
        #expect(degrees.featureNames[pan] == "shoulder_pan.pos")
        #expect(abs(degrees.toDataset(0.5, joint: pan) - 28.64788975654116) < 1e-12)
        #expect(abs(degrees.toDataset(degrees.lowRad[gripper], joint: gripper)) < 1e-12)
        #expect(abs(degrees.toDataset(degrees.highRad[gripper], joint: gripper) - 100) < 1e-12)
        #expect(abs(range.toDataset(range.lowRad[pan], joint: pan) + 100) < 1e-12)
        #expect(abs(range.toDataset(range.highRad[pan], joint: pan) - 100) < 1e-12)
        for conversion in [degrees, range] {
            for j in 0..<6 {
                let q = 0.3 * Double(j) - 0.7
                #expect(abs(conversion.fromDataset(conversion.toDataset(q, joint: j), joint: j) - q) < 1e-12)
                let affine = conversion.toRadAffine[j]
                #expect(abs(affine.scale * conversion.toDataset(q, joint: j) + affine.offset - q) < 1e-12)
            }
        }
    }
}
