// The quarantine excerpt of a rejected record (docs/DESIGN.md §2 rule 16): at most 4 KB, never a broken character.
import Core
import Testing

@Suite("RejectedRecord")
struct RejectedRecordTests {
    @Test("rule 16: the excerpt keeps 4096 bytes when the cut falls between characters")
    func cutOnABoundaryKeepsEverything() {
        let text = String(repeating: "é", count: 3000)          // 2 bytes each: 4096 is a boundary
        let record = RejectedRecord(id: nil, position: "$[0]", reason: "test", rawExcerpt: text)
        #expect(record.rawExcerpt.utf8.count == 4096)
    }

    @Test("rule 16: a character cut in half is dropped whole")
    func cutInsideACharacterDropsIt() {
        let text = "ab" + String(repeating: "€", count: 2000)  // 2 + 3n bytes: 4096 falls inside a "€"
        let record = RejectedRecord(id: nil, position: "$[0]", reason: "test", rawExcerpt: text)
        #expect(record.rawExcerpt.utf8.count == 4096 - 2)
        #expect(record.rawExcerpt.hasSuffix("€"))
        let short = RejectedRecord(id: "7", position: "$[1]", reason: "test", rawExcerpt: "{}")
        #expect(short.rawExcerpt == "{}" && short.key == "7")
    }
}
