import PortierProtocol
import Testing

@Suite("JSON parser")
struct JSONParserTests {
    @Test("parses every kind of value and keeps integers exact")
    func values() throws {
        let v = try JSONParser.parse(#" {"a": [1, -2, 3.5, 1e3, true, false, null, "x\n\u00e9\ud83d\ude00"], "big": 9223372036854775807} "#)
        guard case .object(let o) = v else { Issue.record("not an object"); return }
        #expect(o["a"] == [1, -2, .double(3.5), .double(1000), true, false, nil, "x\né😀"])
        #expect(o["big"] == .int(Int64.max))
        #expect(o.keys == ["a", "big"])
    }

    @Test("refuses malformed input with a message", arguments: [
        "", "{", "}", "[1,]", "{\"a\":}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "1e", "tru", "nul",
        "\"unterminated", "\"bad \\x escape\"", "\"\\ud800\"", "\"\\udc00\"", "{\"a\":1}x", "[1 2]", "\"tab\there\"",
        "{\"a\":1,\"a\":2}", "1e999",
    ])
    func malformed(_ text: String) {
        #expect(throws: JSONParseError.self) { _ = try JSONParser.parse(text) }
    }

    @Test("refuses invalid UTF-8 inside strings")
    func invalidUTF8() {
        let bytes: [UInt8] = Array("{\"a\":\"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)
        #expect(throws: JSONParseError.self) { _ = try JSONParser.parse(bytes) }
        let overlong: [UInt8] = [0x22, 0xC0, 0xAF, 0x22]
        #expect(throws: JSONParseError.self) { _ = try JSONParser.parse(overlong) }
    }

    @Test("refuses nesting deeper than the limit, accepts it at the limit")
    func depth() throws {
        let atLimit = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        _ = try JSONParser.parse(atLimit, limits: .requests)
        let over = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(throws: JSONParseError.self) { _ = try JSONParser.parse(over, limits: .requests) }
        let bomb = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONParseError.self) { _ = try JSONParser.parse(bomb, limits: .requests) }
    }

    @Test("writer output parses back to the same value")
    func roundTrip() throws {
        let value: JSONValue = ["s": "quote \" backslash \\ nl \n ctl \u{01} é", "n": -5, "d": .double(0.25), "l": [nil, true, ["k": "v"]]]
        #expect(try JSONParser.parse(value.jsonText) == value)
    }

    /// A document with `n` of the thing a cap counts.
    static func document(_ cap: String, _ n: Int) -> String {
        switch cap {
        case "keys":
            let pairs: [String] = (0..<n).map { "\"k\($0)\":0" }
            return "{" + pairs.joined(separator: ",") + "}"
        case "elements":
            return "[" + Array(repeating: "0", count: n).joined(separator: ",") + "]"
        case "string bytes":
            return "\"" + String(repeating: "é", count: n / 2) + String(repeating: "a", count: n % 2) + "\""
        case "escaped string bytes":
            return "\"" + String(repeating: "\\u00e9", count: n / 2) + String(repeating: "a", count: n % 2) + "\""
        default:  // values: an array of arrays of up to three, each array a value too
            var left = n - 1
            var groups: [String] = []
            while left > 0 {
                let take = min(3, left - 1)
                groups.append("[" + Array(repeating: "1", count: max(take, 0)).joined(separator: ",") + "]")
                left -= 1 + max(take, 0)
            }
            return "[" + groups.joined(separator: ",") + "]"
        }
    }

    @Test("R-SEC-2: each cap accepts a document at the cap and refuses one past it", arguments: [
        ("keys", 4), ("elements", 5), ("string bytes", 10), ("escaped string bytes", 10), ("values", 12),
    ])
    func caps(_ name: String, _ cap: Int) throws {
        let limits = JSONLimits(maximumDepth: 8, maximumKeysPerObject: 4, maximumArrayElements: 5, maximumValues: 12, maximumStringBytes: 10)
        _ = try JSONParser.parse(Self.document(name, cap), limits: limits)
        #expect(throws: JSONParseError.self, "\(name)") { _ = try JSONParser.parse(Self.document(name, cap + 1), limits: limits) }
    }

    @Test("duplicate keys are found among many keys (hashed past the first dozen)")
    func duplicatesAmongMany() throws {
        let keys = (0..<1000).map { "\"k\($0)\":0" }
        _ = try JSONParser.parse("{" + keys.joined(separator: ",") + "}", limits: .requests)
        for duplicate in ["k0", "k11", "k12", "k999"] {
            let text = "{" + keys.joined(separator: ",") + ",\"\(duplicate)\":1}"
            #expect(throws: JSONParseError.self, "\(duplicate)") { _ = try JSONParser.parse(text, limits: .requests) }
        }
    }

    @Test("R-SEC-3: the parser reports NUL in keys and values at any depth")
    func nul() throws {
        for text in [#"{"a":"x\u0000"}"#, #"{"a\u0000":1}"#, #"[[[{"k":["\u0000"]}]]]"#] {
            let document = try Array(text.utf8).withUnsafeBytes { try JSONParser.parseDocument($0, limits: .requests) }
            #expect(document.containsNUL, "\(text)")
        }
        let clean = try Array(#"{"a":"\u0001 é"}"#.utf8).withUnsafeBytes { try JSONParser.parseDocument($0, limits: .requests) }
        #expect(!clean.containsNUL)
    }

    @Test("escapes decode to the same text as the characters (1 to 4 UTF-8 bytes, surrogate pairs)")
    func escapes() throws {
        let text = #""\u0041\u00e9\u20ac\ud83d\ude00 \"\\\/\b\f\n\r\t""#
        #expect(try JSONParser.parse(text) == .string("Aé€😀 \"\\/\u{8}\u{c}\n\r\t"))
    }
}
