import Foundation
import SinewCore

/// A servo table that could not be loaded: names the file, the key (a dotted path such as
/// `registers[12].address`) and what was wrong.
public struct ServoTableError: Error, Sendable, Equatable, CustomStringConvertible {
    public var location: SourceLocation
    /// Dotted key path inside the file; empty for whole-file problems.
    public var key: String
    public var problem: String

    public init(file: String, key: String, problem: String) {
        self.location = SourceLocation(file: file)
        self.key = key
        self.problem = problem
    }

    public var description: String {
        key.isEmpty ? "\(location): \(problem)" : "\(location): \(key): \(problem)"
    }
}

/// The servo models Sinew knows, loaded from a directory of JSON tables (`Hardware/servos/`).
public struct ServoCatalog: Sendable {
    /// Models by lower-case name.
    public var models: [String: ServoModel]

    public init(models: [ServoModel]) {
        var byName: [String: ServoModel] = [:]
        for model in models { byName[model.name] = model }
        self.models = byName
    }

    /// Model names, sorted.
    public var modelNames: [String] { models.keys.sorted() }

    /// The model with this name (case-insensitive), if loaded.
    public func model(named name: String) -> ServoModel? {
        models[name.lowercased()]
    }

    /// Loads every `*.json` file in `directory`.
    public static func load(directory: String) throws(ServoTableError) -> ServoCatalog {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ServoTableError(file: directory, key: "", problem: "cannot list the directory (\(error))")
        }
        var models: [ServoModel] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            let path = (directory as NSString).appendingPathComponent(name)
            let model = try loadModel(file: path)
            if models.contains(where: { $0.name == model.name }) {
                throw ServoTableError(file: path, key: "model", problem: "model '\(model.name)' is defined twice")
            }
            models.append(model)
        }
        if models.isEmpty {
            throw ServoTableError(file: directory, key: "", problem: "no servo tables (*.json) found")
        }
        return ServoCatalog(models: models)
    }

    /// Loads one table file.
    public static func loadModel(file path: String) throws(ServoTableError) -> ServoModel {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ServoTableError(file: path, key: "", problem: "cannot read the file")
        }
        return try parseModel(data: data, file: path)
    }

    /// Parses one table from JSON bytes; `file` names the source in errors.
    public static func parseModel(data: Data, file: String) throws(ServoTableError) -> ServoModel {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ServoTableError(file: file, key: "", problem: "not valid JSON (\(error.localizedDescription))")
        }
        let reader = TableReader(file: file)
        guard let object = root as? [String: Any] else {
            throw ServoTableError(file: file, key: "", problem: "expected a JSON object at the top level")
        }
        let name = try reader.string(object, "model", "")
        let protocolName = try reader.string(object, "protocol", "")
        guard let wireProtocol = ServoProtocol(rawValue: protocolName) else {
            throw ServoTableError(
                file: file, key: "protocol",
                problem: "unknown protocol '\(protocolName)' (expected one of: "
                    + ServoProtocol.allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        let modelNumber = try reader.int(object, "modelNumber", "", range: 0...65535)
        let firmware = try reader.int(object, "firmwareVersion", "", range: 0...255)
        let counts = try reader.int(object, "countsPerTurn", "", range: 1...1 << 24)
        let defaultBaud = try reader.int(object, "defaultBaudRate", "", range: 1...100_000_000)
        guard let baudObject = object["baudRates"] as? [String: Any] else {
            throw ServoTableError(file: file, key: "baudRates", problem: "expected an object of index → bit/s")
        }
        var baudRates: [Int: Int] = [:]
        for (key, _) in baudObject {
            guard let index = Int(key), (0...255).contains(index) else {
                throw ServoTableError(
                    file: file, key: "baudRates.\(key)", problem: "key must be a register value 0…255")
            }
            baudRates[index] = try reader.int(baudObject, key, "baudRates", range: 1...100_000_000)
        }
        if !baudRates.values.contains(defaultBaud) {
            throw ServoTableError(file: file, key: "defaultBaudRate", problem: "\(defaultBaud) is not in baudRates")
        }
        guard let physicalObject = object["physical"] as? [String: Any] else {
            throw ServoTableError(file: file, key: "physical", problem: "expected an object")
        }
        let physical = try reader.physical(physicalObject)
        guard let sources = object["sources"] as? [String], !sources.isEmpty else {
            throw ServoTableError(file: file, key: "sources", problem: "expected a non-empty list of document names")
        }
        let derivations = object["derivations"] as? [String: String] ?? [:]
        guard let registerList = object["registers"] as? [Any], !registerList.isEmpty else {
            throw ServoTableError(file: file, key: "registers", problem: "expected a non-empty list")
        }
        var registers: [RegisterSpec] = []
        for (index, entry) in registerList.enumerated() {
            registers.append(try reader.register(entry, path: "registers[\(index)]"))
        }
        try reader.validate(registers)
        return ServoModel(
            name: name.lowercased(), displayName: (object["displayName"] as? String) ?? name,
            vendor: (object["vendor"] as? String) ?? "", wireProtocol: wireProtocol,
            modelNumber: UInt16(modelNumber), firmwareVersion: UInt8(firmware), countsPerTurn: counts,
            defaultBaudRate: defaultBaud, baudRates: baudRates, registers: registers, physical: physical,
            sources: sources, derivations: derivations)
    }
}

