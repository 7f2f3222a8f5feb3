/// Caps on the shape of one JSON document (R-SEC-2). Together with the frame
/// limit they bound the work and memory one request frame can cause: parsing is
/// linear in the frame's size whatever its shape, and a document over a cap is
/// refused with `bad_request` as soon as the cap is passed (the connection stays
/// usable). `hello` reports them; `Protocol/README.md` documents them.
public struct JSONLimits: Sendable, Equatable {
    /// Deepest nesting of objects and arrays (a recursion bomb in a small frame).
    public var maximumDepth: Int
    /// Most keys in one object. No operation takes more than a dozen params;
    /// `check.bulk` items have three.
    public var maximumKeysPerObject: Int
    /// Most elements in one array (`check.bulk` takes up to 1,000 checks).
    public var maximumArrayElements: Int
    /// Most values in the whole document, counting every key and every value
    /// (containers included), like Jackson's token count: what bounds the
    /// parse time of a frame of many small values. The largest request, a
    /// `check.bulk` of 1,000 checks, has about 7,000.
    public var maximumValues: Int
    /// Longest string (key or value), in UTF-8 bytes after unescaping. Names,
    /// emails, tokens, cursors and passwords are far shorter. (Numbers have a
    /// fixed cap: `JSONParser.maximumNumberLength` characters.)
    public var maximumStringBytes: Int

    public init(
        maximumDepth: Int = 32,
        maximumKeysPerObject: Int = 1024,
        maximumArrayElements: Int = 4096,
        maximumValues: Int = 8192,
        maximumStringBytes: Int = 65_536
    ) {
        self.maximumDepth = maximumDepth
        self.maximumKeysPerObject = maximumKeysPerObject
        self.maximumArrayElements = maximumArrayElements
        self.maximumValues = maximumValues
        self.maximumStringBytes = maximumStringBytes
    }

    /// For requests: the defaults above.
    public static let requests = JSONLimits()

    /// For JSON this program wrote itself or received from its own server
    /// (replies, stored audit details): only the depth is bounded, generously.
    public static let trusted = JSONLimits(
        maximumDepth: 64, maximumKeysPerObject: .max, maximumArrayElements: .max, maximumValues: .max, maximumStringBytes: .max
    )
}
