import Foundation
import SinewCore
import SinewKinematics

/// The URDF's visual geometry and kinematic tree as the dashboard's 3D view draws them: links with their visuals
/// (box, cylinder, sphere, or a mesh file that exists, by index), joints with origin, axis, type and mimic. Read
/// once at start from the URDF the loop already loaded; mesh paths are resolved here, so the browser can only
/// fetch the files the URDF names (`/mesh/INDEX`), never a path of its choosing.
public struct RobotVisualDescription: Sendable {
    /// The description as JSON: `{"root", "links": [{name, visuals: [{xyz, rpy, color, geometry}]}], "joints":
    /// [{name, type, parent, child, xyz, rpy, axis, mimic}], "missing_meshes": [...]}`.
    public let json: [UInt8]
    /// Mesh files by index.
    public let meshFiles: [String]
    /// Meshes the URDF names whose files are not found (the view draws the link's skeleton instead).
    public let missingMeshes: [String]

    /// The largest mesh file served, bytes.
    public static let maximumMeshBytes = 64 << 20

    /// Reads `urdfPath`. Errors are the XML reader's (the loop has read the same file already).
    public init(urdfPath: String) throws {
        let text = try String(contentsOfFile: urdfPath, encoding: .utf8)
        try self.init(urdf: text, file: urdfPath)
    }

    public init(urdf text: String, file: String) throws {
        let root = try XML.parse(text, file: file)
        // The URDF's folder, by hand: Foundation's path calls trap on some paths ("" and "/" among them).
        let directory: String
        if let slash = file.lastIndex(of: "/") {
            directory = slash == file.startIndex ? "/" : String(file[..<slash])
        } else {
            directory = ""
        }
        var materials: [String: [Double]] = [:]
        func color(of material: XML.Element?) -> [Double]? {
            guard let material else { return nil }
            if let rgba = material.child("color")?.attribute("rgba")?.value {
                let values = Self.numbers(rgba, count: 4)
                if let values { return values }
            }
            if let name = material.attribute("name")?.value { return materials[name] }
            return nil
        }
        for element in root.children where element.name == "material" {
            if let name = element.attribute("name")?.value, let c = color(of: element) { materials[name] = c }
        }
        var meshFiles: [String] = []
        var missing: [String] = []
        var json = TelemetryJSON(capacity: 16384)
        json.beginObject()
        json.key("name")
        json.string(root.attribute("name")?.value ?? "")
        json.key("links")
        json.beginArray()
        var linkNames: [String] = []
        for link in root.children where link.name == "link" {
            let name = link.attribute("name")?.value ?? ""
            linkNames.append(name)
            json.beginObject()
            json.key("name")
            json.string(name)
            json.key("visuals")
            json.beginArray()
            for visual in link.children where visual.name == "visual" {
                guard let geometry = visual.child("geometry"), let shape = geometry.children.first else { continue }
                json.beginObject()
                Self.writeOrigin(visual.child("origin"), into: &json)
                json.key("color")
                if let c = color(of: visual.child("material")) { json.numbers(c) } else { json.null() }
                json.key("geometry")
                json.beginObject()
                switch shape.name {
                case "box":
                    json.key("type")
                    json.string("box")
                    json.key("size")
                    json.numbers(Self.numbers(shape.attribute("size")?.value, count: 3) ?? [0, 0, 0])
                case "cylinder":
                    json.key("type")
                    json.string("cylinder")
                    json.key("radius")
                    json.number(Double(shape.attribute("radius")?.value ?? "") ?? 0)
                    json.key("length")
                    json.number(Double(shape.attribute("length")?.value ?? "") ?? 0)
                case "sphere":
                    json.key("type")
                    json.string("sphere")
                    json.key("radius")
                    json.number(Double(shape.attribute("radius")?.value ?? "") ?? 0)
                case "mesh":
                    let filename = shape.attribute("filename")?.value ?? ""
                    let format = (filename as NSString).pathExtension.lowercased()
                    if let path = Self.resolveMesh(filename, urdfDirectory: directory),
                        ["stl", "obj", "dae"].contains(format)
                    {
                        json.key("type")
                        json.string("mesh")
                        json.key("format")
                        json.string(format)
                        json.key("url")
                        if let index = meshFiles.firstIndex(of: path) {
                            json.string("mesh/\(index)")
                        } else {
                            json.string("mesh/\(meshFiles.count)")
                            meshFiles.append(path)
                        }
                        json.key("scale")
                        json.numbers(Self.numbers(shape.attribute("scale")?.value, count: 3) ?? [1, 1, 1])
                    } else {
                        json.key("type")
                        json.string("missing")
                        json.key("file")
                        json.string(filename)
                        if !missing.contains(filename) { missing.append(filename) }
                    }
                default:
                    json.key("type")
                    json.string("unknown")
                }
                json.endObject()
                json.endObject()
            }
            json.endArray()
            json.endObject()
        }
        json.endArray()
        var children: Set<String> = []
        json.key("joints")
        json.beginArray()
        for joint in root.children where joint.name == "joint" {
            guard let parent = joint.child("parent")?.attribute("link")?.value,
                let child = joint.child("child")?.attribute("link")?.value
            else { continue }
            children.insert(child)
            json.beginObject()
            json.key("name")
            json.string(joint.attribute("name")?.value ?? "")
            json.key("type")
            json.string(joint.attribute("type")?.value ?? "fixed")
            json.key("parent")
            json.string(parent)
            json.key("child")
            json.string(child)
            Self.writeOrigin(joint.child("origin"), into: &json)
            json.key("axis")
            json.numbers(Self.numbers(joint.child("axis")?.attribute("xyz")?.value, count: 3) ?? [1, 0, 0])
            json.key("mimic")
            if let mimic = joint.child("mimic"), let master = mimic.attribute("joint")?.value {
                json.beginObject()
                json.key("joint")
                json.string(master)
                json.key("multiplier")
                json.number(Double(mimic.attribute("multiplier")?.value ?? "") ?? 1)
                json.key("offset")
                json.number(Double(mimic.attribute("offset")?.value ?? "") ?? 0)
                json.endObject()
            } else {
                json.null()
            }
            json.endObject()
        }
        json.endArray()
        json.key("root")
        json.string(linkNames.first { !children.contains($0) } ?? linkNames.first ?? "")
        json.key("missing_meshes")
        json.beginArray()
        for m in missing { json.string(m) }
        json.endArray()
        json.endObject()
        self.json = json.bytes
        self.meshFiles = meshFiles
        missingMeshes = missing
    }

