import Foundation
import SinewCore

/// Reads URDF files into a `RobotDescription`.
///
/// Only what the kinematics and dynamics need is read: links with their `<inertial>`, and joints with
/// origin, axis, limits, mimic and dynamics. Everything else (visual, collision, gazebo, transmission,
/// ros2_control, ...) is skipped without being looked at, so mesh files are never opened. Links and
/// joints are read only as direct children of `<robot>`: a `<joint>` inside a `<transmission>` is not a
/// kinematic joint.
///
/// The loader checks each element on its own; it does not check the tree (that parents exist, that
/// there is one root, no cycles, that mimic masters exist). Building a model does that.
///
/// Conventions kept from the URDF specification:
/// - `<origin>` `xyz` in metres and `rpy` in radians, R = Rz(yaw)·Ry(pitch)·Rx(roll); both default to zero.
/// - `<axis xyz>` defaults to (1, 0, 0) and is normalised; a zero axis is an error on revolute, continuous
///   and prismatic joints, and reads as (1, 0, 0) on the others, where it means nothing.
/// - A continuous joint has no position limits: its `lower`/`upper`, if written, are dropped.
/// - `<inertial>` needs `<mass value>` and `<inertia>` with all six components, as in urdfdom.
public enum URDFLoader {
    /// The largest URDF file read, bytes. Real ones, meshes excluded, are well under a megabyte.
    public static let maximumFileBytes = 16 << 20

    /// Reads and parses the URDF file at `path`; errors name `path` as the file.
    public static func load(contentsOf path: String) throws(RobotDescriptionError) -> RobotDescription {
        let bytes: [UInt8]
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw RobotDescriptionError(.unreadableFile, at: SourceLocation(file: path), element: "", "no such file")
        }
        guard !isDirectory.boolValue else {
            throw RobotDescriptionError(
                .unreadableFile, at: SourceLocation(file: path), element: "", "is a directory, not a URDF file")
        }
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber,
            size.int64Value > Int64(maximumFileBytes)
        {
            throw RobotDescriptionError(
                .tooLarge, at: SourceLocation(file: path), element: "",
                "is \(size) bytes; a URDF may have at most \(maximumFileBytes) bytes (meshes stay in their own files)")
        }
        do {
            bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw RobotDescriptionError(
                .unreadableFile, at: SourceLocation(file: path), element: "", "cannot read the file")
        }
        let root = try bytes.withUnsafeBufferPointer { buffer throws(RobotDescriptionError) in
            try XML.parse(utf8: buffer, file: path)
        }
        return try description(of: root, file: path)
    }

    /// Parses URDF text; `file` is only used to name the source in errors and in the result.
    public static func parse(_ text: String, file: String) throws(RobotDescriptionError) -> RobotDescription {
        let root = try XML.parse(text, file: file)
        return try description(of: root, file: file)
    }

    /// Reads a robot description from an already parsed `<robot>` element.
    public static func description(of root: XML.Element, file: String) throws(RobotDescriptionError)
        -> RobotDescription
    {
        let reader = ElementReader(file: file)
        guard root.name == "robot" else {
            throw RobotDescriptionError(
                .missingElement, at: reader.location(root), element: "<\(root.name)>",
                "the root element must be <robot>, found <\(root.name)>")
        }
        var links: [LinkDescription] = []
        var joints: [JointDescription] = []
        var linkLocations: [String: SourceLocation] = [:]
        var jointLocations: [String: SourceLocation] = [:]
        for element in root.children {
            switch element.name {
            case "link":
                let link = try reader.link(element)
                if let first = linkLocations[link.name] {
                    throw RobotDescriptionError(
                        .duplicateName, at: link.location, element: "link \"\(link.name)\"",
                        "a link with this name is already declared at \(first)")
                }
                linkLocations[link.name] = link.location
                links.append(link)
            case "joint":
                let joint = try reader.joint(element)
                if let first = jointLocations[joint.name] {
                    throw RobotDescriptionError(
                        .duplicateName, at: joint.location, element: "joint \"\(joint.name)\"",
                        "a joint with this name is already declared at \(first)")
                }
                jointLocations[joint.name] = joint.location
                joints.append(joint)
            default:
                continue
            }
        }
        return RobotDescription(
            name: root.attribute("name")?.value ?? "", links: links, joints: joints, file: file)
    }
}

