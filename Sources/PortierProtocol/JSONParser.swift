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
    private var values = 0

    /// Longest number accepted, in characters (no value the protocol carries
    /// comes close; a megabyte of digits would cost a megabyte-long conversion).
    public static let maximumNumberLength = 64

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

    private mutating func countValue() throws(JSONParseError) {
        values += 1
        guard values <= limits.maximumValues else { throw error("document has more than \(limits.maximumValues) values") }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        try countValue()
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
            try countValue()
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
        // Slow path: escapes. The unescaped string is never longer than its
        // escaped form, so one buffer of the remaining input (at most the cap)
        // holds it; bytes are written through a pointer, without checks per byte.
        let capacity = min(end - start, limits.maximumStringBytes) + 4
        var failure: JSONParseError?
        let utf8 = [UInt8](unsafeUninitializedCapacity: capacity) { out, count in
            let prefix = index - start
            out.baseAddress!.initialize(from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) + start, count: prefix)
            count = prefix
            do throws(JSONParseError) {
                try unescape(into: out, count: &count)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        guard let s = String(validating: utf8, as: UTF8.self) else { throw error("string is not valid UTF-8") }
        return s
    }

    /// Copies the rest of a string with escapes into `out`, up to and past its
    /// closing quote.
    private mutating func unescape(into out: UnsafeMutableBufferPointer<UInt8>, count: inout Int) throws(JSONParseError) {
        let end = bytes.count
        // Room for one more escape's bytes while under the cap (see the caller).
        let limit = out.count - 4
        while index < end {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                guard count <= limits.maximumStringBytes else { throw stringTooLong() }
                index += 1
                return
            }
            guard count <= limit else { throw stringTooLong() }
            if b == UInt8(ascii: "\\") {
                index += 1
                guard let e = current else { throw error("unterminated escape") }
                index += 1
                switch e {
                case UInt8(ascii: "\""): out[count] = 0x22; count += 1
                case UInt8(ascii: "\\"): out[count] = 0x5C; count += 1
                case UInt8(ascii: "/"): out[count] = 0x2F; count += 1
                case UInt8(ascii: "b"): out[count] = 0x08; count += 1
                case UInt8(ascii: "f"): out[count] = 0x0C; count += 1
                case UInt8(ascii: "n"): out[count] = 0x0A; count += 1
                case UInt8(ascii: "r"): out[count] = 0x0D; count += 1
                case UInt8(ascii: "t"): out[count] = 0x09; count += 1
                case UInt8(ascii: "u"): try appendUnicodeEscape(to: out, count: &count)
                default: throw error("invalid escape")
                }
            } else {
                if b < 0x20 { throw error("control character in string") }
                out[count] = b
                count += 1
                index += 1
            }
        }
        throw error("unterminated string")
    }

    private mutating func readHex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for i in 0..<4 {
            let c = UInt32(bytes[index + i])
            var d = c &- 0x30  // '0'
            if d > 9 {
                d = (c | 0x20) &- 0x61  // 'a', either case
                guard d < 6 else { throw error("invalid \\u escape") }
                d += 10
            }
            v = v << 4 | d
        }
        index += 4
        return v
    }

    /// Decodes `\uXXXX` (and a following low surrogate) straight into UTF-8 bytes.
    private mutating func appendUnicodeEscape(to out: UnsafeMutableBufferPointer<UInt8>, count: inout Int) throws(JSONParseError) {
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
        // An escape is 6 (or 12) input bytes and at most 4 output bytes: it fits.
        switch scalar {
        case 0..<0x80:
            if scalar == 0 { sawNUL = true }
            out[count] = UInt8(scalar)
            count += 1
        case 0x80..<0x800:
            out[count] = UInt8(0xC0 | scalar >> 6)
            out[count + 1] = UInt8(0x80 | scalar & 0x3F)
            count += 2
        case 0x800..<0x10000:
            out[count] = UInt8(0xE0 | scalar >> 12)
            out[count + 1] = UInt8(0x80 | scalar >> 6 & 0x3F)
            out[count + 2] = UInt8(0x80 | scalar & 0x3F)
            count += 3
        default:
            out[count] = UInt8(0xF0 | scalar >> 18)
            out[count + 1] = UInt8(0x80 | scalar >> 12 & 0x3F)
            out[count + 2] = UInt8(0x80 | scalar >> 6 & 0x3F)
            out[count + 3] = UInt8(0x80 | scalar & 0x3F)
            count += 4
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
        guard index - start <= Self.maximumNumberLength else { throw error("number longer than \(Self.maximumNumberLength) characters") }
        if isInteger, exact {
            if negative { return .int(magnitude) }
            if magnitude != .min { return .int(-magnitude) }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let d = Double(text), d.isFinite else { throw error("number out of range") }
        return .double(d)
    }
}
