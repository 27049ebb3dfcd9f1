import CRealtime
import Foundation
import SinewCore
import SinewKinematics
import SinewPolicy
import SinewROS
import SinewRecording
import SinewRuntime
import SinewSim
import SinewTwin

// The parsers of what comes from outside — robot.yaml, URDF, the e-stop socket's messages, the `mlp` policy's
// safetensors files, joint motion CSV files, MCAP recordings — under libFuzzer
// (`make fuzz`, built with -sanitize=fuzzer and FUZZING), and the same entry point replaying a corpus of
// inputs one by one in an ordinary build (`sinew-fuzz FILE|DIR…`, run by `make test` over Fuzz/corpus).
// An input's first byte picks the parser: 0 robot.yaml, 1 URDF (then the kinematic model built from it),
// 2 an e-stop socket message, 3 a safetensors file (then every tensor read and the network built from it), 4 a joint
// motion CSV (robot.yaml's `simulation.motion`; then the motion sampled across its loop), 5 an MCAP file (read strictly
// and leniently, every message, attachment and metadata record, every message as a ROS 2 JointState, the recording
// as `sinew replay` loads it, then repaired: a repaired file must read whole), 6 a
// policy server's msgpack frame (then its `actions` read as a numpy array), 7 a task.yaml for a six-joint arm (then
// its randomisation ranges drawn) and the same text as `--range` items, 8 `sinew virtual-bus`'s servo lists
// (`--servos`, `--ids`, `--fault`), 9 the key bytes of `--hand keys`, 10 what the telemetry servers read from
// outside (a listen address, where a request carries its token, a dashboard command, a token, and the text as a URDF
// whose visual geometry the dashboard's 3D view gets), 11 a ROS 2 sample as it arrives over DDS (decoded as each
// type the robot subscribes to; a trajectory or a target that decodes then checked and resampled as the node does for
// the SO-101's joints), 12 the key bytes `sinew record` reads on a real arm (its arrow-key decoder); the rest of the
// input is the parser's text or bytes.

/// Runs one input through its parser. Errors are expected (they are values); a crash, a trap or a hang is the
/// bug the fuzzer looks for.
func fuzzOne(_ data: UnsafeRawBufferPointer) {
    guard let selector = data.first else { return }
    let body = UnsafeRawBufferPointer(rebasing: data.dropFirst())
    switch selector % 13 {
    case 0:
        let text = String(decoding: body, as: UTF8.self)
        _ = try? RobotConfiguration.parse(text, file: "fuzz.yaml", baseDirectory: "/nonexistent")
    case 1:
        let text = String(decoding: body, as: UTF8.self)
        if let description = try? URDFLoader.parse(text, file: "fuzz.urdf") {
            _ = try? RobotModel(description)
        }
    case 2:
        _ = body.withMemoryRebound(to: CChar.self) { sinew_estop_message_command($0.baseAddress, $0.count) }
    case 4:
        if let motion = try? JointMotion.parse(bytes: [UInt8](body), file: "fuzz.csv") {
            // Playback at, around and beyond every knot, and at times no file would give.
            for row in 0..<min(motion.rowCount, 64) { _ = motion.sample(atS: motion.timeS(row: row) * 1.5) }
            for time in [-1, 0, motion.loopPeriodS, 1e300, .nan, .infinity] { _ = motion.sample(atS: time) }
        }
    case 5:
        fuzzMCAP([UInt8](body))
    case 7:
        let text = String(decoding: body, as: UTF8.self)
        if let robot = fuzzTaskRobot,
            let task = try? TaskConfiguration.parse(
                text, file: "fuzz-task.yaml", baseDirectory: "/nonexistent", robot: robot)
        {
            _ = task.randomization.sample(seed: 1, linkCount: 8, jointCount: robot.joints.count)
        }
        _ = try? DomainRandomization.parse(text)
    case 10:
        let text = String(decoding: body, as: UTF8.self)
        if let address = try? ListenAddress(parsing: text) { _ = try? ListenAddress(parsing: address.description) }
        _ = RequestToken.fromAuthorization(text)
        _ = RequestToken.fromCookie(text)
        _ = RequestToken.fromQuery(target: text)
        _ = DashboardCommand(message: text)
        _ = try? AccessToken(text)
        _ = try? RobotVisualDescription(urdf: text, file: "/nonexistent/fuzz.urdf")
    case 11:
        fuzzROSSample(body)
    case 6:
        if let value = try? MessagePack.decode([UInt8](body), limits: MessagePackLimits(maximumBytes: 1 << 20)) {
            if let actions = value["actions"], let array = try? NumpyArray(actions) { _ = array.doubles() }
            _ = RemotePolicy.describe(value)
        }
    case 8:
        let text = String(decoding: body, as: UTF8.self)
        _ = try? ServoGroupList.parse(text)
        _ = try? ServoIDList.parse(text)
        _ = try? FaultInjection.parse(text)
    case 9:
        var decoder = ManualHandKeyDecoder()
        for byte in body { _ = decoder.feed(byte) }
    case 12:
        // A BEL byte stands for the Esc key told apart by the terminal reader's timing, which resets the decoder.
        var decoder = EpisodeKeyDecoder()
        for byte in body {
            if decoder.feed(byte) == nil && byte == 0x07 { decoder.reset() }
        }
    default:
        if let file = try? SafeTensorsFile(bytes: [UInt8](body), file: "fuzz.safetensors") {
            for tensor in file.tensors where tensor.dtype.isReadableAsDouble { _ = try? file.values(tensor.name) }
            _ = try? MLPNetwork.load(from: file, activation: .relu)
        }
    }
}

