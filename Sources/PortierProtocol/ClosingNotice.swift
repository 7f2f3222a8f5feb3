import NIOCore

/// The unsolicited frame a draining server sends on a connection before closing
/// it (R-OPS-1): `{"closing": {"last_id": ID-or-null, "reason": "restart"}}`.
///
/// Every request up to `lastID` was read and has been answered before this
/// frame; nothing sent after it was read. A client resends, on a new
/// connection, each request it sent after `lastID` (safe for changes too: the
/// server never saw them).
public struct ClosingNotice: Sendable, Equatable {
    /// The last request the server read on the connection; nil when it read none.
    public var lastID: RequestID?
    /// Why: `restart` (a graceful stop or a restart; reconnect and resend).
    public var reason: String

    public init(lastID: RequestID?, reason: String = "restart") {
        self.lastID = lastID
        self.reason = reason
    }

    /// The notice in a frame's object, or nil when the frame is something else.
    public static func decode(_ frame: JSONObject) -> ClosingNotice? {
        guard case .object(let body)? = frame["closing"] else { return nil }
        guard case .string(let reason)? = body["reason"] else { return nil }
        return ClosingNotice(lastID: RequestID(body["last_id"]), reason: reason)
    }
}

extension ByteBuffer {
    /// Writes `notice` as one frame.
    public mutating func writeClosingFrame(_ notice: ClosingNotice) {
        writeFrame { out in
            out.writeStaticString("{\"closing\":{\"last_id\":")
            if let id = notice.lastID { out.writeJSON(id.json) } else { out.writeStaticString("null") }
            out.writeStaticString(",\"reason\":")
            out.writeJSONString(notice.reason)
            out.writeStaticString("}}")
        }
    }
}