/// Turns URDF elements into description values, with errors that say where and what.
private struct ElementReader {
    let file: String

    func location(_ element: XML.Element) -> SourceLocation {
        SourceLocation(file: file, line: element.line, column: element.column)
    }

    func location(_ attribute: XML.Attribute) -> SourceLocation {
        SourceLocation(file: file, line: attribute.line, column: attribute.column)
    }

    // MARK: Links

    func link(_ element: XML.Element) throws(RobotDescriptionError) -> LinkDescription {
        let name = try requiredName(of: element, label: "link")
        let label = "link \"\(name)\""
        var inertial: LinkInertial? = nil
        if let inertialElement = element.child("inertial") {
            inertial = try self.inertial(inertialElement, owner: label)
        }
        return LinkDescription(name: name, inertial: inertial, location: location(element))
    }

    func inertial(_ element: XML.Element, owner: String) throws(RobotDescriptionError) -> LinkInertial {
        let origin = try self.origin(element.child("origin"), owner: owner)
        guard let massElement = element.child("mass") else {
            throw RobotDescriptionError(
                .missingElement, at: location(element), element: owner, "<inertial> has no <mass> element")
        }
        let mass = try requiredNumber("value", of: massElement, owner: owner)
        guard let inertia = element.child("inertia") else {
            throw RobotDescriptionError(
                .missingElement, at: location(element), element: owner, "<inertial> has no <inertia> element")
        }
        return LinkInertial(
            mass: mass, origin: origin,
            ixx: try requiredNumber("ixx", of: inertia, owner: owner),
            ixy: try requiredNumber("ixy", of: inertia, owner: owner),
            ixz: try requiredNumber("ixz", of: inertia, owner: owner),
            iyy: try requiredNumber("iyy", of: inertia, owner: owner),
            iyz: try requiredNumber("iyz", of: inertia, owner: owner),
            izz: try requiredNumber("izz", of: inertia, owner: owner))
    }

    // MARK: Joints

    func joint(_ element: XML.Element) throws(RobotDescriptionError) -> JointDescription {
        let name = try requiredName(of: element, label: "joint")
        let label = "joint \"\(name)\""
        guard let typeAttribute = element.attribute("type") else {
            throw RobotDescriptionError(
                .missingAttribute, at: location(element), element: label, "<joint> has no type attribute")
        }
        guard let type = JointType(rawValue: typeAttribute.value) else {
            throw RobotDescriptionError(
                .unknownJointType, at: location(typeAttribute), element: label,
                "unknown joint type \"\(typeAttribute.value)\" (expected one of revolute, continuous,"
                    + " prismatic, fixed, floating, planar)")
        }
        let parent = try linkReference("parent", of: element, owner: label)
        let child = try linkReference("child", of: element, owner: label)
        let origin = try self.origin(element.child("origin"), owner: label)
        let axis = try self.axis(element.child("axis"), type: type, owner: label)

        var limits = JointLimits()
        if let limit = element.child("limit") {
            limits.lower = try optionalNumber("lower", of: limit, owner: label)
            limits.upper = try optionalNumber("upper", of: limit, owner: label)
            limits.velocity = try optionalNumber("velocity", of: limit, owner: label)
            limits.effort = try optionalNumber("effort", of: limit, owner: label)
            if type == .continuous {
                // A continuous joint turns without end; position bounds written for it are not limits.
                limits.lower = nil
                limits.upper = nil
            }
            // lower == upper leaves no range and reads as "no limits" (as some descriptions write it); lower
            // above upper is a mistake (swapped signs), not a request for a joint without limits.
            if let lower = limits.lower, let upper = limits.upper, lower > upper {
                throw RobotDescriptionError(
                    .invalidValue, at: location(limit), element: label,
                    "<limit> lower=\"\(lower)\" is above upper=\"\(upper)\" (swapped?); lower must not exceed upper")
            }
        }

        var mimic: MimicRelation? = nil
        if let mimicElement = element.child("mimic") {
            guard let master = mimicElement.attribute("joint") else {
                throw RobotDescriptionError(
                    .missingAttribute, at: location(mimicElement), element: label, "<mimic> has no joint attribute")
            }
            mimic = MimicRelation(
                master: master.value,
                multiplier: try optionalNumber("multiplier", of: mimicElement, owner: label) ?? 1,
                offset: try optionalNumber("offset", of: mimicElement, owner: label) ?? 0)
        }

        var damping = 0.0
        var friction = 0.0
        if let dynamics = element.child("dynamics") {
            damping = try optionalNumber("damping", of: dynamics, owner: label) ?? 0
            friction = try optionalNumber("friction", of: dynamics, owner: label) ?? 0
        }

        return JointDescription(
            name: name, type: type, parent: parent, child: child, origin: origin, axis: axis, limits: limits,
            mimic: mimic, damping: damping, friction: friction, location: location(element))
    }

