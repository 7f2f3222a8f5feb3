import PortierProtocol

/// Plain-text tables for people; `--json` is for scripts.
enum Table {
    /// Left-aligned columns under a header.
    static func columns(_ header: [String], _ rows: [[String]]) -> String {
        guard !rows.isEmpty else { return "(none)\n" }
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(widths[i]) }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    /// A list of objects (`value` is a JSON array) as columns: `(header, key)` pairs.
    static func objects(_ value: JSONValue?, _ columns: [(String, String)]) -> String {
        let rows = (value?.arrayValue ?? []).map { item in columns.map { item.objectValue?[$0.1]?.display ?? "" } }
        return Self.columns(columns.map(\.0), rows)
    }

    /// `key  value` lines.
    static func keyValue(_ rows: [[String]]) -> String {
        let width = rows.map { $0[0].count }.max() ?? 0
        return rows.map { $0[0].padding(width) + "  " + $0[1] }.joined(separator: "\n") + "\n"
    }

    static func user(_ value: JSONValue?) -> String {
        let o = value?.objectValue ?? [:]
        return keyValue(["id", "email", "name", "role", "status", "environment"].map { [$0, o[$0]?.display ?? ""] })
    }

    static func environment(_ value: JSONValue?) -> String {
        let o = value?.objectValue ?? [:]
        return keyValue(["id", "name", "domains", "administrators", "warnings", "revision"].map { [$0, o[$0]?.display ?? ""] })
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

extension JSONValue {
    /// A value as a table cell: strings bare, lists comma-separated.
    var display: String {
        switch self {
        case .string(let s): s
        case .null: ""
        case .array(let items): items.map(\.display).joined(separator: ", ")
        default: jsonText
        }
    }
}

extension Table {
    static func organisation(_ value: JSONValue?) -> String {
        let o = value?.objectValue ?? [:]
        return keyValue(["id", "name", "kvk_number", "country", "status", "environment"].map { [$0, o[$0]?.display ?? ""] })
    }

    static func membership(_ value: JSONValue?) -> String {
        let o = value?.objectValue ?? [:]
        return keyValue(["organisation", "user", "role", "status"].map { [$0, o[$0]?.display ?? ""] })
    }

    static func partnership(_ value: JSONValue?) -> String {
        let o = value?.objectValue ?? [:]
        return keyValue(["id", "proposer", "partner", "status"].map { [$0, o[$0]?.display ?? ""] })
    }
}
