/// Request payloads of about a given size in the shapes that cost a JSON parser
/// most per byte, all within the request caps (`JSONLimits.requests`), and the
/// plain frame they are compared with. `portier-bench parse` times them
/// (`Scripts/bench-parse.sh`); the transport tests send them.
public enum WorstCaseJSON {
    /// One shape: its name and how to fill a value of about `bytes` bytes.
    public struct Shape: Sendable {
        public let name: String
        let fill: @Sendable (Int, JSONLimits) -> String
    }

    /// The baseline: strings of plain ASCII at the string cap, in one array.
    public static let plain = Shape(name: "plain strings") { bytes, limits in
        let size = min(limits.maximumStringBytes, bytes)
        return elements(bytes: bytes, each: size + 3, limits: limits) { "\"" + String(repeating: "a", count: size) + "\"" }
    }

    public static let shapes: [Shape] = [
        // As many keys as fit: short distinct keys, objects at the key cap.
        Shape(name: "wide objects") { bytes, limits in
            var counter = 0
            let perObject = limits.maximumKeysPerObject
            return elements(bytes: bytes, each: perObject * 7 + 2, limits: limits) {
                "{" + (0..<perObject).map { _ in counter += 1; return "\"\(String(counter, radix: 36))\":0" }.joined(separator: ",") + "}"
            }
        },
        // Empty objects: a value every three bytes.
        Shape(name: "empty objects") { bytes, limits in
            let perArray = limits.maximumArrayElements
            return elements(bytes: bytes, each: perArray * 3 + 2, limits: limits) {
                "[" + Array(repeating: "{}", count: perArray).joined(separator: ",") + "]"
            }
        },
        // Strings made of `\u` escapes, at the string cap once unescaped.
        Shape(name: "\\u escapes") { bytes, limits in
            let count = limits.maximumStringBytes / 2
            return elements(bytes: bytes, each: count * 6 + 3, limits: limits) {
                "\"" + String(repeating: "\\u00e9", count: count) + "\""
            }
        },
        // One number as long as the frame.
        Shape(name: "one long number") { bytes, _ in String(repeating: "9", count: bytes) },
        // Numbers, integers and decimals with exponents.
        Shape(name: "numbers") { bytes, limits in
            let perArray = limits.maximumArrayElements
            return elements(bytes: bytes, each: perArray * 6 + 2, limits: limits) {
                "[" + (0..<perArray).map { $0 % 2 == 0 ? "7" : "1.5e-7" }.joined(separator: ",") + "]"
            }
        },
        // Arrays nested to the depth cap, over and over.
        Shape(name: "maximum nesting") { bytes, limits in
            let depth = limits.maximumDepth - 5
            let unit = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            return elements(bytes: bytes, each: unit.utf8.count + 1, limits: limits) { unit }
        },
    ]

    /// `{"id":1,"op":"ping","params":{"x":[…]}}` with the shape's value, about `bytes` long.
    public static func request(_ shape: Shape, bytes: Int, limits: JSONLimits = .requests) -> [UInt8] {
        Array(("{\"id\":1,\"op\":\"ping\",\"params\":{\"x\":" + shape.fill(bytes - 48, limits) + "}}").utf8)
    }

    /// An array of as many `make()` values as fit in `bytes`, nested in arrays
    /// of at most the element cap.
    private static func elements(bytes: Int, each _: Int, limits: JSONLimits, _ make: () -> String) -> String {
        var items: [String] = []
        var total = 2
        while true {
            let item = make()
            // Room for the item, its comma and a bracket per level of nesting.
            guard total + item.utf8.count + 1 + 8 <= bytes || items.isEmpty else { break }
            total += item.utf8.count + 1
            items.append(item)
            if items.count % limits.maximumArrayElements == 0 { total += 3 }
        }
        var level = items
        while level.count > limits.maximumArrayElements {
            level = stride(from: 0, to: level.count, by: limits.maximumArrayElements).map {
                "[" + level[$0..<min($0 + limits.maximumArrayElements, level.count)].joined(separator: ",") + "]"
            }
        }
        return "[" + level.joined(separator: ",") + "]"
    }
}
