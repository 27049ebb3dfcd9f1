import ArgumentParser
import Foundation
import SinewCore
import SinewKinematics

struct RobotFileOptions: ParsableArguments {
    @Argument(help: "Path to the robot description (URDF). Meshes are never opened.")
    var urdf: String

    @Flag(help: "Treat floating and planar joints as fixed (a robot description meant for a mobile base).")
    var fixedBase = false

    func loadModel() throws -> RobotModel {
        do {
            return try RobotModel(urdf: urdf, fixedBase: fixedBase)
        } catch {
            // The library says "load with a fixed base"; on the command line that is a flag.
            guard error.kind == .unsupportedJointType else { throw error }
            throw CommandFailure("\(error) (pass --fixed-base)")
        }
    }
}

struct Kinematics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect a robot description and evaluate its kinematics and dynamics.",
        discussion: """
            Conventions: poses are 4x4 homogeneous matrices, row-major, in the frame of the root link; \
            Jacobians are LOCAL_WORLD_ALIGNED (rows vx vy vz wx wy wz: velocity of the link origin and angular \
            velocity, both in the root frame); gravity is (0, 0, -9.81) m/s²; units rad, m, N·m, N, kg. Every \
            moving joint is its own degree of freedom, mimic joints included.
            """,
        subcommands: [Info.self, Eval.self, IK.self]
    )

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Print the kinematic tree, the joints with their types, limits and mimic relations, and the masses.")

        @OptionGroup var robot: RobotFileOptions

        func run() throws {
            let model = try robot.loadModel()
            print(KinematicsReport.info(model))
        }
    }

    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate link poses, a frame Jacobian, gravity torques and the mass matrix for each input line.",
            discussion: """
                Reads JSON lines from standard input, each {"joints": {"name": value, ...}}. Joints left out are 0; \
                mimic joints follow their master unless given. Writes one JSON line per input line with \
                "link_poses" (link -> 4x4 row-major), "jacobian" ({"frame", "columns": {joint: [vx,vy,vz,wx,wy,wz]}}), \
                "gravity_torque" (joint -> N·m or N) and "mass_matrix" ({"order", "rows"}). A line that cannot be \
                evaluated (bad JSON, unknown joint) gets {"error": "..."} and the rest go on; the exit status is 1 \
                if any line failed.
                """)

        @OptionGroup var robot: RobotFileOptions

        @Option(help: "Link whose Jacobian to report (default: the deepest link).")
        var frame: String?

        func run() throws {
            let model = try robot.loadModel()
            let frameIndex: Int
            if let frame {
                guard let index = model.linkIndex(named: frame) else {
                    throw ValidationError(
                        "no link named \"\(frame)\" in \(robot.urdf); links: \(model.links.map(\.name).joined(separator: ", "))"
                    )
                }
                frameIndex = index
            } else {
                frameIndex = model.deepestLink
            }
            let evaluator = KinematicsEvaluator(model: model, frame: frameIndex)
            var failed = false
            var lineNumber = 0
            while let line = readLine(strippingNewline: true) {
                lineNumber += 1
                if line.allSatisfy(\.isWhitespace) { continue }
                switch evaluator.evaluate(line: line) {
                case .success(let output): print(output.text)
                case .failure(let error):
                    failed = true
                    print(JSONValue.object([("error", .string("line \(lineNumber): \(error.message)"))]).text)
                }
                fflush(nil)
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct IK: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ik",
            abstract: "Solve inverse kinematics for a link to reach a pose.",
            discussion: """
                Prints {"success", "joints": {name: value}, "position_error_m", "rotation_error_rad", "attempts", \
                "iterations"} on standard output. When no configuration within the joint limits reaches the target, \
                "success" is false, the closest configuration found is printed with its residual, a message goes to \
                standard error and the exit status is 1.
                """)

        @OptionGroup var robot: RobotFileOptions

        @Option(help: "Link to place.")
        var frame: String

        @Option(
            parsing: .unconditional,
            help: "Target pose in the root frame: x,y,z (m), then the unit quaternion qw,qx,qy,qz.")
        var target: String

        @Option(help: "Start configuration as JSON {\"joint\": value, ...} (default: middle of the joint limits).")
        var seed: String?

        @Option(
            parsing: .unconditional, help: "Convergence threshold for the position (m) and rotation (rad) errors.")
        var tolerance = 1e-6

        @Option(parsing: .unconditional, help: "Time budget in milliseconds for random restarts.")
        var timeBudgetMs = 50.0

        func validate() throws {
            try KinematicsOptionRules.check(tolerance: tolerance)
            try KinematicsOptionRules.check(timeBudgetMs: timeBudgetMs)
            _ = try targetValues()
        }

        /// The seven numbers of --target: finite, the position within ±1000 m, the quaternion not zero.
        func targetValues() throws -> [Double] {
            let numbers = target.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard numbers.count == 7, numbers.allSatisfy({ $0 != nil }) else {
                throw ValidationError("--target needs 7 numbers x,y,z,qw,qx,qy,qz; got \"\(target)\"")
            }
            let v = numbers.map { $0! }
            guard v.allSatisfy(\.isFinite), v[0..<3].allSatisfy({ abs($0) <= 1000 }) else {
                throw ValidationError(
                    "--target needs finite numbers, the position x,y,z within ±1000 m; got \"\(target)\"")
            }
            let norm = (v[3] * v[3] + v[4] * v[4] + v[5] * v[5] + v[6] * v[6]).squareRoot()
            guard norm > 1e-9, norm.isFinite else { throw ValidationError("--target quaternion has zero length") }
            return v
        }

        func run() throws {
            let model = try robot.loadModel()
            guard let link = model.linkIndex(named: frame) else {
                throw ValidationError("no link named \"\(frame)\" in \(robot.urdf)")
            }
            let v = try targetValues()
            let pose = RigidTransform(translation: (v[0], v[1], v[2]), quaternion: (v[3], v[4], v[5], v[6]))
            var start = model.midRangePositions
            if let seed {
                switch KinematicsEvaluator.positions(fromJSON: seed, model: model) {
                case .success(let q): start = q
                case .failure(let error): throw ValidationError("--seed: \(error.message)")
                }
            }
            let solver = InverseKinematicsSolver(model: model)
            solver.options.tolerance = tolerance
            solver.options.timeBudgetSeconds = timeBudgetMs / 1000
            let solution = solver.solve(link: link, target: pose, seed: start)
            let q = Array(solver.positions)
            let output = JSONValue.object([
                ("success", .bool(solution.converged)),
                ("joints", .object(model.joints.enumerated().map { ($1.name, .number(q[$0])) })),
                ("position_error_m", .number(solution.positionError)),
                ("rotation_error_rad", .number(solution.rotationError)),
                ("attempts", .integer(solution.attempts)),
                ("iterations", .integer(solution.iterations)),
            ])
            print(output.text)
            if !solution.converged {
                printError(
                    "no solution within the joint limits: closest residual \(solution.positionError) m, "
                        + "\(solution.rotationError) rad after \(solution.attempts) attempts (is the target reachable?)"
                )
                throw ExitCode(1)
            }
        }
    }
}

