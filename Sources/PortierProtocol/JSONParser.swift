/// Why a payload is not acceptable JSON; the message goes back to the client.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

/// A parsed document and what the parser noticed on the way.
public struct ParsedJSON: Sendable {
    public let value: JSONValue
    /// Whether any string, key or value, held U+0000 (written `\u0000`).
    /// Requests refuse it (R-SEC-3: PostgreSQL text cannot hold it).
    public let containsNUL: Bool
}

/// A strict RFC 8259 parser over bytes.
///
/// Written here rather than taken from Foundation so that what matters to a
/// server facing hostile input is explicit and bounded (R-SEC-2): the caps of
/// `JSONLimits`, invalid UTF-8, duplicate keys, trailing bytes, exact 64-bit
/// integers; and time linear in the input whatever its shape: duplicate keys
/// are found by hashing once an object has more than a few keys, escapes and
/// numbers are decoded without building intermediate strings, and empty
/// containers allocate nothing. `Scripts/bench-parse.sh` measures the worst
/// shapes against a plain string frame.
public struct JSONParser {
    private let bytes: UnsafeRawBufferPointer
    private var index = 0
    private let limits: JSONLimits
    private var sawNUL = false

    /// Up to this many keys, a new key is compared with the earlier ones (cheaper
    /// than hashing); past it, an object's keys go into a set.
    private static let linearKeyCheck = 12

    /// Parses exactly one JSON value filling all of `bytes` (whitespace around it allowed).
    public static func parseDocument(_ bytes: UnsafeRawBufferPointer, limits: JSONLimits) throws(JSONParseError) -> ParsedJSON {
        var parser = JSONParser(bytes: bytes, limits: limits)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected bytes after the JSON value") }
        return ParsedJSON(value: value, containsNUL: parser.sawNUL)
    }

