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
        _ = try JSONParser.parse(atLimit)
        let over = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(throws: JSONParseError.self) { _ = try JSONParser.parse(over) }
        let bomb = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONParseError.self) { _ = try JSONParser.parse(bomb) }
    }

    @Test("writer output parses back to the same value")
    func roundTrip() throws {
        let value: JSONValue = ["s": "quote \" backslash \\ nl \n ctl \u{01} é", "n": -5, "d": .double(0.25), "l": [nil, true, ["k": "v"]]]
        #expect(try JSONParser.parse(value.jsonText) == value)
    }
}