    /// `<parent link="...">` or `<child link="...">`.
    func linkReference(_ tag: String, of joint: XML.Element, owner: String) throws(RobotDescriptionError) -> String {
        guard let element = joint.child(tag) else {
            throw RobotDescriptionError(
                .missingElement, at: location(joint), element: owner, "<joint> has no <\(tag)> element")
        }
        guard let link = element.attribute("link") else {
            throw RobotDescriptionError(
                .missingAttribute, at: location(element), element: owner, "<\(tag)> has no link attribute")
        }
        guard !link.value.isEmpty else {
            throw RobotDescriptionError(
                .missingAttribute, at: location(link), element: owner, "<\(tag)> has an empty link attribute")
        }
        return link.value
    }

    func axis(_ element: XML.Element?, type: JointType, owner: String) throws(RobotDescriptionError) -> (
        Double, Double, Double
    ) {
        guard let element, let xyz = element.attribute("xyz") else { return (1, 0, 0) }
        let v = try vector3(xyz, of: element, owner: owner)
        let norm = (v.0 * v.0 + v.1 * v.1 + v.2 * v.2).squareRoot()
        if norm > 1e-12 { return (v.0 / norm, v.1 / norm, v.2 / norm) }
        if type.isMoving {
            throw RobotDescriptionError(
                .invalidValue, at: location(xyz), element: owner,
                "<axis> xyz=\"\(xyz.value)\" is a zero vector; a \(type.rawValue) joint needs a direction")
        }
        return (1, 0, 0)
    }

    // MARK: Shared pieces

    func requiredName(of element: XML.Element, label: String) throws(RobotDescriptionError) -> String {
        guard let name = element.attribute("name") else {
            throw RobotDescriptionError(
                .missingAttribute, at: location(element), element: label, "<\(label)> has no name attribute")
        }
        guard !name.value.isEmpty else {
            throw RobotDescriptionError(
                .missingAttribute, at: location(name), element: label, "<\(label)> has an empty name attribute")
        }
        return name.value
    }

    /// `<origin xyz rpy>`; an absent element or attribute means zero.
    func origin(_ element: XML.Element?, owner: String) throws(RobotDescriptionError) -> RigidTransform {
        guard let element else { return .identity }
        var xyz = (0.0, 0.0, 0.0)
        var rpy = (0.0, 0.0, 0.0)
        if let attribute = element.attribute("xyz") { xyz = try vector3(attribute, of: element, owner: owner) }
        if let attribute = element.attribute("rpy") { rpy = try vector3(attribute, of: element, owner: owner) }
        return RigidTransform(xyz: xyz, rpy: rpy)
    }

