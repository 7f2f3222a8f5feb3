/// A JSON value as it travels in frames.
///
/// Integers and doubles are kept apart so that ids and counts survive exactly.
/// Objects keep their keys in order (replies read the way they were written).
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The JSON type name, for error messages ("expected a string, got array").
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { o } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var intValue: Int64? { if case .int(let i) = self { i } else { nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
}

/// A JSON object: keys in insertion order, unique. Lookups are linear, which is
/// the fastest choice for the handful of keys a request or reply carries.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var pairs: [(key: String, value: JSONValue)]

    public init() { pairs = [] }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        pairs = []
        pairs.reserveCapacity(elements.count)
        for (k, v) in elements { self[k] = v }
    }

    public var isEmpty: Bool { pairs.isEmpty }
    public var count: Int { pairs.count }
    public var keys: [String] { pairs.map(\.key) }

    public subscript(key: String) -> JSONValue? {
        get { pairs.first(where: { $0.key == key })?.value }
        set {
            if let i = pairs.firstIndex(where: { $0.key == key }) {
                if let newValue { pairs[i].value = newValue } else { pairs.remove(at: i) }
            } else if let newValue {
                pairs.append((key, newValue))
            }
        }
    }

    mutating func reserveCapacity(_ n: Int) { pairs.reserveCapacity(n) }

    /// Appends without looking for an existing key; the caller guarantees uniqueness.
    mutating func appendUnique(_ key: String, _ value: JSONValue) { pairs.append((key, value)) }

    /// Same keys with equal values, in any order (linear: small objects compare
    /// pairwise, larger ones through a dictionary).
    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        guard a.pairs.count == b.pairs.count else { return false }
        if a.pairs.count <= 12 { return a.pairs.allSatisfy { b[$0.key] == $0.value } }
        var values: [String: JSONValue] = Dictionary(minimumCapacity: b.pairs.count)
        for pair in b.pairs { values[pair.key] = pair.value }
        return a.pairs.allSatisfy { values[$0.key] == $0.value }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var o = JSONObject()
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    /// `.string(s)` or `.null` when `s` is nil.
    public static func orNull(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
}