/// Typed field access with errors that name file and key.
private struct TableReader {
    var file: String

    func fail(_ key: String, _ parent: String, _ problem: String) -> ServoTableError {
        ServoTableError(file: file, key: parent.isEmpty ? key : "\(parent).\(key)", problem: problem)
    }

    func string(_ object: [String: Any], _ key: String, _ parent: String) throws(ServoTableError) -> String {
        guard let value = object[key] else { throw fail(key, parent, "missing") }
        guard let text = value as? String, !text.isEmpty else { throw fail(key, parent, "expected a non-empty string") }
        return text
    }

    func int(
        _ object: [String: Any], _ key: String, _ parent: String, range: ClosedRange<Int>
    ) throws(ServoTableError) -> Int {
        guard let value = object[key] else { throw fail(key, parent, "missing") }
        guard let number = value as? NSNumber, type(of: value) != Bool.self,
            number.doubleValue == number.doubleValue.rounded(), abs(number.doubleValue) < 1e15
        else { throw fail(key, parent, "expected an integer") }
        let integer = number.intValue
        guard range.contains(integer) else {
            throw fail(key, parent, "\(integer) is outside \(range.lowerBound)…\(range.upperBound)")
        }
        return integer
    }

    func optionalInt(_ object: [String: Any], _ key: String, _ parent: String) throws(ServoTableError) -> Int64? {
        guard object[key] != nil else { return nil }
        return Int64(try int(object, key, parent, range: -(1 << 40)...(1 << 40)))
    }

    func double(
        _ object: [String: Any], _ key: String, _ parent: String, positive: Bool = true
    ) throws(ServoTableError) -> Double {
        guard let value = object[key] else { throw fail(key, parent, "missing") }
        guard let number = value as? NSNumber, type(of: value) != Bool.self, number.doubleValue.isFinite else {
            throw fail(key, parent, "expected a number")
        }
        if positive && number.doubleValue <= 0 { throw fail(key, parent, "must be greater than zero") }
        return number.doubleValue
    }

    func physical(_ object: [String: Any]) throws(ServoTableError) -> ServoPhysicalParameters {
        let parent = "physical"
        let parameters = ServoPhysicalParameters(
            ratedVoltageV: try double(object, "ratedVoltageV", parent),
            minVoltageV: try double(object, "minVoltageV", parent),
            maxVoltageV: try double(object, "maxVoltageV", parent),
            stallTorqueNm: try double(object, "stallTorqueNm", parent),
            stallCurrentA: try double(object, "stallCurrentA", parent),
            noLoadSpeedRpm: try double(object, "noLoadSpeedRpm", parent),
            noLoadCurrentA: try double(object, "noLoadCurrentA", parent),
            standbyCurrentA: try double(object, "standbyCurrentA", parent),
            gearRatio: try double(object, "gearRatio", parent),
            windingResistanceOhm: try double(object, "windingResistanceOhm", parent),
            torqueConstantNmPerA: try double(object, "torqueConstantNmPerA", parent),
            rotorInertiaKgM2: try double(object, "rotorInertiaKgM2", parent),
            temperatureLimitC: try double(object, "temperatureLimitC", parent),
            minOperatingTemperatureC: try double(object, "minOperatingTemperatureC", parent, positive: false),
            thermalResistanceKPerW: try double(object, "thermalResistanceKPerW", parent),
            thermalTimeConstantS: try double(object, "thermalTimeConstantS", parent),
            overloadDetectTimeS: try double(object, "overloadDetectTimeS", parent))
        if parameters.minVoltageV > parameters.ratedVoltageV || parameters.ratedVoltageV > parameters.maxVoltageV {
            throw fail("ratedVoltageV", parent, "must lie between minVoltageV and maxVoltageV")
        }
        if parameters.noLoadCurrentA >= parameters.stallCurrentA {
            throw fail("noLoadCurrentA", parent, "must be below stallCurrentA")
        }
        return parameters
    }

