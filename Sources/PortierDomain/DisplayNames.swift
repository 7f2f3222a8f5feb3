/// Names that people read: users' and organisations' (R-SEC-3).
public enum DisplayNames {
    /// Refuses what would let a name lie on a screen or in a mail: control
    /// characters (Unicode Cc: newlines, tabs, escapes, NUL) and bidirectional
    /// embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069). Trims
    /// spaces at either end and folds runs of spaces inside into one. At most
    /// 200 characters; `allowEmpty` for a person's optional name.
    public static func validate(_ raw: String, field: String = "name", allowEmpty: Bool) throws(InvalidInput) -> String {
        for scalar in raw.unicodeScalars {
            if scalar.properties.generalCategory == .control {
                throw .badRequest("\(field) must not contain control characters (U+\(hex(scalar)))")
            }
            if (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value) {
                throw .badRequest("\(field) must not contain bidirectional formatting characters (U+\(hex(scalar)))")
            }
        }
        let name = raw.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        guard allowEmpty || !name.isEmpty else { throw .badRequest("\(field) must not be empty") }
        guard name.count <= 200 else { throw .badRequest("\(field) is longer than 200 characters") }
        return name
    }

    private static func hex(_ scalar: Unicode.Scalar) -> String {
        let digits = String(scalar.value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
