import Foundation
import SinewCore
import SinewKinematics
import Testing

private func referenceURDF(_ name: String) throws -> String {
    try kinematicsFixture(name)
}

private func loadReference(_ name: String) throws -> RobotDescription {
    try URDFLoader.load(contentsOf: referenceURDF(name))
}

private func joint(_ name: String, in robot: RobotDescription) throws -> JointDescription {
    try #require(robot.joints.first { $0.name == name })
}

private func link(_ name: String, in robot: RobotDescription) throws -> LinkDescription {
    try #require(robot.links.first { $0.name == name })
}

/// Parses `text` expecting failure; returns the error.
private func parseError(_ text: String, file: String = "inline.urdf") -> RobotDescriptionError? {
    do {
        _ = try URDFLoader.parse(text, file: file)
        return nil
    } catch {
        return error
    }
}

private func close(_ a: Double, _ b: Double, tolerance: Double = 1e-12) -> Bool {
    abs(a - b) <= tolerance
}

private func rotationRows(_ r: RigidTransform) -> [[Double]] {
    let m = r.rotation
    return [[m.0, m.1, m.2], [m.3, m.4, m.5], [m.6, m.7, m.8]]
}

private func matricesClose(_ a: [[Double]], _ b: [[Double]], tolerance: Double = 1e-12) -> Bool {
    zip(a, b).allSatisfy { zip($0, $1).allSatisfy { close($0, $1, tolerance: tolerance) } }
}

private func multiply(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
    (0..<3).map { i in (0..<3).map { j in (0..<3).reduce(0.0) { $0 + a[i][$1] * b[$1][j] } } }
}

/// A minimal robot: one joint between two links, with the given joint body.
private func oneJoint(type: String = "revolute", _ body: String) -> String {
    """
    <robot name="r">
      <link name="a"/>
      <link name="b"/>
      <joint name="j" type="\(type)">
        <parent link="a"/>
        <child link="b"/>
        \(body)
      </joint>
    </robot>
    """
}

@Suite("URDFLoader reference robots")
struct URDFLoaderReferenceTests {
    @Test(
        "every reference URDF loads with the expected link and joint counts",
        arguments: [
            ("double_pendulum.urdf", "2dof_planar", 3, 2),
            ("kinova.urdf", "kinova", 13, 12),
            ("panda.urdf", "panda", 13, 12),
            ("so101.urdf", "so101_new_calib", 8, 7),
            ("ur5_robot.urdf", "ur5", 11, 10),
        ])
    func counts(file: String, name: String, links: Int, joints: Int) throws {
        let robot = try loadReference(file)
        #expect(robot.name == name)
        #expect(robot.links.count == links)
        #expect(robot.joints.count == joints)
        #expect(robot.file == (try referenceURDF(file)))
        for joint in robot.joints {
            let (x, y, z) = joint.axis
            #expect(close((x * x + y * y + z * z).squareRoot(), 1), "axis of \(joint.name) is not unit")
            #expect(joint.location.line > 0 && joint.location.column > 0)
        }
    }

