import Crypto
import Testing

@Suite("RFC 3986 percent-encoding")
struct PercentEncodingTests {
    @Test("only A-Za-z0-9-._~ stay; everything else, non-ASCII letters included, is %XX of its UTF-8")
    func encodesEverythingOutsideUnreserved() {
        #expect(PercentEncoding.rfc3986("AZaz09-._~") == "AZaz09-._~")
        #expect(PercentEncoding.rfc3986("2024-05-01T00:00:00Z") == "2024-05-01T00%3A00%3A00Z")
        #expect(PercentEncoding.rfc3986("a b+c/d^e=f") == "a%20b%2Bc%2Fd%5Ee%3Df")
        // Foundation's .alphanumerics would let these through raw.
        #expect(PercentEncoding.rfc3986("café") == "caf%C3%A9")
        #expect(PercentEncoding.rfc3986("数据") == "%E6%95%B0%E6%8D%AE")
    }
}
