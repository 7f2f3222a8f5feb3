/// One versioned schema change. Applied once, in a transaction, recorded in
/// `schema_migrations`. Never edit a released migration: add a new one.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let sql: String
}

/// Every migration, in order. The SQL lives in Swift so the binary carries it.
public enum Migrations {
    public static let all: [Migration] = [
        Migration(version: 1, name: "schema v1", sql: schemaV1),
        Migration(version: 2, name: "index change log", sql: schemaV2),
        Migration(version: 3, name: "messages per recipient", sql: schemaV3),
        Migration(version: 4, name: "password resets, appointment notices, withdrawn messages", sql: schemaV4),
        Migration(version: 5, name: "permission event log (watch)", sql: schemaV5),
        Migration(version: 6, name: "message senders", sql: schemaV6),
    ]
}
