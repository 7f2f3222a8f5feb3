import PortierDomain
import PortierProtocol

/// A list's page request (§11): `limit` (1–1000, default 100) and `cursor`,
/// the id of the previous page's last row. Every list is ordered by that id
/// (environment, then number), so a cursor only says where the page starts:
/// the queries stay within the request's own scope, and a forged cursor
/// reaches nothing more. Cursors are plain ids, so any instance continues
/// another's. Rows are fetched with one extra, which only says there is more.
struct PageRequest: Sendable {
    static let defaultLimit = 100
    /// The keys a page request reads from `params`.
    static let keys: Set<String> = ["limit", "cursor"]
    static let maximumLimit = 1000

    let limit: Int
    let after: ScopedID?

    /// Reads `limit` and `cursor`; a cursor that is not an id of `kind` is `bad_request`.
    init(_ params: JSONObject, kind: EntityKind) throws {
        limit = Int(try params.optionalInt("limit", in: 1...Int64(Self.maximumLimit)) ?? Int64(Self.defaultLimit))
        if let text = try params.optionalString("cursor") {
            guard let id = ScopedID(text, kind: kind) else { throw PortierError.badRequest("params.cursor is not a cursor from this list") }
            after = id
        } else {
            after = nil
        }
    }

    /// How many rows to fetch: one more than the page.
    var fetch: Int { limit + 1 }

    /// Whether `id` comes after the cursor in the list's order.
    func isAfterCursor(_ id: ScopedID) -> Bool {
        guard let after else { return true }
        return (id.environment.raw, id.raw) > (after.environment.raw, after.raw)
    }

    /// The result object: up to `limit` of `rows` (ordered, after the cursor,
    /// fetched with `fetch`) under `key`, and `next_cursor` when there are more.
    func result<Row>(_ key: String, _ rows: [Row], id: (Row) -> ScopedID, json: (Row) throws -> JSONValue) rethrows -> JSONObject {
        let page = rows.prefix(limit)
        var result: JSONObject = [key: .array(try page.map(json))]
        if rows.count > limit, let last = page.last { result["next_cursor"] = .string(id(last).description) }
        return result
    }
}

extension Sequence {
    /// The rows after `page`'s cursor in id order, at most `page.fetch` of them.
    func page(_ page: PageRequest, id: (Element) -> ScopedID) -> [Element] {
        Array(filter { page.isAfterCursor(id($0)) }
            .sorted { (id($0).environment.raw, id($0).raw) < (id($1).environment.raw, id($1).raw) }
            .prefix(page.fetch))
    }
}
