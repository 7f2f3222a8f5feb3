/// Appends COPY text-format fields to a byte buffer without building strings
/// per value (a seed writes tens of millions of fields).
struct RowBuffer {
    var bytes: [UInt8]

    mutating func field(_ value: Int64) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var v = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[count] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                count += 1
            } while v > 0
            for i in stride(from: count - 1, through: 0, by: -1) { bytes.append(raw[i]) }
        }
    }

    mutating func field(_ value: Int) { field(Int64(value)) }

    /// Text known to hold no tab, newline or backslash.
    mutating func field(_ value: String) { bytes.append(contentsOf: value.utf8) }

    mutating func null() { bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "N")]) }

    mutating func tab() { bytes.append(UInt8(ascii: "\t")) }
    mutating func end() { bytes.append(UInt8(ascii: "\n")) }

    /// One row from fields already separated by the caller's closure.
    mutating func row(_ fields: (inout RowBuffer) -> Void) {
        fields(&self)
        end()
    }
}
