/// Where in a user's file something was found: used by every error that reports bad input, so a message
/// can say "robot.urdf:42:7" rather than "somewhere in the model".
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    /// Path of the file as the user gave it.
    public var file: String
    /// 1-based line and column; 0 when unknown.
    public var line: Int
    public var column: Int

    public init(file: String, line: Int = 0, column: Int = 0) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String {
        if line == 0 { return file }
        if column == 0 { return "\(file):\(line)" }
        return "\(file):\(line):\(column)"
    }
}