/// The ranges of the inverse-kinematics options, shared by `kinematics ik` and `bench ik`.
enum KinematicsOptionRules {
    /// The longest time budget, ms: a solve is meant to take micro- to milliseconds.
    static let maximumTimeBudgetMs = 60_000.0

    static func check(tolerance: Double) throws {
        guard tolerance.isFinite, tolerance > 0, tolerance <= 1 else {
            throw ValidationError("--tolerance must be a number in (0, 1] (m and rad); got \(tolerance)")
        }
    }

    static func check(timeBudgetMs: Double) throws {
        guard timeBudgetMs.isFinite, timeBudgetMs >= 0, timeBudgetMs <= maximumTimeBudgetMs else {
            throw ValidationError(
                "--time-budget-ms must be a number of milliseconds in [0, \(Int(maximumTimeBudgetMs))]; got \(timeBudgetMs)"
            )
        }
    }
}

/// What was wrong with one line of input.
struct InputError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Evaluates one JSON input line of `sinew kinematics eval`.
struct KinematicsEvaluator {
    let model: RobotModel
    let frame: Int
    let workspace: KinematicsWorkspace

    init(model: RobotModel, frame: Int) {
        self.model = model
        self.frame = frame
        workspace = KinematicsWorkspace(model: model)
    }

