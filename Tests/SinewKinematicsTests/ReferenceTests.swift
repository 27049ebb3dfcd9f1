import Foundation
import SinewKinematics
import Testing

/// Every robot in Tests/Fixtures/kinematics against the values Pinocchio computed for it.
@Suite struct PinocchioReferenceTests {
    static let robots = ["double_pendulum", "kinova", "panda", "so101", "ur5_robot"]

    struct Reference {
        var jacobianFrame: String
        var samples: [[String: Any]]
    }

    static func reference(_ robot: String) throws -> Reference {
        let data = try Data(contentsOf: URL(fileURLWithPath: kinematicsFixture("\(robot).pinocchio.json")))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return Reference(
            jacobianFrame: try #require(json["jacobian_frame"] as? String),
            samples: try #require(json["samples"] as? [[String: Any]]))
    }

    static func close(_ a: Double, _ b: Double, relative: Double, absolute: Double) -> Bool {
        abs(a - b) <= max(absolute, relative * max(abs(a), abs(b)))
    }

    @Test(arguments: robots)
    func matchesPinocchio(robot: String) throws {
        let model = try RobotModel(urdf: kinematicsFixture("\(robot).urdf"))
        let reference = try Self.reference(robot)
        let workspace = KinematicsWorkspace(model: model)
        let n = model.dofCount
        let frame = try #require(model.linkIndex(named: reference.jacobianFrame))
        #expect(model.links[model.deepestLink].name == reference.jacobianFrame)
        var worstPose = 0.0
        var worstJacobian = 0.0
        for sample in reference.samples {
            let joints = try #require(sample["joints"] as? [String: Double])
            var q = [Double](repeating: 0, count: n)
            for (name, value) in joints { q[try #require(model.jointIndex(named: name), "\(name)")] = value }

            workspace.forwardKinematics(q)
            let poses = try #require(sample["link_poses"] as? [String: [[Double]]])
            #expect(poses.count == model.links.count)
            for (name, expected) in poses {
                let link = try #require(model.linkIndex(named: name), "link \(name)")
                let got = matrix(workspace.linkPose(link))
                for (g, e) in zip(got, expected.flatMap { $0 }) { worstPose = max(worstPose, abs(g - e)) }
            }

            workspace.frameJacobian(q, link: frame)
            let columns = try #require(sample["jacobian"] as? [String: [Double]])
            for (name, expected) in columns {
                let j = try #require(model.jointIndex(named: name))
                for r in 0..<6 {
                    worstJacobian = max(worstJacobian, abs(workspace.jacobian(row: r, column: j) - expected[r]))
                }
            }

            workspace.gravityEfforts(q)
            let gravity = try #require(sample["gravity_torque"] as? [String: Double])
            for (name, expected) in gravity {
                let j = try #require(model.jointIndex(named: name))
                #expect(Self.close(workspace.efforts[j], expected, relative: 1e-7, absolute: 1e-9), "\(robot) \(name)")
            }

            workspace.computeMassMatrix(q)
            let mass = try #require(sample["mass_matrix"] as? [String: Any])
            let order = try #require(mass["order"] as? [String]).map { model.jointIndex(named: $0)! }
            let rows = try #require(mass["rows"] as? [[Double]])
            for (a, row) in zip(order, rows) {
                for (b, expected) in zip(order, row) {
                    #expect(
                        Self.close(workspace.massMatrix(row: a, column: b), expected, relative: 1e-7, absolute: 1e-9),
                        "\(robot) M[\(a),\(b)]")
                }
            }
        }
        #expect(worstPose <= 1e-9, "\(robot): worst pose error \(worstPose)")
        #expect(worstJacobian <= 1e-9, "\(robot): worst Jacobian error \(worstJacobian)")
    }
}