    func vector3(_ attribute: XML.Attribute, of element: XML.Element, owner: String) throws(RobotDescriptionError)
        -> (Double, Double, Double)
    {
        var values = (0.0, 0.0, 0.0)
        var count = 0
        var valid = true
        forEachNumber(in: attribute.value) { value in
            guard let value else {
                valid = false
                return
            }
            switch count {
            case 0: values.0 = value
            case 1: values.1 = value
            case 2: values.2 = value
            default: break
            }
            count += 1
        }
        guard valid && count == 3 else {
            throw RobotDescriptionError(
                .nonNumericAttribute, at: location(attribute), element: owner,
                "<\(element.name)> attribute \(attribute.name) must be 3 numbers, found \"\(attribute.value)\"")
        }
        return values
    }

    func optionalNumber(_ name: String, of element: XML.Element, owner: String) throws(RobotDescriptionError)
        -> Double?
    {
        guard let attribute = element.attribute(name) else { return nil }
        var result: Double? = nil
        var count = 0
        forEachNumber(in: attribute.value) { value in
            result = value
            count += 1
        }
        guard count == 1, let result else {
            throw RobotDescriptionError(
                .nonNumericAttribute, at: location(attribute), element: owner,
                "<\(element.name)> attribute \(name) must be a number, found \"\(attribute.value)\"")
        }
        return result
    }

    func requiredNumber(_ name: String, of element: XML.Element, owner: String) throws(RobotDescriptionError)
        -> Double
    {
        guard let value = try optionalNumber(name, of: element, owner: owner) else {
            throw RobotDescriptionError(
                .missingAttribute, at: location(element), element: owner, "<\(element.name)> has no \(name) attribute")
        }
        return value
    }
}

/// Calls `body` with each whitespace-separated token of `text` as a finite Double, or nil for a token
/// that is not a decimal number. Accepted: optional sign (`+` too), digits with an optional fraction,
/// optional exponent. Not accepted: `inf`, `nan`, hexadecimal, or values that overflow to infinity.
private func forEachNumber(in text: String, _ body: (Double?) -> Void) {
    var tokenStart: String.UTF8View.Index? = nil
    let utf8 = text.utf8
    var index = utf8.startIndex
    while true {
        let atEnd = index == utf8.endIndex
        let isSeparator =
            atEnd || utf8[index] == 0x20 || utf8[index] == 0x09 || utf8[index] == 0x0A || utf8[index] == 0x0D
        if isSeparator {
            if let start = tokenStart {
                body(decimalNumber(text[start..<index]))
                tokenStart = nil
            }
            if atEnd { return }
        } else if tokenStart == nil {
            tokenStart = index
        }
        index = utf8.index(after: index)
    }
}

private func decimalNumber(_ token: Substring) -> Double? {
    let utf8 = token.utf8
    var i = utf8.startIndex
    func digits() -> Int {
        var n = 0
        while i != utf8.endIndex, utf8[i] >= 0x30, utf8[i] <= 0x39 {
            i = utf8.index(after: i)
            n += 1
        }
        return n
    }
    if i != utf8.endIndex, utf8[i] == UInt8(ascii: "+") || utf8[i] == UInt8(ascii: "-") { i = utf8.index(after: i) }
    var mantissaDigits = digits()
    if i != utf8.endIndex, utf8[i] == UInt8(ascii: ".") {
        i = utf8.index(after: i)
        mantissaDigits += digits()
    }
    guard mantissaDigits > 0 else { return nil }
    if i != utf8.endIndex, utf8[i] == UInt8(ascii: "e") || utf8[i] == UInt8(ascii: "E") {
        i = utf8.index(after: i)
        if i != utf8.endIndex, utf8[i] == UInt8(ascii: "+") || utf8[i] == UInt8(ascii: "-") {
            i = utf8.index(after: i)
        }
        guard digits() > 0 else { return nil }
    }
    guard i == utf8.endIndex else { return nil }
    // Double's own parser does not take a leading "+".
    let unsigned = token.first == "+" ? token.dropFirst() : token
    guard let value = Double(unsigned), value.isFinite else { return nil }
    return value
}