    /// Joint positions from {"name": value}: joints left out are 0, mimic joints follow their master
    /// unless given.
    static func positions(fromJSON text: String, model: RobotModel) -> Result<[Double], InputError> {
        guard let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return .failure(InputError("expected a JSON object of joint name -> number")) }
        return positions(from: object, model: model)
    }

    static func positions(from object: [String: Any], model: RobotModel) -> Result<[Double], InputError> {
        var q = [Double](repeating: 0, count: model.dofCount)
        var given = Set<Int>()
        for (name, value) in object {
            guard let j = model.jointIndex(named: name) else {
                if model.fixedJoints.contains(where: { $0.name == name }) {
                    return .failure(InputError("joint \"\(name)\" is fixed and takes no value"))
                }
                return .failure(InputError("unknown joint \"\(name)\""))
            }
            // JSON true/false also arrive as NSNumber (and `is Bool` holds for 0 and 1 too): tell them apart by
            // their Objective-C type code, "c" for booleans.
            guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else {
                return .failure(InputError("joint \"\(name)\": expected a number"))
            }
            q[j] = number.doubleValue
            given.insert(j)
        }
        for (j, joint) in model.joints.enumerated() where !given.contains(j) {
            if let m = joint.mimic { q[j] = m.multiplier * q[m.master] + m.offset }
        }
        return .success(q)
    }

    func evaluate(line: String) -> Result<JSONValue, InputError> {
        guard let data = line.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            // NaN and Infinity are not JSON: say so rather than "not an object".
            let lowered = line.lowercased()
            if lowered.contains("nan") || lowered.contains("infinity") {
                return .failure(
                    InputError("not a JSON object: NaN and infinity are not JSON numbers; joint values must be finite"))
            }
            return .failure(InputError("not a JSON object"))
        }
        guard let joints = object["joints"] as? [String: Any] else {
            return .failure(InputError("expected {\"joints\": {\"name\": value, ...}}"))
        }
        let q: [Double]
        switch Self.positions(from: joints, model: model) {
        case .success(let value): q = value
        case .failure(let error): return .failure(error)
        }
        let w = workspace
        let n = model.dofCount
        w.forwardKinematics(q)
        let poses = model.links.enumerated().map { i, link in
            (link.name, JSONValue.array(w.linkPose(i).matrix4x4.map { .numbers($0) }))
        }
        w.frameJacobian(q, link: frame)
        let columns = model.joints.enumerated().map { j, joint in
            (joint.name, JSONValue.numbers((0..<6).map { w.jacobian(row: $0, column: j) }))
        }
        w.gravityEfforts(q)
        let gravity = model.joints.enumerated().map { ($1.name, JSONValue.number(w.efforts[$0])) }
        w.computeMassMatrix(q)
        let rows = (0..<n).map { r in JSONValue.numbers((0..<n).map { w.massMatrix(row: r, column: $0) }) }
        return .success(
            .object([
                ("link_poses", .object(poses)),
                ("jacobian", .object([("frame", .string(model.links[frame].name)), ("columns", .object(columns))])),
                ("gravity_torque", .object(gravity)),
                (
                    "mass_matrix",
                    .object([("order", .array(model.joints.map { .string($0.name) })), ("rows", .array(rows))])
                ),
            ]))
    }
}

enum KinematicsReport {
    static func format(_ x: Double) -> String {
        x.isFinite ? String(format: "%.4g", x) : (x > 0 ? "inf" : "-inf")
    }

    static func info(_ model: RobotModel) -> String {
        var out = "robot \"\(model.name)\" (\(model.file))\n"
        let mimicCount = model.joints.filter { $0.mimic != nil }.count
        out += "  \(model.links.count) links, \(model.dofCount) moving joints (\(mimicCount) mimic), "
        out += "\(model.fixedJoints.count) fixed joints; root link \"\(model.links[model.rootLink].name)\", "
        out += "deepest link \"\(model.links[model.deepestLink].name)\"\n"
        let totalMass = model.links.reduce(0.0) { $0 + ($1.inertial?.mass ?? 0) }
        out += "  total mass \(format(totalMass)) kg\n\ntree:\n"
        var children: [String: [Int]] = [:]
        for (i, link) in model.links.enumerated() where link.parentJointName != nil {
            let parent = jointParent(model, link)
            children[parent, default: []].append(i)
        }
        func walk(_ l: Int, _ indent: String) {
            let link = model.links[l]
            let mass = link.inertial.map { "  \(format($0.mass)) kg" } ?? ""
            var joint = ""
            if let name = link.parentJointName {
                if let j = model.jointIndex(named: name) {
                    joint = " ← \(name) (\(model.joints[j].type.rawValue))"
                } else {
                    joint = " ← \(name) (fixed)"
                }
            }
            out += "\(indent)\(link.name)\(joint)\(mass)\n"
            for c in children[link.name] ?? [] { walk(c, indent + "  ") }
        }
        walk(model.rootLink, "  ")
        out += "\njoints (degree-of-freedom order):\n"
        for (i, j) in model.joints.enumerated() {
            let unit = j.type == .prismatic ? "m" : "rad"
            var line = "  \(i) \(j.name) [\(j.type.rawValue)] \(j.parentLink) → \(j.childLink)"
            line += "  axis (\(format(j.axis.0)), \(format(j.axis.1)), \(format(j.axis.2)))"
            line += "  position [\(format(j.lowerLimit)), \(format(j.upperLimit))] \(unit)"
            if j.velocityLimit.isFinite { line += "  velocity \(format(j.velocityLimit)) \(unit)/s" }
            if j.effortLimit.isFinite {
                line += "  effort \(format(j.effortLimit)) \(j.type == .prismatic ? "N" : "N·m")"
            }
            if let m = j.mimic {
                line += "  mimic: \(format(m.multiplier))·\(model.joints[m.master].name) + \(format(m.offset))"
            }
            if j.damping != 0 || j.friction != 0 {
                line += "  damping \(format(j.damping)) friction \(format(j.friction))"
            }
            out += line + "\n"
        }
        return out
    }

    private static func jointParent(_ model: RobotModel, _ link: RobotModel.Link) -> String {
        if let j = model.jointIndex(named: link.parentJointName!) { return model.joints[j].parentLink }
        return model.fixedJoints.first { $0.name == link.parentJointName! }!.parent
    }
}
