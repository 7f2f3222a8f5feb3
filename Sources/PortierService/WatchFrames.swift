import PortierDomain
import PortierProtocol
import PortierStorage

/// The `event` object of a watch frame (R-WAT-1, docs/rules.md): one committed
/// transaction's permission changes in one environment.
///
/// Every change has `kind`; the other fields depend on it (`Protocol/` has a
/// schema per kind):
///
/// | kind | fields |
/// | --- | --- |
/// | `user.role_changed` | `user`, `role`, `previous_role`, `status` |
/// | `user.status_changed` | `user`, `status`, `previous_status`, `role` |
/// | `user.removed` | `user`, `role`, `status` (the last ones) |
/// | `membership.added` | `organisation`, `user`, `role`, `status` |
/// | `membership.accepted` | `organisation`, `user`, `role`, `status`, `previous_status` |
/// | `membership.role_changed` | `organisation`, `user`, `role`, `previous_role`, `status` |
/// | `membership.removed` | `organisation`, `user`, `role`, `status` (the last ones) |
/// | `organisation.added` / `organisation.removed` | `organisation`, `status` |
/// | `organisation.status_changed` | `organisation`, `status`, `previous_status` |
/// | `partnership.activated` / `partnership.ended` | `partnership`, `partner` (the other environment), `status`, `previous_status` |
enum WatchFrames {
    /// The JSON text of one `event` object.
    static func event(environment: EnvironmentID, revision: Int64, changes: ArraySlice<PermissionEventRecord>) -> [UInt8] {
        let object: JSONObject = [
            "environment": .string(environment.description),
            "revision": .string(RevisionToken(environment: environment, revision: revision).description),
            "changes": .array(changes.map { .object(change($0)) }),
        ]
        return Array(JSONValue.object(object).jsonText.utf8)
    }

    /// One change, with the fields of its kind.
    static func change(_ e: PermissionEventRecord) -> JSONObject {
        var o: JSONObject = ["kind": .string(e.kind)]
        if let p = e.partnership { o["partnership"] = .string(p.description) }
        if let p = e.partner { o["partner"] = .string(p.description) }
        if let org = e.organisation { o["organisation"] = .string(org.description) }
        if let user = e.user { o["user"] = .string(user.description) }
        if let role = e.role { o["role"] = .string(role) }
        if let status = e.status { o["status"] = .string(status) }
        if let previous = e.previous {
            o[e.kind.hasSuffix(".role_changed") ? "previous_role" : "previous_status"] = .string(previous)
        }
        return o
    }

    /// The events of a batch as frames: one per (environment, revision), in order.
    static func frames(_ events: [PermissionEventRecord]) -> [(environment: EnvironmentID, revision: Int64, event: [UInt8])] {
        var frames: [(EnvironmentID, Int64, [UInt8])] = []
        var start = events.startIndex
        while start < events.endIndex {
            let head = events[start]
            var end = start + 1
            while end < events.endIndex, events[end].environment == head.environment, events[end].revision == head.revision { end += 1 }
            frames.append((head.environment, head.revision, event(environment: head.environment, revision: head.revision, changes: events[start..<end])))
            start = end
        }
        return frames
    }
}
