import CKinematics
import SinewCore

/// A robot's kinematic tree and mass properties, checked and immutable. Build it once from a
/// `RobotDescription` (for example `URDFLoader.load(contentsOf:)`); every computation then runs in a
/// `KinematicsWorkspace` made from it.
///
/// Degrees of freedom: every moving joint (revolute, continuous, prismatic) is one degree of freedom,
/// mimic joints included (the URDF-level view); `mimicFolding` maps them onto the independent joints for
/// control. Joints are numbered depth-first from the root, so a parent always comes before its children;
/// siblings are taken in joint-name order (byte-wise), which is how urdfdom orders them, so the joint order
/// is the one ROS tools, KDL and Pinocchio use. Links keep their declaration order. The root link is the world
/// frame of every pose this model reports.
public final class RobotModel: @unchecked Sendable {
    // @unchecked: the C model behind `handle` is never written after init, so sharing it is safe.

    /// A moving joint: one degree of freedom (rad for revolute and continuous, m for prismatic).
    public struct Joint: Sendable {
        public var name: String
        public var type: JointType
        /// Index of the joint whose child link carries this joint's parent link, or nil at the root.
        public var parentJoint: Int?
        public var parentLink: String
        public var childLink: String
        /// Position limits; ±infinity for continuous joints or joints without limits.
        public var lowerLimit: Double
        public var upperLimit: Double
        /// Velocity (rad/s or m/s) and effort (N·m or N) limits; infinity when not given.
        public var velocityLimit: Double
        public var effortLimit: Double
        /// The independent joint this one follows, resolved through chains of mimic joints.
        public var mimic: (master: Int, multiplier: Double, offset: Double)?
        public var damping: Double
        public var friction: Double
        /// Unit axis in the joint frame.
        public var axis: (Double, Double, Double)
    }

    /// A link: a frame of the robot, rigidly attached to the child side of a moving joint (or to the root).
    public struct Link: Sendable {
        public var name: String
        /// The moving joint that carries it, or nil if only fixed joints lie between it and the root.
        public var joint: Int?
        /// Pose of the link in the frame of `joint`'s child link (or the root).
        public var placement: RigidTransform
        public var inertial: LinkInertial?
        /// Name of the joint whose child it is (moving or fixed), nil for the root.
        public var parentJointName: String?
        /// Number of moving joints between the root and this link.
        public var depth: Int
    }

    public let name: String
    public let file: String
    public let joints: [Joint]
    public let links: [Link]
    /// Fixed joints, kept for reporting (`sinew kinematics info`): name, parent link, child link.
    public let fixedJoints: [(name: String, parent: String, child: String)]
    /// Index of the root link in `links`.
    public let rootLink: Int
    /// Gravity in the root frame, m/s².
    public let gravity: (Double, Double, Double)
    /// The link used when a caller asks for "the end" of the robot: the deepest link (most moving joints
    /// between it and the root) carried directly by a moving joint; the first such in joint order on a tie.
    public let deepestLink: Int
    public let mimicFolding: MimicFolding

    let handle: OpaquePointer
    private let jointIndexByName: [String: Int]
    private let linkIndexByName: [String: Int]

    /// Number of degrees of freedom (moving joints, mimic joints included).
    public var dofCount: Int { joints.count }

    /// The most links (and so joints) a model may have. Memory grows with the square of the size (the
    /// mass matrix, each body's support, a full evaluation's output): 1024 links cost a few megabytes,
    /// 10 000 would cost gigabytes. Robots have tens.
    public static let maximumLinkCount = 1024

    public func jointIndex(named name: String) -> Int? { jointIndexByName[name] }
    public func linkIndex(named name: String) -> Int? { linkIndexByName[name] }