    func register(_ entry: Any, path: String) throws(ServoTableError) -> RegisterSpec {
        guard let object = entry as? [String: Any] else {
            throw ServoTableError(file: file, key: path, problem: "expected an object")
        }
        let name = try string(object, "name", path)
        let address = try int(object, "address", path, range: 0...0xFFFF)
        let size = try int(object, "size", path, range: 1...4)
        if size == 3 { throw fail("size", path, "must be 1, 2 or 4") }
        let areaName = try string(object, "area", path)
        guard let area = RegisterArea(rawValue: areaName) else {
            throw fail("area", path, "expected EEPROM or RAM, found '\(areaName)'")
        }
        let accessName = try string(object, "access", path)
        guard let access = RegisterAccess(rawValue: accessName) else {
            throw fail("access", path, "expected R or RW, found '\(accessName)'")
        }
        var encoding = RegisterEncoding.unsigned
        if let signed = object["signed"] {
            guard let flag = signed as? Bool else { throw fail("signed", path, "expected true or false") }
            if flag { encoding = .twosComplement }
        }
        if object["signBit"] != nil {
            let bit = try int(object, "signBit", path, range: 1...(size * 8 - 1))
            if encoding != .unsigned { throw fail("signBit", path, "a register is either signed or sign-magnitude") }
            encoding = .signMagnitude(signBit: bit)
        }
        let scale = object["scale"] != nil ? try double(object, "scale", path) : 1
        var spec = RegisterSpec(
            name: name, address: address, size: size, area: area, access: access,
            defaultValue: try optionalInt(object, "default", path), unit: object["unit"] as? String, scale: scale,
            encoding: encoding, minimum: try optionalInt(object, "min", path),
            maximum: try optionalInt(object, "max", path), allowedValues: try allowedValues(object, path),
            note: object["note"] as? String)
        if let value = spec.defaultValue, spec.decode(raw: spec.encode(value)) != value {
            throw fail("default", path, "\(value) does not fit a \(size)-byte \(encodingName(spec.encoding)) register")
        }
        if let low = spec.minimum, let high = spec.maximum, low > high {
            throw fail("min", path, "min \(low) is greater than max \(high)")
        }
        for value in spec.allowedValues ?? []
        where !spec.accepts(value) || spec.decode(raw: spec.encode(value)) != value {
            throw fail("values", path, "\(value) lies outside the register's min…max or does not fit its size")
        }
        spec.note = spec.note?.isEmpty == true ? nil : spec.note
        return spec
    }

    /// `values`: the only values a register takes (e.g. an Operating Mode's modes), a non-empty list of integers.
    func allowedValues(_ object: [String: Any], _ path: String) throws(ServoTableError) -> [Int64]? {
        guard let entry = object["values"] else { return nil }
        guard let list = entry as? [Any], !list.isEmpty else {
            throw fail("values", path, "expected a non-empty list of integers")
        }
        var values: [Int64] = []
        for index in list.indices {
            let item = ["value": list[index]]
            values.append(Int64(try int(item, "value", "\(path).values[\(index)]", range: -(1 << 40)...(1 << 40))))
        }
        return values
    }

    func encodingName(_ encoding: RegisterEncoding) -> String {
        switch encoding {
        case .unsigned: return "unsigned"
        case .twosComplement: return "signed"
        case .signMagnitude(let bit): return "sign-magnitude (bit \(bit))"
        }
    }

    func validate(_ registers: [RegisterSpec]) throws(ServoTableError) {
        var names = Set<String>()
        for (index, register) in registers.enumerated() where !names.insert(register.name).inserted {
            throw ServoTableError(
                file: file, key: "registers[\(index)].name", problem: "'\(register.name)' appears twice")
        }
        let sorted = registers.enumerated().sorted { $0.element.address < $1.element.address }
        for pair in zip(sorted, sorted.dropFirst())
        where pair.0.element.address + pair.0.element.size
            > pair.1.element.address
        {
            throw ServoTableError(
                file: file, key: "registers[\(pair.1.offset)].address",
                problem: "'\(pair.1.element.name)' at \(pair.1.element.address) overlaps '\(pair.0.element.name)'")
        }
        for required in [
            "Model Number", "ID", "Baud Rate", "Return Delay Time", "Torque Enable", "Goal Position",
            "Present Position", "Status Return Level", "Operating Mode",
        ]
        where !names.contains(required) {
            throw ServoTableError(file: file, key: "registers", problem: "required register '\(required)' is missing")
        }
    }
}
