// `deltahook secrets generate`: a fresh Standard Webhooks signing secret (whsec_ + base64 of 32 random bytes
// from OpenSSL's CSPRNG), to put in a credential file and give to the receiver.
import Core
import Crypto

struct SecretsCommand: Command {
    static let name = "secrets"
    static let summary = "Generate a webhook signing secret (whsec_…)"
    static let arguments = "generate"
    static let options: [OptionSpec] = [.flag("--json", "print {\"secret\": \"whsec_…\"}")]
    static let details = """
        Prints a new secret on stdout and nothing else, e.g. to store it as a systemd credential:
          deltahook secrets generate > /etc/deltahook/credentials/crm-webhook-secret
        For rotation, list the new secret first and keep the old one in the subscriber's "secrets" until
        the receiver has switched: every configured secret signs each request.
        """

    let json: Bool
    let context: CommandContext

    init(arguments: inout ArgumentList, context: CommandContext) throws {
        json = arguments.flag("--json")
        guard let sub = arguments.nextPositional() else { throw UsageError("missing subcommand (generate)") }
        guard sub == "generate" else { throw UsageError("unknown subcommand \"\(sub)\" (expected generate)") }
        self.context = context
    }

    func run() async throws -> Int32 {
        let secret = try StandardWebhooks.generateSecret()
        if json {
            context.output.out(JSONValue.object(JSONObject([("secret", .string(secret))])).serialized() + "\n")
        } else {
            context.output.out(secret + "\n")
        }
        return ExitCode.ok
    }
}
