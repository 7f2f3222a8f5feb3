import ArgumentParser
import Foundation
import PortierClient
import PortierProtocol

/// `--limit`, `--cursor` and `--all` of every list command (§11).
struct PageOptions: ParsableArguments {
    @Option(help: "Rows per page (1–1000; the server's default is 100).") var limit: Int?
    @Option(help: "Continue after this cursor (next_cursor of the previous page).") var cursor: String?
    @Flag(help: "Follow next_cursor to the end and print every row.") var all = false
}

extension ConnectionOptions {
    /// Runs a list operation: one page (and how to ask for the next), or with
    /// `--all` every page, followed by `next_cursor`; `keep` filters rows on the
    /// client. `--json` prints `{key: rows, next_cursor?}`.
    func runList(
        _ op: String, actor: String? = nil, params: JSONObject = [:], key: String, page: PageOptions, followAll: Bool = false,
        keep: (JSONValue) -> Bool = { _ in true }, table: ([JSONValue], String?) -> String
    ) async throws {
        let client = try await connect()
        defer { Task { await client.close() } }
        var rows: [JSONValue] = []
        var cursor = page.cursor
        var next: String?
        repeat {
            var p = params
            if let limit = page.limit { p["limit"] = .int(Int64(limit)) }
            if let cursor { p["cursor"] = .string(cursor) }
            let result = try result(of: await exchange(client, op, actor: actor, params: p))
            rows += (result[key]?.arrayValue ?? []).filter(keep)
            next = result["next_cursor"]?.stringValue
            cursor = next
        } while (page.all || followAll) && next != nil
        if json {
            var out: JSONObject = [key: .array(rows)]
            if let next { out["next_cursor"] = .string(next) }
            print(JSONValue.object(out).jsonText)
        } else {
            print(table(rows, next), terminator: "")
            // On standard error: a pipe gets the rows alone.
            if let next { FileHandle.standardError.write(Data("portier: more rows: --cursor \(next) (or --all)\n".utf8)) }
        }
    }
}

extension Table {
    /// Rows as columns (`runList` says on standard error how to ask for the next page).
    static func rows(_ rows: [JSONValue], next: String?, _ columns: [(String, String)]) -> String {
        objects(.array(rows), columns)
    }
}
