import Foundation

/// A value bound to a query parameter, sent in PostgreSQL's text format.
///
/// Values are always passed as parameters, never spliced into SQL text.
public protocol PostgresBindable: Sendable {
    var postgresText: String { get }
}

extension String: PostgresBindable { public var postgresText: String { self } }
extension Int64: PostgresBindable { public var postgresText: String { String(self) } }
extension Int: PostgresBindable { public var postgresText: String { String(self) } }
extension Bool: PostgresBindable { public var postgresText: String { self ? "t" : "f" } }
extension Double: PostgresBindable { public var postgresText: String { String(self) } }

/// `bytea` in hex form.
public struct ByteaValue: PostgresBindable, Equatable {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var postgresText: String {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
        out.reserveCapacity(2 + bytes.count * 2)
        for b in bytes { out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A `bigint[]` literal.
public struct BigIntArray: PostgresBindable, Equatable {
    public let values: [Int64]
    public init(_ values: [Int64]) { self.values = values }
    public var postgresText: String { "{" + values.map(String.init).joined(separator: ",") + "}" }
}

/// One row of a result, read by column name or position.
public struct Row: Sendable {
    /// Column names, shared by all rows of a result. Found by a linear search:
    /// results have a handful of short names, and comparing them is cheaper than
    /// hashing one (loading a big environment reads millions of fields).
    let columns: [String]
    let values: [String?]

    public subscript(_ column: String) -> String? {
        guard let i = columns.firstIndex(of: column) else { preconditionFailure("no column \(column) in result") }
        return values[i]
    }

    public subscript(_ index: Int) -> String? { values[index] }

    /// Non-null text, or a `DatabaseError` naming the column.
    public func string(_ column: String) throws -> String {
        guard let v = self[column] else { throw DatabaseError(kind: .other, sqlState: nil, message: "column \(column) is null") }
        return v
    }

    public func int64(_ column: String) throws -> Int64 {
        guard let text = self[column], let v = Int64(text) else {
            throw DatabaseError(kind: .other, sqlState: nil, message: "column \(column) is not a bigint")
        }
        return v
    }

    public func optionalInt64(_ column: String) -> Int64? { self[column].flatMap { Int64($0) } }

    public func bool(_ column: String) throws -> Bool {
        switch self[column] {
        case "t": true
        case "f": false
        default: throw DatabaseError(kind: .other, sqlState: nil, message: "column \(column) is not a boolean")
        }
    }

    /// `bytea` in hex output format (`\x…`).
    public func bytea(_ column: String) throws -> [UInt8] {
        guard let text = self[column], text.hasPrefix("\\x") else {
            throw DatabaseError(kind: .other, sqlState: nil, message: "column \(column) is not bytea")
        }
        var out: [UInt8] = []
        var high: UInt8?
        for c in text.utf8.dropFirst(2) {
            let v: UInt8 = c <= 57 ? c - 48 : (c | 0x20) - 87
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return out
    }
}

/// The rows a statement returned and how many it affected.
public struct QueryResult: Sendable {
    public let rows: [Row]
    public let affectedRows: Int

    public var first: Row? { rows.first }
}
