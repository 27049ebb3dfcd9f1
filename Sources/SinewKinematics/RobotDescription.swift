import SinewCore

/// The joint types of a robot description. `floating` and `planar` exist only so a loader can report
/// them; the kinematics core accepts them only when asked to treat them as fixed.
public enum JointType: String, Sendable, CaseIterable {
    case revolute, continuous, prismatic, fixed, floating, planar

    /// True for the types that carry one degree of freedom in Sinew's core.
    public var isMoving: Bool { self == .revolute || self == .continuous || self == .prismatic }
}

/// Mass properties of a link: `mass` in kg, `origin` the pose of the centre-of-mass frame in the link
/// frame, `inertia` about the centre of mass in that frame's axes (kg·m²).
public struct LinkInertial: Sendable, Equatable {
    public var mass: Double
    public var origin: RigidTransform
    public var ixx: Double, ixy: Double, ixz: Double, iyy: Double, iyz: Double, izz: Double

    public init(
        mass: Double, origin: RigidTransform = .identity, ixx: Double = 0, ixy: Double = 0, ixz: Double = 0,
        iyy: Double = 0, iyz: Double = 0, izz: Double = 0
    ) {
        self.mass = mass
        self.origin = origin
        (self.ixx, self.ixy, self.ixz, self.iyy, self.iyz, self.izz) = (ixx, ixy, ixz, iyy, iyz, izz)
    }
}

/// A link as described: its name, optional mass properties, and where it was declared.
public struct LinkDescription: Sendable {
    public var name: String
    public var inertial: LinkInertial?
    public var location: SourceLocation

    public init(name: String, inertial: LinkInertial? = nil, location: SourceLocation) {
        self.name = name
        self.inertial = inertial
        self.location = location
    }
}

/// Joint limits as described: position (rad or m; nil for continuous or absent), velocity (rad/s or
/// m/s) and effort (N·m or N) bounds.
public struct JointLimits: Sendable, Equatable {
    public var lower: Double?
    public var upper: Double?
    public var velocity: Double?
    public var effort: Double?

    public init(lower: Double? = nil, upper: Double? = nil, velocity: Double? = nil, effort: Double? = nil) {
        self.lower = lower
        self.upper = upper
        self.velocity = velocity
        self.effort = effort
    }
}

/// `value = multiplier · master + offset`.
public struct MimicRelation: Sendable, Equatable {
    public var master: String
    public var multiplier: Double
    public var offset: Double

    public init(master: String, multiplier: Double = 1, offset: Double = 0) {
        self.master = master
        self.multiplier = multiplier
        self.offset = offset
    }
}

/// A joint as described. `origin` is the pose of the joint frame in the parent link frame; `axis` a unit
/// vector in the joint frame (default x).
public struct JointDescription: Sendable {
    public var name: String
    public var type: JointType
    public var parent: String
    public var child: String
    public var origin: RigidTransform
    public var axis: (Double, Double, Double)
    public var limits: JointLimits
    public var mimic: MimicRelation?
    /// Viscous damping (N·m·s/rad or N·s/m) and Coulomb friction (N·m or N).
    public var damping: Double
    public var friction: Double
    public var location: SourceLocation

    public init(
        name: String, type: JointType, parent: String, child: String, origin: RigidTransform = .identity,
        axis: (Double, Double, Double) = (1, 0, 0), limits: JointLimits = JointLimits(),
        mimic: MimicRelation? = nil, damping: Double = 0, friction: Double = 0, location: SourceLocation
    ) {
        self.name = name
        self.type = type
        self.parent = parent
        self.child = child
        self.origin = origin
        self.axis = axis
        self.limits = limits
        self.mimic = mimic
        self.damping = damping
        self.friction = friction
        self.location = location
    }
}

/// A robot description as read from a file, before it is checked and turned into a `RobotModel`.
public struct RobotDescription: Sendable {
    public var name: String
    public var links: [LinkDescription]
    public var joints: [JointDescription]
    /// The file it came from (for error messages).
    public var file: String

    public init(name: String, links: [LinkDescription], joints: [JointDescription], file: String) {
        self.name = name
        self.links = links
        self.joints = joints
        self.file = file
    }
}

/// What can be wrong with a robot description, with where it was found.
public struct RobotDescriptionError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case unreadableFile
        case malformedXML
        case missingElement
        case missingAttribute
        case nonNumericAttribute
        case unknownJointType
        case unsupportedJointType
        case duplicateName
        case missingLink
        case unknownMimicMaster
        case cycle
        case multipleRoots
        case noRoot
        case invalidValue
        /// A file, a nesting or a model larger than Sinew reads (`URDFLoader.maximumFileBytes`,
        /// `XML.maximumDepth`, `RobotModel.maximumLinkCount`).
        case tooLarge
    }

    public var kind: Kind
    public var location: SourceLocation
    /// The element concerned, e.g. `joint "elbow"` or `link "base"`.
    public var element: String
    public var message: String

    public init(_ kind: Kind, at location: SourceLocation, element: String, _ message: String) {
        self.kind = kind
        self.location = location
        self.element = element
        self.message = message
    }

    public var description: String {
        element.isEmpty ? "\(location): \(message)" : "\(location): \(element): \(message)"
    }
}
