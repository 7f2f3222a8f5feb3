import NIOCore

extension ByteBuffer {
    /// Appends `value` as compact JSON.
    public mutating func writeJSON(_ value: JSONValue) {
        switch value {
        case .null: writeStaticString("null")
        case .bool(true): writeStaticString("true")
        case .bool(false): writeStaticString("false")
        case .int(let i): writeString(String(i))
        case .double(let d) where d.isFinite: writeString(String(d))
        case .double: writeStaticString("null")
        case .string(let s): writeJSONString(s)
        case .array(let items):
            writeInteger(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { writeInteger(UInt8(ascii: ",")) }
                writeJSON(item)
            }
            writeInteger(UInt8(ascii: "]"))
        case .object(let object): writeJSON(object)
        }
    }

    public mutating func writeJSON(_ object: JSONObject) {
        writeInteger(UInt8(ascii: "{"))
        for (i, pair) in object.pairs.enumerated() {
            if i > 0 { writeInteger(UInt8(ascii: ",")) }
            writeJSONString(pair.key)
            writeInteger(UInt8(ascii: ":"))
            writeJSON(pair.value)
        }
        writeInteger(UInt8(ascii: "}"))
    }

    /// Writes a JSON string literal, escaping quotes, backslashes and control characters.
    public mutating func writeJSONString(_ s: String) {
        writeInteger(UInt8(ascii: "\""))
        var needsEscape = false
        for b in s.utf8 where b < 0x20 || b == 0x22 || b == 0x5C { needsEscape = true; break }
        if !needsEscape {
            writeString(s)
        } else {
            for b in s.utf8 {
                switch b {
                case 0x22: writeStaticString("\\\"")
                case 0x5C: writeStaticString("\\\\")
                case 0x0A: writeStaticString("\\n")
                case 0x0D: writeStaticString("\\r")
                case 0x09: writeStaticString("\\t")
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    writeStaticString("\\u00")
                    writeInteger(hex[Int(b >> 4)])
                    writeInteger(hex[Int(b & 0xF)])
                default: writeInteger(b)
                }
            }
        }
        writeInteger(UInt8(ascii: "\""))
    }
}

extension JSONValue {
    /// Compact JSON text, for logs, tests and the CLI.
    public var jsonText: String {
        var buffer = ByteBufferAllocator().buffer(capacity: 128)
        buffer.writeJSON(self)
        return buffer.readString(length: buffer.readableBytes) ?? ""
    }
}
