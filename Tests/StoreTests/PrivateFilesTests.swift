// Issue 12 item 2 (docs/DESIGN.md §1): the state directory is 0700 and the store files 0600.
import Foundation
import Glibc
import Testing
@testable import Store

@Suite("Private files (issue 12 item 2)")
struct PrivateFilesTests {
    private func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
    }

    @Test("item 2: a new state directory is 0700 and a new store 0600, whatever the umask")
    func freshDirectoryAndStore() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-modes-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let directory = root + "/a/state"
        #expect(try PrivateFiles.prepareStateDirectory(directory).isEmpty)
        #expect(mode(directory) == 0o700)
        let store = try StateStore(path: directory + "/" + StateStore.fileName)
        _ = store
        for suffix in PrivateFiles.storeSuffixes {
            if let found = mode(directory + "/" + StateStore.fileName + suffix) { #expect(found == 0o600, "\(suffix)") }
        }
    }

    @Test("item 2: a looser existing directory and store files are tightened, each with a warning")
    func looseFilesAreTightened() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deltahook-modes-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let path = directory + "/" + StateStore.fileName
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        #expect(FileManager.default.createFile(atPath: path + "-wal", contents: nil))
        #expect(chmod(directory, 0o755) == 0 && chmod(path, 0o644) == 0 && chmod(path + "-wal", 0o666) == 0)
        let warnings = try PrivateFiles.prepareStateDirectory(directory)
        #expect(warnings.count == 3, "\(warnings)")
        #expect(warnings.contains { $0.contains("was 0755; tightened to 0700") })
        #expect(mode(directory) == 0o700 && mode(path) == 0o600 && mode(path + "-wal") == 0o600)
        #expect(try PrivateFiles.prepareStateDirectory(directory).isEmpty, "already private: no warning")
    }
}
