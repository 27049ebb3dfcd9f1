import SinewCore
import SinewKinematics
import Testing

/// Bad trees are refused with an error that names the file, the element and the problem.
@Suite struct ModelErrorTests {
    let bad = SourceLocation(file: "bad.urdf", line: 7)

    func joint(
        _ name: String, _ type: JointType, _ parent: String, _ child: String, mimic: MimicRelation? = nil
    ) -> JointDescription {
        SinewKinematicsTests.joint(name, type, parent, child, mimic: mimic, location: bad)
    }

    func links(_ names: String...) -> [LinkDescription] {
        names.map { LinkDescription(name: $0, location: SourceLocation(file: "bad.urdf", line: 3)) }
    }

    func expectError(
        _ kind: RobotDescriptionError.Kind, mentioning words: [String], fixedBase: Bool = false,
        _ description: RobotDescription
    ) {
        do {
            _ = try RobotModel(description, fixedBase: fixedBase)
            Issue.record("expected \(kind)")
        } catch {
            #expect(error.kind == kind)
            #expect(error.description.contains("bad.urdf"))
            for word in words { #expect(error.description.contains(word), "\(error.description) lacks \(word)") }
        }
    }

    @Test func missingParentLink() {
        expectError(
            .missingLink, mentioning: ["joint \"j1\"", "parent link \"ghost\""],
            RobotDescription(
                name: "r", links: links("a", "b"), joints: [joint("j1", .revolute, "ghost", "b")], file: "bad.urdf"))
    }

    @Test func cycle() {
        expectError(
            .cycle, mentioning: ["only one parent", "not a tree"],
            RobotDescription(
                name: "r", links: links("a", "b", "c"),
                joints: [joint("j1", .revolute, "a", "b"), joint("j2", .revolute, "c", "b")], file: "bad.urdf"))
        expectError(
            .cycle, mentioning: ["cycle"],
            RobotDescription(
                name: "r", links: links("a", "b"),
                joints: [joint("j1", .revolute, "a", "b"), joint("j2", .revolute, "b", "a")], file: "bad.urdf"))
    }

    @Test func twoRoots() {
        expectError(
            .multipleRoots, mentioning: ["\"a\"", "\"c\"", "root"],
            RobotDescription(
                name: "r", links: links("a", "b", "c"), joints: [joint("j1", .revolute, "a", "b")], file: "bad.urdf"))
    }

    @Test func unknownMimicMaster() {
        expectError(
            .unknownMimicMaster, mentioning: ["joint \"j2\"", "\"nobody\""],
            RobotDescription(
                name: "r", links: links("a", "b", "c"),
                joints: [
                    joint("j1", .revolute, "a", "b"),
                    joint("j2", .revolute, "b", "c", mimic: MimicRelation(master: "nobody")),
                ], file: "bad.urdf"))
    }

    @Test func floatingBaseNeedsFixedBase() throws {
        let description = RobotDescription(
            name: "r", links: links("world", "base", "arm"),
            joints: [joint("free", .floating, "world", "base"), joint("j1", .revolute, "base", "arm")], file: "bad.urdf"
        )
        expectError(.unsupportedJointType, mentioning: ["joint \"free\"", "floating"], description)
        let model = try RobotModel(description, fixedBase: true)
        #expect(model.dofCount == 1)
    }

    @Test func mimicChainsResolveToTheIndependentJoint() throws {
        let model = try RobotModel(
            RobotDescription(
                name: "hand", links: links("palm", "f1", "f2", "f3"),
                joints: [
                    joint("a", .revolute, "palm", "f1"),
                    joint("b", .revolute, "f1", "f2", mimic: MimicRelation(master: "a", multiplier: 2, offset: 0.1)),
                    joint("c", .revolute, "f2", "f3", mimic: MimicRelation(master: "b", multiplier: -1, offset: 0.5)),
                ], file: "hand.urdf"))
        let c = try #require(model.joints[2].mimic)
        #expect(c.master == 0 && c.multiplier == -2 && abs(c.offset - 0.4) < 1e-15)
        #expect(model.mimicFolding.controlCount == 1)
        var q = [0.3, 0, 0]
        model.mimicFolding.applyMimic(to: &q)
        #expect(abs(q[1] - 0.7) < 1e-15 && abs(q[2] + 0.2) < 1e-15)
    }
}
