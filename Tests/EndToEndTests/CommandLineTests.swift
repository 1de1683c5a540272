// The command line parser (docs/DESIGN.md §7): options are declared once per command, so they may stand before
// or after the action, unknown ones get a did-you-mean, options of another action are refused, and `help`
// prints the same declarations the parser uses.
import Foundation
import Store
import Testing

@Suite("Command line")
struct CommandLineTests {
    /// A state directory with an (empty) store in it.
    private func stateDirectory() throws -> ScratchDirectory {
        let directory = try ScratchDirectory("cli")
        _ = try StateStore(path: directory.path + "/" + StateStore.fileName)
        return directory
    }

    @Test("options before the action: events --since 1h list works")
    func optionsBeforeTheAction() throws {
        let directory = try stateDirectory()
        let before = try runDeltahook(["events", "--since", "1h", "list", "--state-directory", directory.path,
                                       "--config", "/nonexistent.json"])
        #expect(before.status == 0, "\(before.stderr)")
        let after = try runDeltahook(["events", "list", "--since=1h", "--state-directory", directory.path,
                                      "--config", "/nonexistent.json"])
        #expect(after.status == 0 && after.stdout == before.stdout, "\(after.stderr)")
        let global = try runDeltahook(["--config", "/nonexistent.json", "deliveries", "--limit", "5", "list",
                                       "--state-directory", directory.path])
        #expect(global.status == 0, "\(global.stderr)")
    }

    @Test("unknown options get a did-you-mean, another action's options and missing values are usage errors (64)")
    func mistakesExit64() throws {
        let directory = try stateDirectory()
        let typo = try runDeltahook(["events", "list", "--sinc", "1h", "--state-directory", directory.path])
        #expect(typo.status == 64 && typo.stderr.contains("unknown option --sinc; did you mean --since?"), "\(typo.stderr)")
        let misplaced = try runDeltahook(["deliveries", "show", "evt_x", "--failed", "--state-directory", directory.path])
        #expect(misplaced.status == 64 && misplaced.stderr.contains("--failed does not apply here"), "\(misplaced.stderr)")
        let missing = try runDeltahook(["events", "list", "--since"])
        #expect(missing.status == 64 && missing.stderr.contains("--since needs a value"), "\(missing.stderr)")
        let stray = try runDeltahook(["status", "extra", "--state-directory", directory.path])
        #expect(stray.status == 64 && stray.stderr.contains("unexpected argument \"extra\""), "\(stray.stderr)")
    }

    @Test("help and the usage line come from the declarations")
    func helpFromDeclarations() throws {
        let help = try runDeltahook(["help", "poll-once"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("usage: deltahook poll-once --connection C [--object O] [--dry-run]"), "\(help.stdout)")
        #expect(help.stdout.contains("--connection C  the connection id from the config (required)"), "\(help.stdout)")
        let events = try runDeltahook(["events", "--help"])
        #expect(events.stdout.contains("--since TIME"), "\(events.stdout)")
    }
}