    /// Checks the tree and builds the model.
    /// - Parameters:
    ///   - fixedBase: treat `floating` and `planar` joints as fixed instead of rejecting them.
    ///   - gravity: gravity in the root frame (m/s²).
    public init(
        _ description: RobotDescription, fixedBase: Bool = false, gravity: (Double, Double, Double) = (0, 0, -9.81)
    ) throws(RobotDescriptionError) {
        let file = description.file
        name = description.name
        self.file = file
        self.gravity = gravity

        if description.links.count > Self.maximumLinkCount || description.joints.count > Self.maximumLinkCount {
            let (count, what, location) =
                description.links.count > Self.maximumLinkCount
                ? (description.links.count, "links", description.links[Self.maximumLinkCount].location)
                : (description.joints.count, "joints", description.joints[Self.maximumLinkCount].location)
            throw RobotDescriptionError(
                .tooLarge, at: location, element: "robot \"\(description.name)\"",
                "has \(count) \(what); a model may have at most \(Self.maximumLinkCount)")
        }
        var linkIndex: [String: Int] = [:]
        for (i, link) in description.links.enumerated() {
            if linkIndex[link.name] != nil {
                throw RobotDescriptionError(
                    .duplicateName, at: link.location, element: "link \"\(link.name)\"",
                    "is defined twice")
            }
            linkIndex[link.name] = i
        }
        guard !description.links.isEmpty else {
            throw RobotDescriptionError(
                .noRoot, at: SourceLocation(file: file), element: "robot", "has no links")
        }

        // Each link's parent joint, checking that joints name existing links and that no link has two parents.
        var parentJointOf = [Int?](repeating: nil, count: description.links.count)
        var childrenOf = [[Int]](repeating: [], count: description.links.count)
        var jointNames: [String: Int] = [:]
        for (j, joint) in description.joints.enumerated() {
            let element = "joint \"\(joint.name)\""
            if jointNames[joint.name] != nil {
                throw RobotDescriptionError(.duplicateName, at: joint.location, element: element, "is defined twice")
            }
            jointNames[joint.name] = j
            guard let parent = linkIndex[joint.parent] else {
                throw RobotDescriptionError(
                    .missingLink, at: joint.location, element: element,
                    "parent link \"\(joint.parent)\" is not defined")
            }
            guard let child = linkIndex[joint.child] else {
                throw RobotDescriptionError(
                    .missingLink, at: joint.location, element: element,
                    "child link \"\(joint.child)\" is not defined")
            }
            if parent == child {
                throw RobotDescriptionError(
                    .cycle, at: joint.location, element: element, "connects link \"\(joint.child)\" to itself")
            }
            if let other = parentJointOf[child] {
                throw RobotDescriptionError(
                    .cycle, at: joint.location, element: element,
                    "link \"\(joint.child)\" already has parent joint \"\(description.joints[other].name)\";"
                        + " a link can have only one parent (the description is not a tree)")
            }
            if (joint.type == .floating || joint.type == .planar) && !fixedBase {
                throw RobotDescriptionError(
                    .unsupportedJointType, at: joint.location, element: element,
                    "type \"\(joint.type.rawValue)\" is not supported; load with a fixed base to treat it as fixed")
            }
            parentJointOf[child] = j
            childrenOf[parent].append(j)
        }

        for i in childrenOf.indices {
            childrenOf[i].sort {
                description.joints[$0].name.utf8.lexicographicallyPrecedes(description.joints[$1].name.utf8)
            }
        }
        let roots = description.links.indices.filter { parentJointOf[$0] == nil }
        if roots.count > 1 {
            let names = roots.map { "\"\(description.links[$0].name)\"" }.joined(separator: ", ")
            throw RobotDescriptionError(
                .multipleRoots, at: description.links[roots[1]].location, element: "robot \"\(name)\"",
                "has \(roots.count) root links (\(names)); exactly one link may lack a parent joint")
        }
        guard let root = roots.first else {
            let j = description.joints.last!
            throw RobotDescriptionError(
                .cycle, at: j.location, element: "robot \"\(name)\"",
                "every link has a parent joint, so the joints form a cycle")
        }
        rootLink = root

        // Depth-first from the root: bodies (moving joints) in parent-before-child order, links placed on them.
        var joints: [Joint] = []
        var jointSource: [Int] = []  // description index of each moving joint
        var links = [Link?](repeating: nil, count: description.links.count)
        var fixedJoints: [(name: String, parent: String, child: String)] = []
        links[root] = Link(
            name: description.links[root].name, joint: nil, placement: .identity,
            inertial: description.links[root].inertial, parentJointName: nil, depth: 0)
        var stack: [Int] = childrenOf[root].reversed()
        while let j = stack.popLast() {
            let d = description.joints[j]
            let parentLink = linkIndex[d.parent]!
            let child = linkIndex[d.child]!
            let carrier = links[parentLink]!
            if d.type.isMoving {
                // Continuous joints, and limits that leave no range (lower >= upper, as some descriptions
                // write for "unlimited"), get no position limits.
                let lower = d.limits.lower ?? -.infinity
                let upper = d.limits.upper ?? .infinity
                let continuous = d.type == .continuous || lower >= upper
                joints.append(
                    Joint(
                        name: d.name, type: d.type, parentJoint: carrier.joint, parentLink: d.parent,
                        childLink: d.child,
                        lowerLimit: continuous ? -.infinity : lower, upperLimit: continuous ? .infinity : upper,
                        velocityLimit: d.limits.velocity ?? .infinity, effortLimit: d.limits.effort ?? .infinity,
                        mimic: nil, damping: d.damping, friction: d.friction, axis: d.axis))
                jointSource.append(j)
                links[child] = Link(
                    name: d.child, joint: joints.count - 1, placement: .identity,
                    inertial: description.links[child].inertial, parentJointName: d.name, depth: carrier.depth + 1)
            } else {
                fixedJoints.append((d.name, d.parent, d.child))
                links[child] = Link(
                    name: d.child, joint: carrier.joint, placement: carrier.placement * d.origin,
                    inertial: description.links[child].inertial, parentJointName: d.name, depth: carrier.depth)
            }
            stack.append(contentsOf: childrenOf[child].reversed())
        }
        if let unreached = links.firstIndex(where: { $0 == nil }) {
            let l = description.links[unreached]
            throw RobotDescriptionError(
                .cycle, at: l.location, element: "link \"\(l.name)\"",
                "is not connected to the root link \"\(description.links[root].name)\" (its joints form a cycle)")
        }

        // Mimic joints: resolve masters by name, through chains, and refuse cycles.
        var movingIndex: [String: Int] = [:]
        for (i, joint) in joints.enumerated() { movingIndex[joint.name] = i }
        for i in joints.indices {
            let d = description.joints[jointSource[i]]
            guard d.mimic != nil else { continue }
            var multiplier = 1.0
            var offset = 0.0
            var current = jointSource[i]
            var visited: Set<Int> = [current]
            while let m = description.joints[current].mimic {
                guard let master = jointNames[m.master], description.joints[master].type.isMoving else {
                    throw RobotDescriptionError(
                        .unknownMimicMaster, at: description.joints[current].location,
                        element: "joint \"\(description.joints[current].name)\"",
                        "mimics \"\(m.master)\", which is not a revolute, continuous or prismatic joint of this robot")
                }
                // value = m·(m'·x + o') + o
                offset = multiplier * m.offset + offset
                multiplier *= m.multiplier
                if !visited.insert(master).inserted {
                    throw RobotDescriptionError(
                        .cycle, at: d.location, element: "joint \"\(d.name)\"", "mimic relations form a cycle")
                }
                current = master
            }
            joints[i].mimic = (movingIndex[description.joints[current].name]!, multiplier, offset)
        }

        self.joints = joints
        self.links = links.map { $0! }
        self.fixedJoints = fixedJoints
        jointIndexByName = movingIndex
        linkIndexByName = linkIndex

        var deepest = root
        var deepestDepth = 0
        for joint in joints {
            let l = linkIndex[joint.childLink]!
            if self.links[l].depth > deepestDepth {
                deepest = l
                deepestDepth = self.links[l].depth
            }
        }
        deepestLink = deepest
        mimicFolding = MimicFolding(joints: joints)

        // The C model: one body per moving joint, one frame per link.
        var bodies: [sk_body_desc] = []
        for (i, joint) in joints.enumerated() {
            let d = description.joints[jointSource[i]]
            let parentLink = self.links[linkIndex[d.parent]!]
            let placement = parentLink.placement * d.origin
            var body = sk_body_desc()
            body.parent = Int32(parentLink.joint ?? -1)
            body.type = joint.type == .prismatic ? Int32(SK_JOINT_PRISMATIC) : Int32(SK_JOINT_REVOLUTE)
            withUnsafeMutableBytes(of: &body.placement) { raw in
                let p = raw.bindMemory(to: Double.self)
                for (k, v) in placement.flat.enumerated() { p[k] = v }
            }
            body.axis = joint.axis
            bodies.append(body)
        }
        var frames: [sk_frame_desc] = []
        for link in self.links {
            var frame = sk_frame_desc()
            frame.body = Int32(link.joint ?? -1)
            withUnsafeMutableBytes(of: &frame.placement) { raw in
                let p = raw.bindMemory(to: Double.self)
                for (k, v) in link.placement.flat.enumerated() { p[k] = v }
            }
            if let inertial = link.inertial {
                frame.mass = inertial.mass
                frame.com = inertial.origin.translation
                frame.inertia = RobotModel.rotatedInertia(inertial)
            }
            frames.append(frame)
        }
        var g = [gravity.0, gravity.1, gravity.2]
        guard
            let handle = sk_model_create(bodies, Int32(bodies.count), frames, Int32(frames.count), &g)
        else {
            throw RobotDescriptionError(
                .invalidValue, at: SourceLocation(file: file), element: "robot \"\(name)\"",
                "the kinematics core refused the model")
        }
        self.handle = handle
    }