    /// Parses trusted JSON (see `JSONLimits.trusted`) unless other limits are given.
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: JSONLimits = .trusted) throws(JSONParseError) -> JSONValue {
        try parseDocument(bytes, limits: limits).value
    }

    public static func parse(_ bytes: [UInt8], limits: JSONLimits = .trusted) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBytes { raw in
            do throws(JSONParseError) { return .success(try parse(raw, limits: limits)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    public static func parse(_ text: String, limits: JSONLimits = .trusted) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), limits: limits)
    }

    private init(bytes: UnsafeRawBufferPointer, limits: JSONLimits) {
        self.bytes = bytes
        self.limits = limits
    }

    private func error(_ message: String) -> JSONParseError { JSONParseError(message: message, offset: index) }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard let byte = current else { throw error("unexpected end of JSON") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("invalid literal") }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: count)
        for i in 0..<count where bytes[index + i] != expected[i] { throw error("invalid literal") }
        index += count
    }

    private func checkDepth(_ depth: Int) throws(JSONParseError) {
        guard depth <= limits.maximumDepth else { throw error("JSON nested deeper than \(limits.maximumDepth) levels") }
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        try checkDepth(depth)
        index += 1
        var object = JSONObject()
        skipWhitespace()
        if current == UInt8(ascii: "}") { index += 1; return .object(object) }
        object.reserveCapacity(4)  // requests' objects are small: one allocation, not three
        var seen: Set<String>?  // built once the object outgrows the linear check
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
            guard object.count < limits.maximumKeysPerObject else {
                throw error("object has more than \(limits.maximumKeysPerObject) keys")
            }
            let key = try parseString()
            if object.count < Self.linearKeyCheck {
                if object.pairs.contains(where: { $0.key == key }) { throw error("duplicate key \"\(key.prefix(64))\"") }
            } else {
                if seen == nil {
                    seen = Set(minimumCapacity: 64)
                    for pair in object.pairs { seen!.insert(pair.key) }
                }
                guard seen!.insert(key).inserted else { throw error("duplicate key \"\(key.prefix(64))\"") }
            }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            object.appendUnique(key, try parseValue(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): index += 1; return .object(object)
            default: throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        try checkDepth(depth)
        index += 1
        var array: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { index += 1; return .array(array) }
        while true {
            guard array.count < limits.maximumArrayElements else {
                throw error("array has more than \(limits.maximumArrayElements) elements")
            }
            skipWhitespace()
            array.append(try parseValue(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return .array(array)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    private func stringTooLong() -> JSONParseError { error("string longer than \(limits.maximumStringBytes) bytes") }

    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1  // opening quote
        let start = index
        let end = bytes.count
        // Fast path: no escapes, so the bytes between the quotes are the string.
        while index < end {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                guard index - start <= limits.maximumStringBytes else { throw stringTooLong() }
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                index += 1
                guard let s = String(validating: slice, as: UTF8.self) else { throw error("string is not valid UTF-8") }
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw error("control character in string") }
            index += 1
        }
        guard index - start <= limits.maximumStringBytes else { throw stringTooLong() }
        var utf8: [UInt8] = []
        utf8.reserveCapacity(index - start + 16)
        utf8.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while index < end {
            let b = bytes[index]
            switch b {
            case UInt8(ascii: "\""):
                index += 1
                guard let s = String(validating: utf8, as: UTF8.self) else { throw error("string is not valid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                index += 1
                guard let e = current else { throw error("unterminated escape") }
                index += 1
                switch e {
                case UInt8(ascii: "\""): utf8.append(0x22)
                case UInt8(ascii: "\\"): utf8.append(0x5C)
                case UInt8(ascii: "/"): utf8.append(0x2F)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"): try appendUnicodeEscape(to: &utf8)
                default: throw error("invalid escape")
                }
            default:
                if b < 0x20 { throw error("control character in string") }
                utf8.append(b)
                index += 1
            }
            guard utf8.count <= limits.maximumStringBytes else { throw stringTooLong() }
        }
        throw error("unterminated string")
    }

    private mutating func readHex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            index += 1
        }
        return v
    }

    /// Decodes `\uXXXX` (and a following low surrogate) straight into UTF-8 bytes.
    private mutating func appendUnicodeEscape(to utf8: inout [UInt8]) throws(JSONParseError) {
        var scalar = try readHex4()
        if (0xD800...0xDBFF).contains(scalar) {
            guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else { throw error("unpaired surrogate") }
            index += 2
            let low = try readHex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalar) {
            throw error("unpaired surrogate")
        }
        switch scalar {
        case 0:
            sawNUL = true
            utf8.append(0)
        case 0..<0x80:
            utf8.append(UInt8(scalar))
        case 0x80..<0x800:
            utf8.append(UInt8(0xC0 | scalar >> 6))
            utf8.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            utf8.append(UInt8(0xE0 | scalar >> 12))
            utf8.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            utf8.append(UInt8(0x80 | scalar & 0x3F))
        default:
            utf8.append(UInt8(0xF0 | scalar >> 18))
            utf8.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            utf8.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            utf8.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    private static func isDigit(_ c: UInt8) -> Bool { c &- UInt8(ascii: "0") < 10 }

    /// Integers are accumulated digit by digit (no string is built); fractions,
    /// exponents and integers past 64 bits go through `Double`.
    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = index
        let negative = current == UInt8(ascii: "-")
        if negative { index += 1 }
        guard let first = current, Self.isDigit(first) else { throw error("invalid number") }
        // Accumulated as a negative number so that Int64.min fits.
        var magnitude: Int64 = 0
        var exact = true
        if first == UInt8(ascii: "0") {
            index += 1
        } else {
            while let c = current, Self.isDigit(c) {
                if exact {
                    let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                    let (next, o2) = times10.subtractingReportingOverflow(Int64(c &- UInt8(ascii: "0")))
                    if o1 || o2 { exact = false } else { magnitude = next }
                }
                index += 1
            }
        }
        var isInteger = true
        if current == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard let c = current, Self.isDigit(c) else { throw error("invalid number") }
            while let c = current, Self.isDigit(c) { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let c = current, Self.isDigit(c) else { throw error("invalid number") }
            while let c = current, Self.isDigit(c) { index += 1 }
        }
        if isInteger, exact {
            if negative { return .int(magnitude) }
            if magnitude != .min { return .int(-magnitude) }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let d = Double(text), d.isFinite else { throw error("number out of range") }
        return .double(d)
    }
}
