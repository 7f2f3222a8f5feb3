import CLibPQ

extension PostgresConnection {
    /// Streams rows into `COPY … FROM STDIN` (text format) and returns the number
    /// of rows copied. `produce` fills the buffer it is given (tab-separated
    /// columns, `\N` for NULL, one row per line) and returns false once it has
    /// nothing more; the buffer is sent after each call, so memory stays bounded.
    @discardableResult
    public func copy(_ sql: String, _ produce: (inout [UInt8]) throws -> Bool) throws -> Int {
        do {
            let start = PQexec(raw, sql)
            let status = PQresultStatus(start)
            PQclear(start)
            guard status == PGRES_COPY_IN else {
                throw DatabaseError(kind: .other, sqlState: nil, message: "COPY did not start: \(String(cString: PQerrorMessage(raw)))")
            }
            var buffer: [UInt8] = []
            buffer.reserveCapacity(1 << 20)
            var failure: (any Error)?
            while true {
                buffer.removeAll(keepingCapacity: true)
                let more: Bool
                do { more = try produce(&buffer) } catch { failure = error; break }
                if !buffer.isEmpty {
                    let sent = buffer.withUnsafeBufferPointer { bytes in
                        bytes.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                            PQputCopyData(raw, $0, Int32(bytes.count))
                        }
                    }
                    if sent != 1 { break }
                }
                if !more { break }
            }
            PQputCopyEnd(raw, failure == nil ? nil : "cancelled by the producer")
            var rows = 0
            var error: (any Error)? = failure
            while let result = PQgetResult(raw) {
                defer { PQclear(result) }
                if PQresultStatus(result) == PGRES_COMMAND_OK {
                    rows = Int(String(cString: PQcmdTuples(result))) ?? 0
                } else if error == nil {
                    do { try check(result) } catch let failed { error = failed }
                }
            }
            if let error { throw error }
            return rows
        }
    }
}
