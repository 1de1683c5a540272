// RFC 3986 percent-encoding, byte by byte. It lives in the lowest module because OAuth 1.0a signatures
// (RFC 5849 §3.6) need exactly this form, and every provider adapter builds query components with it too.
// (Foundation's `addingPercentEncoding(withAllowedCharacters: .alphanumerics)` is not the same thing: that set
// includes non-ASCII letters, which would go out unencoded.)

public enum PercentEncoding {
    /// Every byte of the UTF-8 outside the unreserved set `A-Za-z0-9-._~` becomes `%XX` (upper-case hex).
    public static func rfc3986(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                out.append(byte)
            default:
                out.append(contentsOf: [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