/// The robot task.yaml inputs are parsed for: six joints on one Feetech bus, as the SO-101.
let fuzzTaskRobot: RobotConfiguration? = {
    var yaml = "model: arm.urdf\nbuses: [{name: arm, protocol: feetech, port: virtual}]\njoints:\n"
    for (i, name) in ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"].enumerated()
    {
        yaml += "  - {name: \(name), id: \(i + 1), servo: sts3215}\n"
    }
    return try? RobotConfiguration.parse(yaml, file: "fuzz-robot.yaml", baseDirectory: "/nonexistent")
}()

/// An MCAP file read every way, then repaired. Errors are expected; a repaired file that does not read back whole is a
/// bug (the repair's promise), so it stops the run like a crash.
func fuzzMCAP(_ bytes: [UInt8]) {
    for allowsIncompleteFile in [false, true] {
        let options = MCAPReaderOptions(
            validateCRCs: true, allowsIncompleteFile: allowsIncompleteFile, maxRecordBytes: 1 << 22,
            maxChunkUncompressedBytes: 1 << 22)
        guard let reader = try? MCAPReader(bytes: bytes, name: "fuzz.mcap", options: options) else { continue }
        var messages = reader.messages()
        while (try? messages.next()) != nil {}
        var some = reader.messages(onChannels: [1, 3])
        while (try? some.next()) != nil {}
        _ = try? reader.attachments()
        _ = try? reader.metadata()
        _ = try? reader.verifyDataSectionCRC()
        // Every message as a ROS 2 JointState, as `sinew replay` reads a ros2-profile file.
        var all = reader.messages()
        while let message = try? all.next() { _ = try? ROS2JointStateDecoder.decode(message.data, maxElements: 4096) }
    }
    // As `sinew replay` and `sinew recording` read a recording: every channel it knows decoded.
    _ = try? RecordedRun.load(bytes: bytes, name: "fuzz.mcap")
    guard let (repaired, report) = try? MCAPRepair.repair(bytes: bytes, name: "fuzz.mcap") else { return }
    do {
        let reader = try MCAPReader(bytes: repaired, name: "repaired.mcap")
        var count: UInt64 = 0
        var messages = reader.messages()
        while try messages.next() != nil { count += 1 }
        _ = try reader.attachments()
        _ = try reader.metadata()
        guard count == report.messagesKept else {
            fatalError("the repaired file holds \(count) messages, the repair reported \(report.messagesKept)")
        }
    } catch {
        fatalError("the repaired file does not read: \(error)")
    }
}

/// The SO-101's joints and limits, as the ROS node checks what arrives against them.
let fuzzIntake = ROSCommandIntake(
    jointNames: ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"],
    positionMinRad: [-1.92, -1.75, -1.69, -1.66, -2.74, -0.17],
    positionMaxRad: [1.92, 1.75, 1.69, 1.66, 2.84, 1.75])
let fuzzTrajectory = ExternalTrajectory(jointCount: 6, maxSteps: 6001)
let fuzzTarget = ExternalTarget(jointCount: 6)

/// A DDS sample's bytes through every decoder of the subscribed types, and what decodes through the intake.
func fuzzROSSample(_ body: UnsafeRawBufferPointer) {
    if let trajectory = try? JointTrajectoryMessage.decode(body) {
        _ = try? fuzzIntake.fill(fuzzTrajectory, from: trajectory, stepNs: 10_000_000, nowWallNs: 1_000_000_000)
    }
    if let state = try? JointStateMessage.decode(body) { _ = try? fuzzIntake.fill(fuzzTarget, from: state) }
    _ = try? DiagnosticArrayMessage.decode(body)
    _ = try? EmptyMessage.decode(body)
}

#if FUZZING
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }

    typealias FuzzerCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

    /// libFuzzer's driver (its own `main` is not the executable's entry point under SwiftPM).
    @_silgen_name("LLVMFuzzerRunDriver")
    func fuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: FuzzerCallback
    ) -> CInt

    /// SwiftPM links an executable's entry point as `<module>_main`.
    @_cdecl("sinew_fuzz_main")
    public func fuzzMain(
        _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    ) -> CInt {
        var count = argc
        var arguments = argv
        return fuzzerRunDriver(&count, &arguments) { data, size in fuzzerTestOneInput(data, size) }
    }
#else
    /// The files named, and the files in the folders named.
    func inputFiles(_ arguments: [String]) -> [String] {
        var files: [String] = []
        for argument in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("sinew-fuzz: no such file: \(argument)\n".utf8))
                exit(2)
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []
                files += names.sorted().filter { !$0.hasPrefix(".") && $0 != "README.md" }.map { argument + "/" + $0 }
            } else {
                files.append(argument)
            }
        }
        return files
    }

    @main
    enum FuzzReplay {
        static func main() {
            let arguments = Array(CommandLine.arguments.dropFirst())
            if arguments.isEmpty || arguments.contains("--help") {
                print(
                    """
                    usage: sinew-fuzz FILE|DIR…
                    Replays fuzz inputs (first byte: 0 robot.yaml, 1 URDF, 2 e-stop message, 3 safetensors, 4 joint
                    motion CSV, 5 MCAP, 6 msgpack frame, 7 task.yaml, 8 virtual-bus options, 9 hand keys, 10 telemetry, 11 ROS 2 CDR sample) through Sinew's parsers, one by one; a crash names the input being run. `make fuzz`
                    runs the real fuzzer (libFuzzer).
                    """)
                exit(arguments.isEmpty ? 2 : 0)
            }
            let files = inputFiles(arguments)
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else {
                    FileHandle.standardError.write(Data("sinew-fuzz: cannot read \(file)\n".utf8))
                    exit(2)
                }
                FileHandle.standardError.write(Data("running \(file)\n".utf8))
                data.withUnsafeBytes { fuzzOne($0) }
            }
            print("\(files.count) inputs replayed, none crashed")
        }
    }
#endif