    deinit { sk_model_destroy(handle) }

    /// Loads a URDF file and builds its model.
    public convenience init(urdf path: String, fixedBase: Bool = false) throws(RobotDescriptionError) {
        try self.init(URDFLoader.load(contentsOf: path), fixedBase: fixedBase)
    }

    /// Inertia about the centre of mass, from the inertial frame's axes into the link's: R·I·Rᵀ.
    private static func rotatedInertia(_ i: LinkInertial) -> (Double, Double, Double, Double, Double, Double) {
        let r = i.origin.rotation
        let R = [[r.0, r.1, r.2], [r.3, r.4, r.5], [r.6, r.7, r.8]]
        let I = [[i.ixx, i.ixy, i.ixz], [i.ixy, i.iyy, i.iyz], [i.ixz, i.iyz, i.izz]]
        var out = [[0.0, 0, 0], [0, 0, 0], [0, 0, 0]]
        for a in 0..<3 {
            for b in 0..<3 {
                var s = 0.0
                for k in 0..<3 { for l in 0..<3 { s += R[a][k] * I[k][l] * R[b][l] } }
                out[a][b] = s
            }
        }
        return (out[0][0], out[0][1], out[0][2], out[1][1], out[1][2], out[2][2])
    }

    /// Mid-range configuration: the middle of each joint's limits, 0 where a joint is unlimited; mimic
    /// joints follow their masters.
    public var midRangePositions: [Double] {
        var q = joints.map { j -> Double in
            j.lowerLimit.isFinite && j.upperLimit.isFinite ? 0.5 * (j.lowerLimit + j.upperLimit) : 0
        }
        mimicFolding.applyMimic(to: &q)
        return q
    }
}
