import SinewDrivers

/// A servo ID list as users write it: `1-6`, `1,3,5`, `1-3,7` (IDs 0…`highestID`, each once: 252 on
/// Dynamixel, 253 on Feetech).
public enum ServoIDList {
    public static func parse(_ text: String, highestID: UInt8 = 252) throws(VirtualBusSetupError) -> [UInt8] {
        var ids: [UInt8] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2, let low = UInt8(bounds[0]), low <= highestID,
                let high = bounds.count == 2 ? UInt8(bounds[1]) : low, high <= highestID, low <= high
            else { throw .invalidIDList(String(item)) }
            for id in low...high {
                guard !ids.contains(id) else { throw .invalidIDList("\(id) appears twice") }
                ids.append(id)
            }
        }
        guard !ids.isEmpty else { throw .invalidIDList(text) }
        return ids
    }
}

/// A mixed bus as users write it: `1-2:xl430-w250,3-6:xl330-m288` — comma-separated groups of `ID` or
/// `FIRST-LAST`, a colon and a servo model. Groups may come in any order; every ID once.
public enum ServoGroupList {
    /// The groups in the order given: each group's IDs (ascending) and model name (lower-cased, not yet
    /// checked against a catalog).
    public static func parse(_ text: String) throws(VirtualBusSetupError) -> [(ids: [UInt8], model: String)] {
        var groups: [(ids: [UInt8], model: String)] = []
        var seen = Set<UInt8>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[1].isEmpty else { throw .invalidServoList(String(item)) }
            let ids: [UInt8]
            do {
                ids = try ServoIDList.parse(String(parts[0]), highestID: 253)
            } catch {
                throw .invalidServoList(String(item))
            }
            for id in ids where !seen.insert(id).inserted { throw .invalidIDList("\(id) appears twice") }
            groups.append((ids, parts[1].lowercased()))
        }
        return groups
    }
}

/// What can be wrong with `sinew virtual-bus` style arguments.
public enum VirtualBusSetupError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownModel(String, known: [String])
    case protocolMismatch(model: String, modelProtocol: String, requested: String)
    case unknownProtocol(String)
    case invalidIDList(String)
    case invalidServoList(String)
    case invalidFault(FaultSpecError)
    case bus(VirtualBusError)

    public var description: String {
        switch self {
        case .unknownModel(let name, let known):
            return "unknown servo model '\(name)' (known: \(known.joined(separator: ", ")))"
        case .protocolMismatch(let model, let modelProtocol, let requested):
            return "\(model) speaks \(modelProtocol), not \(requested)"
        case .unknownProtocol(let name): return "unknown protocol '\(name)' (expected dynamixel or feetech)"
        case .invalidIDList(let item):
            return "invalid servo ID list: \(item) (expected e.g. 1-6 or 1,3,5; IDs 0-252, Feetech 0-253)"
        case .invalidServoList(let item):
            return "invalid servo group: \(item) (expected IDS:MODEL groups such as 1-2:xl430-w250,3-6:xl330-m288)"
        case .invalidFault(let error): return error.description
        case .bus(let error): return error.description
        }
    }
}

extension VirtualBus {
    /// Builds a virtual bus from command-line style arguments, checking each against the catalog.
    /// - Parameters:
    ///   - protocolName: `dynamixel` or `feetech` (must match the model).
    ///   - modelName: lower-case model name, e.g. `xl330-m288`, `xm430-w350`, `sts3215`.
    ///   - ids: e.g. `1-6`.
    ///   - faults: the `--fault` text, e.g. `corrupt=0.01,silent=3`; nil or empty for none.
    public static func make(
        catalog: ServoCatalog, protocolName: String, modelName: String, ids: String, baudRate: Int = 1_000_000,
        wireTiming: Bool = true, faults: String? = nil, startNs: UInt64 = 0
    ) throws(VirtualBusSetupError) -> VirtualBus {
        guard let model = catalog.model(named: modelName) else {
            throw .unknownModel(modelName, known: catalog.modelNames)
        }
        let expected: ServoProtocol
        switch protocolName.lowercased() {
        case "dynamixel": expected = .dynamixel2
        case "feetech": expected = model.wireProtocol == .feetechSCS ? .feetechSCS : .feetechSTS
        default: throw .unknownProtocol(protocolName)
        }
        guard model.wireProtocol == expected else {
            throw .protocolMismatch(
                model: model.name, modelProtocol: model.wireProtocol.rawValue, requested: protocolName)
        }
        var options = VirtualBusOptions()
        options.baudRate = baudRate
        options.wireTiming = wireTiming
        if let faults, !faults.isEmpty {
            do {
                options.faults = try FaultInjection.parse(faults)
            } catch {
                throw .invalidFault(error)
            }
        }
        let list = try ServoIDList.parse(ids, highestID: expected == .dynamixel2 ? 252 : 253)
        do {
            return try VirtualBus(model: model, ids: list, options: options, startNs: startNs)
        } catch {
            throw .bus(error)
        }
    }

    /// Builds a bus of servos of several models from `sinew virtual-bus --servos` text
    /// (`1-2:xl430-w250,3-6:xl330-m288`, see ``ServoGroupList``); the models must speak one protocol.
    /// Servos are in ascending ID order.
    public static func make(
        catalog: ServoCatalog, servos: String, baudRate: Int = 1_000_000, wireTiming: Bool = true,
        faults: String? = nil, startNs: UInt64 = 0
    ) throws(VirtualBusSetupError) -> VirtualBus {
        var list: [(model: ServoModel, id: UInt8)] = []
        for group in try ServoGroupList.parse(servos) {
            guard let model = catalog.model(named: group.model) else {
                throw .unknownModel(group.model, known: catalog.modelNames)
            }
            for id in group.ids {
                if model.wireProtocol == .dynamixel2 && id > 252 { throw .bus(.invalidID(id)) }
                list.append((model, id))
            }
        }
        list.sort { $0.id < $1.id }
        var options = VirtualBusOptions()
        options.baudRate = baudRate
        options.wireTiming = wireTiming
        if let faults, !faults.isEmpty {
            do {
                options.faults = try FaultInjection.parse(faults)
            } catch {
                throw .invalidFault(error)
            }
        }
        do {
            return try VirtualBus(servos: list, options: options, startNs: startNs)
        } catch {
            throw .bus(error)
        }
    }
}
