import Foundation

/// The checkout's root folder (this file is `Tests/SinewTestSupport/Fixtures.swift`).
public let repositoryRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

/// `Tests/Fixtures`: the data the tests read (reference values, robot descriptions, sensor trials), each
/// folder with its source and licence. Tests never read anything outside the checkout.
public let fixturesDirectory: String = repositoryRoot + "/Tests/Fixtures"

/// A fixture the tests need is not in the checkout.
public struct MissingFixture: Error, CustomStringConvertible {
    public var path: String
    public var description: String {
        "missing test fixture \(path) (it belongs in the repository under Tests/Fixtures; see its README.md)"
    }
}

/// The path of `relativePath` under `Tests/Fixtures`, or an error naming it when the file is missing, so a
/// missing fixture fails the test that needs it with a message instead of crashing the test process.
public func fixture(_ relativePath: String) throws -> String {
    let path = fixturesDirectory + "/" + relativePath
    guard FileManager.default.fileExists(atPath: path) else { throw MissingFixture(path: path) }
    return path
}