    @Test("every URDF in the reference directory loads")
    func everyFileLoads() throws {
        let directory = kinematicsReferenceDirectory
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".urdf") }
        #expect(files.count >= 5)
        for file in files {
            let robot = try URDFLoader.load(contentsOf: directory + "/" + file)
            #expect(!robot.links.isEmpty, "\(file) has no links")
        }
    }

    @Test("Panda: declaration order, finger mimic, prismatic limits, an inertial")
    func panda() throws {
        let robot = try loadReference("panda.urdf")
        #expect(robot.links.first?.name == "panda_link0")
        #expect(robot.joints.first?.name == "panda_joint1")
        let finger2 = try joint("panda_finger_joint2", in: robot)
        #expect(finger2.type == .prismatic)
        #expect(finger2.mimic == MimicRelation(master: "panda_finger_joint1", multiplier: 1, offset: 0))
        #expect(finger2.axis == (0, -1, 0))
        #expect(try joint("panda_finger_joint1", in: robot).mimic == nil)

        let joint1 = try joint("panda_joint1", in: robot)
        #expect(joint1.type == .revolute)
        #expect(joint1.parent == "panda_link0" && joint1.child == "panda_link1")
        #expect(joint1.limits == JointLimits(lower: -2.8973, upper: 2.8973, velocity: 2.175, effort: 87.0))
        #expect(joint1.damping == 0.003 && joint1.friction == 0)
        #expect(joint1.origin.translation == (0, 0, 0.333))

        let link0 = try link("panda_link0", in: robot)
        let inertial = try #require(link0.inertial)
        #expect(inertial.mass == 0.629769)
        #expect(inertial.origin.translation == (-0.041018, -0.00014, 0.049974))
        #expect(inertial.ixx == 0.00315 && inertial.ixy == 8.2904e-07 && inertial.ixz == 0.00015)
        #expect(inertial.iyy == 0.00388 && inertial.iyz == 8.2299e-06 && inertial.izz == 0.004285)
    }

    @Test("Kinova: continuous joints lose position limits, keep velocity and effort; zero axis on fixed")
    func kinova() throws {
        let robot = try loadReference("kinova.urdf")
        let continuous = robot.joints.filter { $0.type == .continuous }.map(\.name)
        #expect(continuous == ["j2s6s200_joint_1", "j2s6s200_joint_4", "j2s6s200_joint_6"])
        let joint1 = try joint("j2s6s200_joint_1", in: robot)
        #expect(joint1.limits == JointLimits(lower: nil, upper: nil, velocity: 0.628318530718, effort: 40))
        #expect(joint1.axis == (0, 0, 1))
        // rpy="0 3.14159265359 0": a half turn about y.
        #expect(
            matricesClose(rotationRows(joint1.origin), [[-1, 0, 0], [0, 1, 0], [0, 0, -1]], tolerance: 1e-10))
        #expect(joint1.origin.translation == (0, 0, 0.15675))

        let joint2 = try joint("j2s6s200_joint_2", in: robot)
        #expect(joint2.type == .revolute)
        #expect(joint2.limits.lower != nil && joint2.limits.upper != nil)

        // The mounting joint is fixed with axis "0 0 0": accepted, reads as the default axis.
        let mount = try joint("jaco_mounting_block_to_j2s6s200_link_base", in: robot)
        #expect(mount.type == .fixed)
        #expect(mount.axis == (1, 0, 0))
        // Joints named in <transmission> are not kinematic joints.
        #expect(robot.joints.allSatisfy { !$0.name.hasSuffix("_trans") })
    }

    @Test("double pendulum: multi-line tags, scientific notation, element positions")
    func doublePendulum() throws {
        let robot = try loadReference("double_pendulum.urdf")
        let base = try link("base_link", in: robot)
        #expect(base.location.line == 7 && base.location.column == 3)
        let inertial = try #require(base.inertial)
        #expect(inertial.origin.translation == (0.0030299, 2.6279E-13, 0.02912))
        #expect(inertial.ixy == -1.007E-16)
        let joint1 = try joint("joint1", in: robot)
        #expect(joint1.damping == 0.05)
    }
}

@Suite("URDFLoader parsing")
struct URDFLoaderParsingTests {
    @Test("joints may come before the links they name; declaration order is kept")
    func jointsBeforeLinks() throws {
        let robot = try URDFLoader.parse(
            """
            <robot name="order">
              <joint name="second" type="fixed"><parent link="b"/><child link="c"/></joint>
              <joint name="first" type="fixed"><parent link="a"/><child link="b"/></joint>
              <link name="c"/><link name="a"/><link name="b"/>
            </robot>
            """, file: "order.urdf")
        #expect(robot.joints.map(\.name) == ["second", "first"])
        #expect(robot.links.map(\.name) == ["c", "a", "b"])
        #expect(robot.joints[0].location.line == 2 && robot.joints[0].location.column == 3)
        #expect(robot.links[1].location.line == 4 && robot.links[1].location.column == 19)
    }

    @Test("no tree checks: dangling parent and unknown mimic master are left to the model builder")
    func noTreeChecks() throws {
        let robot = try URDFLoader.parse(
            oneJoint("<mimic joint=\"nowhere\"/>").replacingOccurrences(of: "<link name=\"a\"/>", with: ""),
            file: "x.urdf")
        #expect(robot.links.count == 1)
        #expect(robot.joints[0].mimic?.master == "nowhere")
    }

