import PortierDomain

/// Typed reads of request params, each failing with a `bad_request` that names
/// the field and what was expected.
extension JSONObject {
    public func requiredString(_ key: String) throws(PortierError) -> String {
        guard let value = self[key] else { throw .badRequest("params.\(key) is required") }
        guard case .string(let s) = value else { throw .badRequest("params.\(key) must be a string, got \(value.typeName)") }
        return s
    }

    public func optionalString(_ key: String) throws(PortierError) -> String? {
        switch self[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let other?: throw .badRequest("params.\(key) must be a string, got \(other.typeName)")
        }
    }

    public func optionalInt(_ key: String, in range: ClosedRange<Int64>) throws(PortierError) -> Int64? {
        switch self[key] {
        case nil, .null?: return nil
        case .int(let i)? where range.contains(i): return i
        case .int?: throw .badRequest("params.\(key) must be between \(range.lowerBound) and \(range.upperBound)")
        case let other?: throw .badRequest("params.\(key) must be an integer, got \(other.typeName)")
        }
    }

    public func requiredArray(_ key: String) throws(PortierError) -> [JSONValue] {
        guard let value = self[key] else { throw .badRequest("params.\(key) is required") }
        guard case .array(let a) = value else { throw .badRequest("params.\(key) must be an array, got \(value.typeName)") }
        return a
    }

    /// A string param that must be one of an enum's raw values.
    public func optionalEnum<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws(PortierError) -> E?
    where E.RawValue == String {
        guard let s = try optionalString(key) else { return nil }
        guard let e = E(rawValue: s) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            throw .badRequest("params.\(key) must be one of: \(allowed)")
        }
        return e
    }

    /// Refuses params the operation does not know, so a typo is not silently ignored.
    public func rejectUnknownKeys(allowed: Set<String>) throws(PortierError) {
        for pair in pairs where !allowed.contains(pair.key) {
            throw .badRequest("unknown parameter \"\(pair.key)\"")
        }
    }
}
