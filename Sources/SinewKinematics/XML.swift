import SinewCore

/// A small XML reader for robot description files. It exists instead of Foundation's `XMLParser` so that
/// every element and attribute carries its exact line and column, and so the package does not depend on
/// libxml2. It reads the parts of XML 1.0 that description files use: elements, attributes, text,
/// CDATA, comments, processing instructions, a DOCTYPE (skipped, internal subset included), the five
/// predefined entities and numeric character references. Namespaces are not interpreted: a prefixed
/// name such as `xacro:macro` is just a name.
public enum XML {
    /// The deepest element nesting read (the root is at depth 1). URDFs nest a handful of levels; a much
    /// deeper document is refused at the first element beyond it, so neither parsing nor anything walking
    /// the tree later can exhaust memory or the stack.
    public static let maximumDepth = 256

    /// An attribute with its decoded value and where its name starts in the file.
    public struct Attribute: Sendable, Equatable {
        public var name: String
        public var value: String
        public var line: Int
        public var column: Int

        public init(name: String, value: String, line: Int, column: Int) {
            self.name = name
            self.value = value
            self.line = line
            self.column = column
        }
    }

    /// An element with its attributes in document order, its child elements, and its character data
    /// (text and CDATA of this element only, concatenated, entities decoded). `line`/`column` are those
    /// of the opening `<`, 1-based; columns count Unicode scalars.
    public struct Element: Sendable {
        public var name: String
        public var attributes: [Attribute]
        public var children: [Element]
        public var text: String
        public var line: Int
        public var column: Int

        public init(
            name: String, attributes: [Attribute] = [], children: [Element] = [], text: String = "",
            line: Int, column: Int
        ) {
            self.name = name
            self.attributes = attributes
            self.children = children
            self.text = text
            self.line = line
            self.column = column
        }

        /// The attribute named `name`, if present.
        public func attribute(_ name: String) -> Attribute? {
            attributes.first { $0.name == name }
        }

        /// The first child element named `name`, if any.
        public func child(_ name: String) -> Element? {
            children.first { $0.name == name }
        }
    }

    /// Parses a whole document and returns its root element. Errors are `.malformedXML` located at
    /// `file:line:column`.
    public static func parse(_ text: String, file: String) throws(RobotDescriptionError) -> Element {
        // One copy of the bytes; String.withUTF8 would avoid it but cannot pass a typed error through.
        try Array(text.utf8).withUnsafeBufferPointer { bytes throws(RobotDescriptionError) in
            try parse(utf8: bytes, file: file)
        }
    }

    /// Parses a whole document given as UTF-8 bytes (a leading byte-order mark is skipped).
    public static func parse(utf8 bytes: UnsafeBufferPointer<UInt8>, file: String) throws(RobotDescriptionError)
        -> Element
    {
        var reader = Reader(bytes: bytes, file: file)
        return try reader.document()
    }
}

// MARK: - Reader

private let lessThan = UInt8(ascii: "<")
private let greaterThan = UInt8(ascii: ">")
private let ampersand = UInt8(ascii: "&")
private let slash = UInt8(ascii: "/")
private let question = UInt8(ascii: "?")
private let bang = UInt8(ascii: "!")
private let equals = UInt8(ascii: "=")
private let doubleQuote = UInt8(ascii: "\"")
private let singleQuote = UInt8(ascii: "'")
private let semicolon = UInt8(ascii: ";")
private let hash = UInt8(ascii: "#")
private let newline = UInt8(ascii: "\n")
private let carriageReturn = UInt8(ascii: "\r")
private let space = UInt8(ascii: " ")
private let tab = UInt8(ascii: "\t")
private let leftBracket = UInt8(ascii: "[")
private let rightBracket = UInt8(ascii: "]")

@inline(__always) private func isSpace(_ b: UInt8) -> Bool {
    b == space || b == newline || b == tab || b == carriageReturn
}