    static func writeOrigin(_ origin: XML.Element?, into json: inout TelemetryJSON) {
        json.key("xyz")
        json.numbers(numbers(origin?.attribute("xyz")?.value, count: 3) ?? [0, 0, 0])
        json.key("rpy")
        json.numbers(numbers(origin?.attribute("rpy")?.value, count: 3) ?? [0, 0, 0])
    }

    /// `count` finite numbers separated by white space, or nil.
    static func numbers(_ text: String?, count: Int) -> [Double]? {
        guard let text else { return nil }
        let values = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            .compactMap { Double($0) }
        guard values.count == count, values.allSatisfy(\.isFinite) else { return nil }
        return values
    }

    /// Where a mesh named `package://PKG/PATH`, `file://PATH` or a relative path is on this machine: for a package
    /// URL, PATH under the URDF's folder, or PKG/PATH or PATH under it and each folder above it; nil when no
    /// readable regular file (at most ``maximumMeshBytes``) is there.
    static func resolveMesh(_ filename: String, urdfDirectory: String) -> String? {
        var base = urdfDirectory.isEmpty ? "." : urdfDirectory
        if !base.hasPrefix("/") { base = FileManager.default.currentDirectoryPath + "/" + base }
        var candidates: [String] = []
        if filename.hasPrefix("package://") {
            let rest = String(filename.dropFirst("package://".count))
            let parts = rest.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return nil }
            // Folders from the URDF's up to the root (at most six), each without trailing slashes.
            var directory = Substring(base)
            for _ in 0..<6 {
                while directory.count > 1, directory.hasSuffix("/") { directory = directory.dropLast() }
                candidates.append(directory + "/" + rest)
                candidates.append(directory + "/" + parts[1])
                guard let slash = directory.lastIndex(of: "/"), directory != "/" else { break }
                directory = slash == directory.startIndex ? "/" : directory[..<slash]
            }
        } else if filename.hasPrefix("file://") {
            candidates.append(String(filename.dropFirst("file://".count)))
        } else if filename.hasPrefix("/") {
            candidates.append(filename)
        } else if !filename.isEmpty {
            candidates.append(base + "/" + filename)
        }
        for path in candidates {
            var info = stat()
            if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= maximumMeshBytes,
                access(path, R_OK) == 0
            {
                return path.isEmpty ? nil : (path as NSString).standardizingPath
            }
        }
        return nil
    }
}
