import Foundation
import SinewDrivers
import Testing

/// `<repo root>/Hardware/servos`, found from this file's path.
let servoTableDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("Hardware/servos").path
}()

@Suite struct ServoCatalogTests {
    let catalog: ServoCatalog

    init() throws {
        catalog = try ServoCatalog.load(directory: servoTableDirectory)
    }

    @Test func loadsTheShippedModels() {
        #expect(
            catalog.modelNames == ["sts3215", "sts3250", "xl330-m077", "xl330-m288", "xl430-w250", "xm430-w350"])
        #expect(catalog.model(named: "XL330-M288")?.modelNumber == 1200)
        #expect(catalog.model(named: "xl330-m077")?.modelNumber == 1190)
        #expect(catalog.model(named: "xm430-w350")?.modelNumber == 1020)
        #expect(catalog.model(named: "sts3215")?.modelNumber == 777)
        for model in catalog.models.values {
            #expect(model.countsPerTurn == 4096)
            #expect(!model.sources.isEmpty)
            #expect(model.register(named: "Return Delay Time")?.defaultValue == 250)
            #expect(model.physical.gearEfficiency > 0.3 && model.physical.gearEfficiency <= 1)
        }
    }

    /// Addresses and sizes from docs/protocols.md.
    @Test(arguments: ["xl330-m077", "xl330-m288", "xm430-w350"])
    func dynamixelRegistersAtProtocolAddresses(model name: String) throws {
        let model = try #require(catalog.model(named: name))
        #expect(model.wireProtocol == .dynamixel2)
        let expected: [(String, Int, Int, RegisterArea)] = [
            ("Model Number", 0, 2, .eeprom), ("ID", 7, 1, .eeprom), ("Baud Rate", 8, 1, .eeprom),
            ("Return Delay Time", 9, 1, .eeprom), ("Drive Mode", 10, 1, .eeprom), ("Operating Mode", 11, 1, .eeprom),
            ("Homing Offset", 20, 4, .eeprom), ("Temperature Limit", 31, 1, .eeprom),
            ("Max Voltage Limit", 32, 2, .eeprom), ("Min Voltage Limit", 34, 2, .eeprom),
            ("PWM Limit", 36, 2, .eeprom), ("Current Limit", 38, 2, .eeprom), ("Velocity Limit", 44, 4, .eeprom),
            ("Max Position Limit", 48, 4, .eeprom), ("Min Position Limit", 52, 4, .eeprom),
            ("Shutdown", 63, 1, .eeprom), ("Torque Enable", 64, 1, .ram), ("Status Return Level", 68, 1, .ram),
            ("Hardware Error Status", 70, 1, .ram), ("Bus Watchdog", 98, 1, .ram), ("Goal PWM", 100, 2, .ram),
            ("Goal Current", 102, 2, .ram), ("Goal Velocity", 104, 4, .ram), ("Profile Acceleration", 108, 4, .ram),
            ("Profile Velocity", 112, 4, .ram), ("Goal Position", 116, 4, .ram), ("Moving", 122, 1, .ram),
            ("Present Current", 126, 2, .ram), ("Present Velocity", 128, 4, .ram),
            ("Present Position", 132, 4, .ram), ("Present Input Voltage", 144, 2, .ram),
            ("Present Temperature", 146, 1, .ram),
        ]
        for (registerName, address, size, area) in expected {
            let register = try #require(model.register(named: registerName), "\(name): \(registerName)")
            #expect(register.address == address, "\(name): \(registerName)")
            #expect(register.size == size, "\(name): \(registerName)")
            #expect(register.area == area, "\(name): \(registerName)")
        }
        #expect(model.register(named: "Operating Mode")?.defaultValue == 3)
        #expect(model.register(named: "Baud Rate")?.defaultValue == 1)
        #expect(model.baudRates[1] == 57600 && model.baudRates[3] == 1_000_000)
        #expect(model.register(named: "Present Position")?.encoding == .twosComplement)
        #expect(model.register(named: "Model Number")?.access == .readOnly)
        let image = model.factoryImage()
        try #require(image.count > 68, "\(name): control table of \(image.count) bytes")
        #expect(Int(image[0]) | Int(image[1]) << 8 == Int(model.modelNumber))
        #expect(image[9] == 250 && image[7] == 1 && image[68] == 2)
    }

    @Test func currentUnitsDifferBetweenXL330AndXM430() throws {
        #expect(catalog.model(named: "xm430-w350")?.register(named: "Present Current")?.scale == 2.69)
        #expect(catalog.model(named: "xl330-m288")?.register(named: "Present Current")?.scale == 1)
        #expect(catalog.model(named: "xl330-m288")?.baudRates[7] == nil)
        #expect(catalog.model(named: "xm430-w350")?.baudRates[7] == 4_500_000)
    }

    /// The XL330-M077 (e-manual): the XL330-M288's motor behind a 77.5:1 gearbox, its own defaults, one bank of
    /// 20 indirect addresses.
    @Test func xl330M077DiffersFromTheM288WhereTheEManualSays() throws {
        let m077 = try #require(catalog.model(named: "xl330-m077"))
        let m288 = try #require(catalog.model(named: "xl330-m288"))
        #expect(m077.physical.gearRatio == 77.5 && m077.physical.noLoadSpeedRpm == 383)
        #expect(m077.physical.stallTorqueNm == 0.215 && m077.physical.stallCurrentA == m288.physical.stallCurrentA)
        // One motor: the back-EMF constant from each servo's no-load speed agrees.
        #expect(abs(m077.physical.torqueConstantNmPerA - m288.physical.torqueConstantNmPerA) < 1e-9)
        #expect(m077.register(named: "Velocity Limit")?.defaultValue == 1620)
        #expect(m077.register(named: "Velocity I Gain")?.defaultValue == 400)
        #expect(m077.register(named: "Velocity P Gain")?.defaultValue == 40)
        #expect(m077.register(named: "Position I Gain")?.defaultValue == 400)
        #expect(m077.register(named: "Indirect Address 20")?.address == 206)
        #expect(m077.register(named: "Indirect Data 1")?.address == 208)
        #expect(m077.register(named: "Indirect Data 20")?.address == 227)
        #expect(m077.register(named: "Indirect Data 21") == nil)
        #expect(m077.baudRates[7] == nil && m077.defaultBaudRate == 57600)
        #expect(m077.derivations["stallTorqueNm"] != nil && m077.sources.contains { $0.contains("XL330-M077") })
        // What stays the same: every register the M288 has below the indirect area, at the same address.
        for register in m288.registers where register.address < 168 {
            #expect(m077.register(named: register.name)?.address == register.address, "\(register.name)")
            #expect(m077.register(named: register.name)?.size == register.size, "\(register.name)")
        }
    }

    @Test func feetechRegistersAtProtocolAddresses() throws {
        let model = try #require(catalog.model(named: "sts3215"))
        #expect(model.wireProtocol == .feetechSTS)
        let expected: [(String, Int, Int)] = [
            ("Model Number", 3, 2), ("ID", 5, 1), ("Baud Rate", 6, 1), ("Return Delay Time", 7, 1),
            ("Status Return Level", 8, 1), ("Min Position Limit", 9, 2), ("Max Position Limit", 11, 2),
            ("Temperature Limit", 13, 1), ("Max Voltage Limit", 14, 1), ("Min Voltage Limit", 15, 1),
            ("Max Torque Limit", 16, 2), ("P Coefficient", 21, 1), ("D Coefficient", 22, 1), ("I Coefficient", 23, 1),
            ("Protection Current", 28, 2), ("Homing Offset", 31, 2), ("Operating Mode", 33, 1),
            ("Torque Enable", 40, 1), ("Acceleration", 41, 1), ("Goal Position", 42, 2), ("Goal Time", 44, 2),
            ("Goal Velocity", 46, 2), ("Torque Limit", 48, 2), ("Lock", 55, 1), ("Present Position", 56, 2),
            ("Present Velocity", 58, 2), ("Present Load", 60, 2), ("Present Voltage", 62, 1),
            ("Present Temperature", 63, 1), ("Status", 65, 1), ("Moving", 66, 1), ("Present Current", 69, 2),
        ]
        for (registerName, address, size) in expected {
            let register = try #require(model.register(named: registerName), "\(registerName)")
            #expect(register.address == address, "\(registerName)")
            #expect(register.size == size, "\(registerName)")
        }
        #expect(model.register(named: "Homing Offset")?.encoding == .signMagnitude(signBit: 11))
        #expect(model.register(named: "Present Load")?.encoding == .signMagnitude(signBit: 10))
        #expect(model.register(named: "Goal Position")?.encoding == .signMagnitude(signBit: 15))
        #expect(model.baudRates[0] == 1_000_000 && model.defaultBaudRate == 1_000_000)
        let image = model.factoryImage()
        try #require(image.count > 4, "control table of \(image.count) bytes")
        #expect(image[3] == 0x09 && image[4] == 0x03)  // 777 little-endian
    }

    @Test func signMagnitudeRoundTrip() throws {
        let register = RegisterSpec(
            name: "x", address: 0, size: 2, area: .ram, access: .readWrite, encoding: .signMagnitude(signBit: 15))
        #expect(register.encode(-100) == 0x8064)
        #expect(register.decode(raw: 0x8064) == -100)
        #expect(register.decode(raw: 0x0064) == 100)
        let signed = RegisterSpec(
            name: "y", address: 0, size: 4, area: .ram, access: .readWrite, encoding: .twosComplement)
        #expect(signed.decode(raw: signed.encode(-5)) == -5)
        #expect(signed.encode(-1) == 0xFFFF_FFFF)
    }

    @Test func errorsNameFileAndKey() throws {
        func error(_ json: String) -> ServoTableError? {
            do {
                _ = try ServoCatalog.parseModel(data: Data(json.utf8), file: "bad.json")
                return nil
            } catch { return error }
        }
        let original = try String(contentsOfFile: servoTableDirectory + "/xl330-m288.json", encoding: .utf8)
        let badAddress = original.replacingOccurrences(
            of: #""name": "ID", "address": 7"#, with: #""name": "ID", "address": "seven""#)
        let failure = try #require(error(badAddress))
        #expect(failure.location.file == "bad.json")
        #expect(failure.key == "registers[3].address")
        #expect(failure.description.contains("bad.json: registers[3].address: expected an integer"))

        let overlap = original.replacingOccurrences(
            of: #""name": "ID", "address": 7"#, with: #""name": "ID", "address": 6"#)
        #expect(error(overlap)?.problem.contains("overlaps") == true)
        #expect(error("{}")?.key == "model")
        #expect(error("[1,")?.key == "")
        let noPhysics = original.replacingOccurrences(of: #""gearRatio": 288.35,"#, with: "")
        #expect(error(noPhysics)?.key == "physical.gearRatio")
        #expect(throws: ServoTableError.self) { try ServoCatalog.load(directory: "/nonexistent-sinew-dir") }
        let modes = #""values": [0, 1, 3, 4, 5, 16]"#
        #expect(original.contains(modes))
        let outside = try #require(error(original.replacingOccurrences(of: modes, with: #""values": [0, 17]"#)))
        #expect(outside.key.hasSuffix(".values") && outside.problem.contains("17"), "\(outside)")
        let notList = try #require(error(original.replacingOccurrences(of: modes, with: #""values": 3"#)))
        #expect(notList.problem.contains("non-empty list"), "\(notList)")
        let notInteger = try #require(error(original.replacingOccurrences(of: modes, with: #""values": [1, "x"]"#)))
        #expect(notInteger.key.contains("values[1]"), "\(notInteger)")
    }

    /// The XL430-W250 (Koch follower shoulder, e-manual): no current sensor — no Current Limit or Goal Current,
    /// Present Load at 126, velocity/position/extended/PWM modes only — and two banks of indirect addresses.
    @Test func xl430W250HasNoCurrentRegisters() throws {
        let model = try #require(catalog.model(named: "xl430-w250"))
        #expect(model.modelNumber == 1060 && model.wireProtocol == .dynamixel2)
        #expect(model.register(named: "Current Limit") == nil && model.register(named: "Goal Current") == nil)
        #expect(model.register(named: "Present Load")?.address == 126)
        #expect(model.register(named: "Operating Mode")?.allowedValues == [1, 3, 4, 16])
        #expect(model.register(named: "Operating Mode")?.accepts(5) == false)
        #expect(model.register(named: "Indirect Data 56")?.address == 661)
        #expect(model.baudRates[7] == 4_500_000)
        #expect(model.operatingModeValue(for: .current) == nil)
    }

    /// The STS3215's table reaches its factory area (LeRobot's configure writes Maximum Acceleration at 85), and
    /// the STS3250 shares the table under its own model number.
    @Test func stsTablesReachTheFactoryArea() throws {
        for name in ["sts3215", "sts3250"] {
            let model = try #require(catalog.model(named: name))
            let maximum = try #require(model.register(named: "Maximum Acceleration"), "\(name)")
            #expect(maximum.address == 85 && maximum.access == .readWrite && maximum.area == .eeprom)
            #expect(model.register(named: "Goal Position 2")?.access == .readOnly)
            #expect(model.controlTableSize == 87)
        }
        #expect(catalog.model(named: "sts3250")?.modelNumber == 2825)
    }
}