@inline(__always) private func isNameStart(_ b: UInt8) -> Bool {
    (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || b == 0x5F || b == 0x3A || b >= 0x80
}

@inline(__always) private func isNameChar(_ b: UInt8) -> Bool {
    isNameStart(b) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E
}

/// Turns byte offsets into line/column. Offsets are asked for in mostly increasing order while parsing,
/// so it scans forward from the last answer; that keeps the whole parse linear in the file size.
private struct LineTracker {
    let bytes: UnsafeBufferPointer<UInt8>
    var offset = 0
    var line = 1
    var column = 1

    init(bytes: UnsafeBufferPointer<UInt8>, start: Int) {
        self.bytes = bytes
        offset = start
    }

    mutating func position(of target: Int) -> (line: Int, column: Int) {
        if target < offset {
            // A rare backwards query (an error about an earlier element): rescan from the start.
            (offset, line, column) = (0, 1, 1)
        }
        while offset < target {
            let b = bytes[offset]
            if b == newline {
                line += 1
                column = 1
            } else if b == carriageReturn {
                // CR LF is one line break; a lone CR is one too.
                if offset + 1 < bytes.count && bytes[offset + 1] == newline {
                    offset += 1
                }
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {
                column += 1
            }
            offset += 1
        }
        return (line, column)
    }
}

private struct Reader {
    let bytes: UnsafeBufferPointer<UInt8>
    let file: String
    var pos = 0
    var lines: LineTracker

    init(bytes: UnsafeBufferPointer<UInt8>, file: String) {
        self.bytes = bytes
        self.file = file
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF {
            pos = 3
        }
        lines = LineTracker(bytes: bytes, start: pos)
    }

    // MARK: Errors and positions

    mutating func location(_ offset: Int) -> SourceLocation {
        let p = lines.position(of: offset)
        return SourceLocation(file: file, line: p.line, column: p.column)
    }

    mutating func error(at offset: Int, element: String = "", _ message: String) -> RobotDescriptionError {
        RobotDescriptionError(.malformedXML, at: location(offset), element: element, message)
    }

    /// A short printable rendering of what is at `offset`, for messages.
    func found(at offset: Int) -> String {
        if offset >= bytes.count { return "end of file" }
        var end = offset
        while end < bytes.count && end - offset < 12 && bytes[end] != newline && bytes[end] != carriageReturn {
            end += 1
        }
        return "\"" + String(decoding: UnsafeBufferPointer(rebasing: bytes[offset..<end]), as: UTF8.self) + "\""
    }

    // MARK: Low-level scanning

    @inline(__always) func peek(_ ahead: Int = 0) -> UInt8? {
        let i = pos + ahead
        return i < bytes.count ? bytes[i] : nil
    }

    func starts(with literal: StaticString, at offset: Int) -> Bool {
        let n = literal.utf8CodeUnitCount
        if offset + n > bytes.count { return false }
        let p = literal.utf8Start
        for i in 0..<n where bytes[offset + i] != p[i] {
            return false
        }
        return true
    }

    mutating func skipSpace() {
        while pos < bytes.count && isSpace(bytes[pos]) {
            pos += 1
        }
    }

    /// Moves past the next occurrence of `terminator`; returns the offset where the terminator began.
    mutating func skip(past terminator: StaticString, openedAt start: Int, what: String)
        throws(RobotDescriptionError) -> Int
    {
        let first = terminator.utf8Start[0]
        var i = pos
        while i < bytes.count {
            if bytes[i] == first && starts(with: terminator, at: i) {
                pos = i + terminator.utf8CodeUnitCount
                return i
            }
            i += 1
        }
        throw error(at: start, "\(what) is never closed (missing \"\(terminator)\")")
    }

    func string(_ start: Int, _ end: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    mutating func name(what: String) throws(RobotDescriptionError) -> String {
        let start = pos
        guard pos < bytes.count, isNameStart(bytes[pos]) else {
            throw error(at: pos, "expected \(what), found \(found(at: pos))")
        }
        pos += 1
        while pos < bytes.count && isNameChar(bytes[pos]) {
            pos += 1
        }
        return string(start, pos)
    }

    // MARK: Document structure

    mutating func document() throws(RobotDescriptionError) -> XML.Element {
        try misc(allowDoctype: true)
        guard pos < bytes.count else {
            throw error(at: pos, "the document has no root element")
        }
        guard bytes[pos] == lessThan, pos + 1 < bytes.count, isNameStart(bytes[pos + 1]) else {
            throw error(at: pos, "expected the root element, found \(found(at: pos))")
        }
        let root = try element()
        try misc(allowDoctype: false)
        if pos < bytes.count {
            throw error(at: pos, "unexpected content after the root element <\(root.name)>: \(found(at: pos))")
        }
        return root
    }

    /// Whitespace, comments and processing instructions (and one DOCTYPE before the root).
    mutating func misc(allowDoctype: Bool) throws(RobotDescriptionError) {
        var sawDoctype = false
        while true {
            skipSpace()
            guard pos < bytes.count, bytes[pos] == lessThan else { return }
            if starts(with: "<!--", at: pos) {
                try comment()
            } else if starts(with: "<?", at: pos) {
                try processingInstruction()
            } else if starts(with: "<!DOCTYPE", at: pos) {
                guard allowDoctype && !sawDoctype else {
                    throw error(at: pos, "a DOCTYPE is only allowed once, before the root element")
                }
                sawDoctype = true
                try doctype()
            } else {
                return
            }
        }
    }

    mutating func comment() throws(RobotDescriptionError) {
        let start = pos
        pos += 4
        _ = try skip(past: "-->", openedAt: start, what: "comment")
    }

    mutating func processingInstruction() throws(RobotDescriptionError) {
        let start = pos
        pos += 2
        _ = try name(what: "a processing-instruction target after \"<?\"")
        _ = try skip(past: "?>", openedAt: start, what: "processing instruction")
    }

    /// Skips `<!DOCTYPE ...>`, including an internal subset in brackets and quoted literals.
    mutating func doctype() throws(RobotDescriptionError) {
        let start = pos
        pos += 9
        var quote: UInt8? = nil
        var inSubset = false
        while pos < bytes.count {
            let b = bytes[pos]
            if let q = quote {
                if b == q { quote = nil }
            } else if b == doubleQuote || b == singleQuote {
                quote = b
            } else if inSubset && starts(with: "<!--", at: pos) {
                try comment()
                continue
            } else if b == leftBracket {
                inSubset = true
            } else if b == rightBracket {
                inSubset = false
            } else if b == greaterThan && !inSubset {
                pos += 1
                return
            }
            pos += 1
        }
        throw error(at: start, "DOCTYPE is never closed")
    }

    /// One element and everything inside it. Nesting is handled with an explicit stack, so deeply
    /// nested input cannot overflow the thread's stack.
    mutating func element() throws(RobotDescriptionError) -> XML.Element {
        var stack: [(element: XML.Element, text: [UInt8])] = []
        let (root, selfClosing) = try startTag()
        if selfClosing { return root }
        stack.append((root, []))

        while true {
            guard pos < bytes.count else {
                let open = stack[stack.count - 1].element
                throw RobotDescriptionError(
                    .malformedXML, at: SourceLocation(file: file, line: open.line, column: open.column),
                    element: "<\(open.name)>",
                    "<\(open.name)> is never closed (end of file reached)")
            }
            let b = bytes[pos]
            if b != lessThan {
                try characterData(into: &stack[stack.count - 1].text)
                continue
            }
            if starts(with: "</", at: pos) {
                let tagStart = pos
                pos += 2
                let closing = try name(what: "an element name after \"</\"")
                skipSpace()
                guard peek() == greaterThan else {
                    throw error(at: pos, "expected \">\" to end </\(closing)>, found \(found(at: pos))")
                }
                pos += 1
                var (done, text) = stack.removeLast()
                guard closing == done.name else {
                    throw error(
                        at: tagStart, element: "<\(done.name)>",
                        "closing tag </\(closing)> does not match <\(done.name)> opened at line \(done.line)"
                            + " column \(done.column)")
                }
                if !text.isEmpty { done.text = String(decoding: text, as: UTF8.self) }
                text = []
                if stack.isEmpty { return done }
                stack[stack.count - 1].element.children.append(done)
            } else if starts(with: "<!--", at: pos) {
                try comment()
            } else if starts(with: "<![CDATA[", at: pos) {
                let start = pos
                pos += 9
                let contentStart = pos
                let end = try skip(past: "]]>", openedAt: start, what: "CDATA section")
                stack[stack.count - 1].text.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[contentStart..<end]))
            } else if starts(with: "<?", at: pos) {
                try processingInstruction()
            } else if starts(with: "<!", at: pos) {
                throw error(
                    at: pos, "unexpected markup \(found(at: pos)) inside <\(stack[stack.count - 1].element.name)>")
            } else {
                if stack.count >= XML.maximumDepth {
                    throw RobotDescriptionError(
                        .tooLarge, at: location(pos), element: "<\(stack[stack.count - 1].element.name)>",
                        "elements are nested more than \(XML.maximumDepth) deep here")
                }
                let (child, childSelfClosing) = try startTag()
                if childSelfClosing {
                    stack[stack.count - 1].element.children.append(child)
                } else {
                    stack.append((child, []))
                }
            }
        }
    }

    /// `<name attr="value" ...>` or `.../>`; `pos` is at the `<`.
    mutating func startTag() throws(RobotDescriptionError) -> (XML.Element, selfClosing: Bool) {
        let tagStart = pos
        pos += 1
        let tagName = try name(what: "an element name after \"<\"")
        let p = lines.position(of: tagStart)
        var result = XML.Element(name: tagName, line: p.line, column: p.column)
        while true {
            let beforeSpace = pos
            skipSpace()
            guard pos < bytes.count else {
                throw error(at: tagStart, element: "<\(tagName)>", "tag <\(tagName) is never closed (missing \">\")")
            }
            if bytes[pos] == greaterThan {
                pos += 1
                return (result, false)
            }
            if bytes[pos] == slash {
                guard peek(1) == greaterThan else {
                    throw error(at: pos, element: "<\(tagName)>", "expected \"/>\", found \(found(at: pos))")
                }
                pos += 2
                return (result, true)
            }
            guard isNameStart(bytes[pos]) else {
                throw error(
                    at: pos, element: "<\(tagName)>",
                    "expected an attribute name, \">\" or \"/>\", found \(found(at: pos))"
                )
            }
            guard pos > beforeSpace else {
                throw error(at: pos, element: "<\(tagName)>", "attributes must be separated by whitespace")
            }
            let attribute = try attribute(in: tagName)
            if result.attributes.contains(where: { $0.name == attribute.name }) {
                throw RobotDescriptionError(
                    .malformedXML, at: SourceLocation(file: file, line: attribute.line, column: attribute.column),
                    element: "<\(tagName)>", "attribute \(attribute.name) appears twice")
            }
            result.attributes.append(attribute)
        }
    }

    mutating func attribute(in tagName: String) throws(RobotDescriptionError) -> XML.Attribute {
        let nameStart = pos
        let attributeName = try name(what: "an attribute name")
        let p = lines.position(of: nameStart)
        skipSpace()
        guard peek() == equals else {
            throw error(
                at: pos, element: "<\(tagName)>",
                "expected \"=\" after attribute \(attributeName), found \(found(at: pos))")
        }
        pos += 1
        skipSpace()
        guard let quote = peek(), quote == doubleQuote || quote == singleQuote else {
            throw error(
                at: pos, element: "<\(tagName)>",
                "the value of attribute \(attributeName) must be in quotes, found \(found(at: pos))")
        }
        let quoteOffset = pos
        pos += 1
        let valueStart = pos
        var needsDecoding = false
        while pos < bytes.count && bytes[pos] != quote {
            let b = bytes[pos]
            if b == lessThan {
                // Most often the closing quote was forgotten, so point at the opening one.
                let p = lines.position(of: pos)
                throw error(
                    at: quoteOffset, element: "<\(tagName)>",
                    "the value of attribute \(attributeName) is not closed before the \"<\" at line \(p.line) column"
                        + " \(p.column) (\"<\" is not allowed in attribute values)")
            }
            if b == ampersand || b == newline || b == tab || b == carriageReturn { needsDecoding = true }
            pos += 1
        }
        guard pos < bytes.count else {
            throw error(
                at: quoteOffset, element: "<\(tagName)>", "the value of attribute \(attributeName) is never closed")
        }
        let valueEnd = pos
        pos += 1
        let value: String
        if needsDecoding {
            var scratch: [UInt8] = []
            scratch.reserveCapacity(valueEnd - valueStart)
            var i = valueStart
            while i < valueEnd {
                let b = bytes[i]
                if b == ampersand {
                    i = try reference(at: i, end: valueEnd, into: &scratch)
                    continue
                }
                // Attribute-value normalisation (XML 1.0 §3.3.3): a line break or tab reads as one space.
                if b == carriageReturn {
                    if i + 1 < valueEnd && bytes[i + 1] == newline { i += 1 }
                    scratch.append(space)
                } else if b == newline || b == tab {
                    scratch.append(space)
                } else {
                    scratch.append(b)
                }
                i += 1
            }
            value = String(decoding: scratch, as: UTF8.self)
        } else {
            value = string(valueStart, valueEnd)
        }
        return XML.Attribute(name: attributeName, value: value, line: p.line, column: p.column)
    }

    /// Text up to the next `<`, with references decoded and line breaks normalised to LF.
    mutating func characterData(into text: inout [UInt8]) throws(RobotDescriptionError) {
        while pos < bytes.count {
            let b = bytes[pos]
            if b == lessThan { return }
            if b == ampersand {
                pos = try reference(at: pos, end: bytes.count, into: &text)
                continue
            }
            if b == carriageReturn {
                if peek(1) == newline { pos += 1 }
                text.append(newline)
            } else {
                text.append(b)
            }
            pos += 1
        }
    }

    /// Decodes the entity or character reference starting at `start` (an `&`) and returns the offset after
    /// its `;`.
    mutating func reference(at start: Int, end: Int, into out: inout [UInt8]) throws(RobotDescriptionError) -> Int {
        var i = start + 1
        while i < end && i - start <= 12 && bytes[i] != semicolon {
            i += 1
        }
        guard i < end && bytes[i] == semicolon else {
            throw error(
                at: start,
                "\"&\" must start a reference such as &amp; or &#38;, ended by \";\" (found \(found(at: start)))")
        }
        // Written over plain indices on purpose: a while/switch version over a rebased buffer slice was
        // miscompiled at -O by Swift 6.3.1 (it read one byte past the loop bound).
        if bytes[start + 1] == hash {
            let hex = start + 2 < i && bytes[start + 2] == UInt8(ascii: "x")
            let digitsStart = start + (hex ? 3 : 2)
            var scalarValue: UInt32 = 0
            for k in digitsStart..<max(digitsStart, i) {
                let c = bytes[k]
                let digit: UInt32
                if c >= 0x30 && c <= 0x39 {
                    digit = UInt32(c &- 0x30)
                } else if hex && c >= 0x61 && c <= 0x66 {
                    digit = UInt32(c &- 0x61 &+ 10)
                } else if hex && c >= 0x41 && c <= 0x46 {
                    digit = UInt32(c &- 0x41 &+ 10)
                } else {
                    throw error(at: start, "bad character reference \(found(at: start))")
                }
                // Stop growing once out of Unicode's range; the check below rejects it.
                if scalarValue <= 0x10FFFF { scalarValue = scalarValue * (hex ? 16 : 10) + digit }
            }
            guard i > digitsStart, scalarValue != 0, let scalar = Unicode.Scalar(scalarValue) else {
                throw error(at: start, "bad character reference \(found(at: start))")
            }
            out.append(contentsOf: UTF8.encode(scalar)!)
            return i + 1
        }
        let body = UnsafeBufferPointer(rebasing: bytes[(start + 1)..<i])
        let replacement: UInt8
        switch String(decoding: body, as: UTF8.self) {
        case "lt": replacement = lessThan
        case "gt": replacement = greaterThan
        case "amp": replacement = ampersand
        case "quot": replacement = doubleQuote
        case "apos": replacement = singleQuote
        default:
            throw error(at: start, "unknown entity \(found(at: start)); only &lt; &gt; &amp; &quot; &apos; are defined")
        }
        out.append(replacement)
        return i + 1
    }
}