    @Test("defaults: axis x, identity origin, no limits, no mimic, zero dynamics, robot name empty")
    func defaults() throws {
        let robot = try URDFLoader.parse(
            """
            <robot>
              <joint name="j" type="revolute"><parent link="a"/><child link="b"/></joint>
            </robot>
            """, file: "d.urdf")
        #expect(robot.name == "")
        let j = robot.joints[0]
        #expect(j.axis == (1, 0, 0))
        #expect(j.origin == .identity)
        #expect(j.limits == JointLimits())
        #expect(j.mimic == nil)
        #expect(j.damping == 0 && j.friction == 0)
        let partialOrigin = try URDFLoader.parse(oneJoint("<origin xyz=\"1 2 3\"/>"), file: "p.urdf")
        #expect(partialOrigin.joints[0].origin.translation == (1, 2, 3))
        #expect(rotationRows(partialOrigin.joints[0].origin) == [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    }

    @Test("axis is normalised")
    func axisNormalised() throws {
        let robot = try URDFLoader.parse(oneJoint("<axis xyz=\"0 3 -4\"/>"), file: "a.urdf")
        let (x, y, z) = robot.joints[0].axis
        #expect(x == 0 && close(y, 0.6) && close(z, -0.8))
    }

    @Test("mimic multiplier and offset, partial limits, dynamics")
    func mimicLimitsDynamics() throws {
        let robot = try URDFLoader.parse(
            oneJoint(
                type: "prismatic",
                """
                <limit upper="0.04" effort="20"/>
                <mimic joint="m" multiplier="-2.5" offset="+1e-3"/>
                <dynamics friction="0.5"/>
                """), file: "m.urdf")
        let j = robot.joints[0]
        #expect(j.type == .prismatic)
        #expect(j.limits == JointLimits(lower: nil, upper: 0.04, velocity: nil, effort: 20))
        #expect(j.mimic == MimicRelation(master: "m", multiplier: -2.5, offset: 0.001))
        #expect(j.damping == 0 && j.friction == 0.5)
    }

    @Test("floating and planar joints are reported as such")
    func floatingAndPlanar() throws {
        #expect(try URDFLoader.parse(oneJoint(type: "floating", ""), file: "f.urdf").joints[0].type == .floating)
        #expect(try URDFLoader.parse(oneJoint(type: "planar", ""), file: "p.urdf").joints[0].type == .planar)
    }

    @Test("number lists: any whitespace, scientific notation, leading +")
    func numberSyntax() throws {
        let robot = try URDFLoader.parse(
            oneJoint("<origin xyz=\"  +1.5e-1\t\n -2E+2    .5  \" rpy=\"0 0 0\"/>"), file: "n.urdf")
        #expect(robot.joints[0].origin.translation == (0.15, -200, 0.5))
    }

    @Test("rpy composes as Rz(yaw)·Ry(pitch)·Rx(roll)")
    func rpyComposition() throws {
        // Hand-computed: roll 90° then yaw 90° sends x → y, y → z, z → x.
        let quarter = "1.5707963267948966"
        let rollYaw = try URDFLoader.parse(oneJoint("<origin rpy=\"\(quarter) 0 \(quarter)\"/>"), file: "r.urdf")
        #expect(matricesClose(rotationRows(rollYaw.joints[0].origin), [[0, 0, 1], [1, 0, 0], [0, 1, 0]]))
        // Roll 90° then pitch 90°.
        let rollPitch = try URDFLoader.parse(oneJoint("<origin rpy=\"\(quarter) \(quarter) 0\"/>"), file: "r.urdf")
        #expect(matricesClose(rotationRows(rollPitch.joints[0].origin), [[0, 1, 0], [0, 0, -1], [-1, 0, 0]]))

        // General angles against the product of the elementary rotations.
        let (r, p, y) = (0.3, -0.7, 1.1)
        let rx = [[1, 0, 0], [0, cos(r), -sin(r)], [0, sin(r), cos(r)]]
        let ry = [[cos(p), 0, sin(p)], [0, 1, 0], [-sin(p), 0, cos(p)]]
        let rz = [[cos(y), -sin(y), 0], [sin(y), cos(y), 0], [0, 0, 1]]
        let general = try URDFLoader.parse(oneJoint("<origin xyz=\"1 2 3\" rpy=\"\(r) \(p) \(y)\"/>"), file: "r.urdf")
        #expect(matricesClose(rotationRows(general.joints[0].origin), multiply(rz, multiply(ry, rx))))
        #expect(general.joints[0].origin.translation == (1, 2, 3))
    }

    @Test("comments, CDATA, entities, processing instructions, DOCTYPE and unknown elements are handled")
    func xmlFeatures() throws {
        let robot = try URDFLoader.parse(
            """
            <?xml version="1.0" encoding="utf-8"?>
            <!DOCTYPE robot [ <!ELEMENT robot ANY> <!-- a ] inside a comment --> ]>
            <!-- <robot name="commented out"> -->
            <robot name='a&amp;b &lt;&#65;&#x42;&gt; &quot;q&quot; &apos;s&apos;'
                   xmlns:xacro="http://www.ros.org/wiki/xacro">
              <?some-tool do something?>
              <gazebo reference="l1"><link name="not a link"/><material>Gazebo/Grey</material></gazebo>
              <link name="l&#49;"><visual><geometry><mesh filename="package://nowhere/x.stl"/></geometry></visual>
                <description><![CDATA[ <link name="not a link either"/> & raw ]]></description>
              </link>
              <!-- <link name="commented"/> -->
              <transmission name="t"><joint name="j"><hardwareInterface>x</hardwareInterface></joint></transmission>
              <ros2_control name="rc" type="system"><joint name="j"/></ros2_control>
              <xacro:property name="p" value="1"/>
            </robot>
            <!-- trailing comment -->
            """, file: "x.urdf")
        #expect(robot.name == "a&b <AB> \"q\" 's'")
        #expect(robot.links.map(\.name) == ["l1"])
        #expect(robot.joints.isEmpty)
    }

    @Test("a 1 MB URDF with many links, joints and ignored elements loads completely")
    func largeFile() throws {
        var text = "<?xml version=\"1.0\"?>\n<robot name=\"big\">\n<link name=\"l0\"/>\n"
        let count = 2500
        for i in 1...count {
            text += """
                <!-- segment \(i) -->
                <link name="l\(i)">
                  <inertial><origin xyz="0 0 0.1" rpy="0 0 0"/><mass value="1.5"/>
                    <inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.001"/></inertial>
                  <visual><origin xyz="0 0 0"/><geometry><mesh filename="package://big/meshes/l\(i).stl"/></geometry>
                    <material name="grey"><color rgba="0.5 0.5 0.5 1"/></material></visual>
                  <collision><geometry><cylinder radius="0.05" length="0.2"/></geometry></collision>
                </link>
                <joint name="j\(i)" type="revolute">
                  <parent link="l\(i - 1)"/><child link="l\(i)"/>
                  <origin xyz="0 0 0.2" rpy="0 0 0.1"/><axis xyz="0 0 1"/>
                  <limit lower="-3.14" upper="3.14" velocity="2.0" effort="10"/>
                </joint>

                """
        }
        text += "</robot>\n"
        #expect(text.utf8.count > 1_000_000)
        let robot = try URDFLoader.parse(text, file: "big.urdf")
        #expect(robot.links.count == count + 1)
        #expect(robot.joints.count == count)
        #expect(robot.joints.last?.name == "j\(count)")
        #expect(robot.links.last?.inertial?.mass == 1.5)
    }

    @Test("load reports a missing file")
    func missingFile() {
        do {
            _ = try URDFLoader.load(contentsOf: "/nonexistent/robot.urdf")
            Issue.record("expected an error")
        } catch {
            #expect(error.kind == .unreadableFile)
            #expect(error.description.contains("/nonexistent/robot.urdf"))
        }
    }
}

@Suite("URDFLoader errors")
struct URDFLoaderErrorTests {
    /// Checks kind and line, and that the description names the file and (if given) the element.
    private func expectError(
        _ text: String, _ kind: RobotDescriptionError.Kind, line: Int, column: Int? = nil, element: String? = nil,
        mentioning words: [String] = [], sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) {
        guard let error = parseError(text) else {
            Issue.record("expected \(kind), but the text parsed", sourceLocation: sourceLocation)
            return
        }
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        #expect(error.location.file == "inline.urdf", sourceLocation: sourceLocation)
        #expect(error.location.line == line, "\(error)", sourceLocation: sourceLocation)
        if let column {
            #expect(error.location.column == column, "\(error)", sourceLocation: sourceLocation)
        }
        #expect(error.description.hasPrefix("inline.urdf:\(line):"), "\(error)", sourceLocation: sourceLocation)
        if let element {
            #expect(error.element == element, "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains(element), "\(error)", sourceLocation: sourceLocation)
        }
        for word in words {
            #expect(error.description.contains(word), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("malformed XML: unclosed element")
    func unclosedElement() {
        expectError(
            "<robot name=\"r\">\n  <link name=\"a\">\n</robot>", .malformedXML, line: 3, column: 1,
            element: "<link>", mentioning: ["</robot>"])
        expectError("<robot>\n  <link name=\"a\"/>\n", .malformedXML, line: 1, column: 1, element: "<robot>")
        expectError("<robot>\n  <link name=\"a\"", .malformedXML, line: 2, column: 3)
        expectError("<robot>\n<!-- never ends\n</robot>", .malformedXML, line: 2, column: 1, mentioning: ["comment"])
        expectError("<robot><d><![CDATA[ x </d></robot>", .malformedXML, line: 1, column: 11, mentioning: ["CDATA"])
    }

    @Test("malformed XML: mismatched closing tag")
    func mismatchedClosingTag() {
        expectError(
            "<robot>\n  <link name=\"a\">\n  </joint>\n</robot>", .malformedXML, line: 3, column: 3, element: "<link>",
            mentioning: ["</joint>", "line 2 column 3"])
    }

    @Test("malformed XML: bad attribute syntax")
    func badAttributes() {
        expectError("<robot>\n<link name=a/>\n</robot>", .malformedXML, line: 2, column: 12, element: "<link>")
        expectError("<robot>\n<link name \"a\"/>\n</robot>", .malformedXML, line: 2, element: "<link>")
        expectError("<robot>\n<link name=\"a\"type=\"b\"/>\n</robot>", .malformedXML, line: 2, element: "<link>")
        expectError("<robot>\n<link name=\"a\" name=\"b\"/>\n</robot>", .malformedXML, line: 2, column: 16)
        expectError("<robot>\n\n<link name=\"a/>\n</robot>\n", .malformedXML, line: 3, column: 12)
        expectError("<robot name=\"a&b\"/>", .malformedXML, line: 1, column: 15)
        expectError("<robot name=\"&nbsp;\"/>", .malformedXML, line: 1, mentioning: ["&nbsp;"])
        expectError("<robot name=\"&#xD800;\"/>", .malformedXML, line: 1)
    }

    @Test("malformed XML: junk after the root element, no root, text before it")
    func junkAfterRoot() {
        expectError("<robot/>\n<!-- fine -->\n<robot/>", .malformedXML, line: 3, column: 1, mentioning: ["after"])
        expectError("<robot/>\n  trailing", .malformedXML, line: 2, column: 3)
        expectError("<?xml version=\"1.0\"?>\n", .malformedXML, line: 2)
        expectError("hello <robot/>", .malformedXML, line: 1, column: 1)
    }

    @Test("positions count lines across CRLF and columns in characters, not bytes")
    func positions() throws {
        let root = try XML.parse("<robot>\r\n<a/>\r\n\t<b x='é'/><c/>\n</robot>", file: "p.xml")
        #expect(root.children.map { "\($0.name)@\($0.line):\($0.column)" } == ["a@2:1", "b@3:2", "c@3:12"])
        #expect(root.children[1].attribute("x")?.value == "é")
        #expect(root.children[1].attribute("x")?.column == 5)
    }

    @Test("XML text and CDATA are kept per element")
    func textContent() throws {
        let root = try XML.parse("<r>a &lt; <![CDATA[<b> & ]]>c<!-- x -->d<e>f</e></r>", file: "t.xml")
        #expect(root.text == "a < <b> & cd")
        #expect(root.children.first?.text == "f")
    }

    @Test("root element that is not <robot>")
    func wrongRoot() {
        expectError("<?xml version=\"1.0\"?>\n<sdf/>", .missingElement, line: 2, column: 1, element: "<sdf>")
    }

    @Test("missing attributes")
    func missingAttributes() {
        expectError("<robot>\n  <link/>\n</robot>", .missingAttribute, line: 2, column: 3, element: "link")
        expectError("<robot>\n  <link name=\"\"/>\n</robot>", .missingAttribute, line: 2, element: "link")
        expectError(
            "<robot>\n  <joint type=\"fixed\"><parent link=\"a\"/><child link=\"b\"/></joint>\n</robot>",
            .missingAttribute, line: 2, element: "joint", mentioning: ["name"])
        expectError(
            "<robot>\n  <joint name=\"j\"><parent link=\"a\"/><child link=\"b\"/></joint>\n</robot>",
            .missingAttribute, line: 2, element: "joint \"j\"", mentioning: ["type"])
        expectError(
            oneJoint("").replacingOccurrences(of: "<parent link=\"a\"/>", with: "<parent/>"), .missingAttribute,
            line: 5, element: "joint \"j\"", mentioning: ["<parent>", "link"])
        expectError(oneJoint("<mimic/>"), .missingAttribute, line: 7, element: "joint \"j\"", mentioning: ["<mimic>"])
        expectError(
            "<robot>\n<link name=\"l\"><inertial><mass/><inertia ixx=\"1\" ixy=\"0\" ixz=\"0\" iyy=\"1\" iyz=\"0\""
                + " izz=\"1\"/></inertial></link></robot>", .missingAttribute, line: 2, element: "link \"l\"",
            mentioning: ["<mass>", "value"])
        expectError(
            "<robot>\n<link name=\"l\"><inertial><mass value=\"1\"/><inertia ixx=\"1\"/></inertial></link></robot>",
            .missingAttribute, line: 2, element: "link \"l\"", mentioning: ["ixy"])
    }

    @Test("missing elements")
    func missingElements() {
        expectError(
            oneJoint("").replacingOccurrences(of: "<child link=\"b\"/>", with: ""), .missingElement, line: 4,
            column: 3, element: "joint \"j\"", mentioning: ["<child>"])
        expectError(
            oneJoint("").replacingOccurrences(of: "<parent link=\"a\"/>", with: ""), .missingElement, line: 4,
            element: "joint \"j\"", mentioning: ["<parent>"])
        expectError(
            "<robot>\n<link name=\"l\">\n<inertial><origin/></inertial></link></robot>", .missingElement, line: 3,
            element: "link \"l\"", mentioning: ["<mass>"])
    }

    @Test("non-numeric and wrong-count attributes name the element, the attribute and the text")
    func nonNumeric() {
        expectError(
            oneJoint("<origin xyz=\"0 a 0\"/>"), .nonNumericAttribute, line: 7, column: 13, element: "joint \"j\"",
            mentioning: ["<origin>", "xyz", "\"0 a 0\""])
        expectError(
            oneJoint("<origin rpy=\"0 0\"/>"), .nonNumericAttribute, line: 7, element: "joint \"j\"",
            mentioning: ["rpy", "\"0 0\""])
        expectError(
            oneJoint("<axis xyz=\"0 0 1 0\"/>"), .nonNumericAttribute, line: 7, element: "joint \"j\"",
            mentioning: ["<axis>", "xyz"])
        expectError(
            oneJoint("<limit lower=\"-1\"\n upper=\"1.2.3\"/>"), .nonNumericAttribute, line: 8, column: 2,
            element: "joint \"j\"", mentioning: ["<limit>", "upper", "\"1.2.3\""])
        expectError(
            oneJoint("<limit effort=\"inf\"/>"), .nonNumericAttribute, line: 7, mentioning: ["effort"])
        expectError(oneJoint("<limit effort=\"1e999\"/>"), .nonNumericAttribute, line: 7)
        expectError(oneJoint("<dynamics damping=\"\"/>"), .nonNumericAttribute, line: 7, mentioning: ["damping"])
        expectError(oneJoint("<mimic joint=\"m\" multiplier=\"1 2\"/>"), .nonNumericAttribute, line: 7)
        expectError(
            "<robot>\n<link name=\"l\"><inertial><mass value=\"heavy\"/></inertial></link></robot>",
            .nonNumericAttribute, line: 2, element: "link \"l\"", mentioning: ["<mass>", "value", "heavy"])
    }

    @Test("unknown joint type names the joint and the type")
    func unknownJointType() {
        expectError(
            oneJoint(type: "spherical", ""), .unknownJointType, line: 4, element: "joint \"j\"",
            mentioning: ["spherical"])
    }

    @Test("duplicate link and joint names")
    func duplicateNames() {
        expectError(
            "<robot>\n<link name=\"a\"/>\n<link name=\"a\"/>\n</robot>", .duplicateName, line: 3, column: 1,
            element: "link \"a\"", mentioning: ["inline.urdf:2:1"])
        expectError(
            """
            <robot>
              <joint name="j" type="fixed"><parent link="a"/><child link="b"/></joint>
              <joint name="j" type="fixed"><parent link="b"/><child link="c"/></joint>
            </robot>
            """, .duplicateName, line: 3, column: 3, element: "joint \"j\"", mentioning: ["inline.urdf:2:3"])
    }

    @Test("a zero axis on a moving joint is an invalid value")
    func zeroAxis() {
        expectError(
            oneJoint("<axis xyz=\"0 0 0\"/>"), .invalidValue, line: 7, element: "joint \"j\"", mentioning: ["axis"])
        expectError(
            oneJoint(type: "prismatic", "<axis xyz=\"0 0 0\"/>"), .invalidValue, line: 7, element: "joint \"j\"")
    }
}
