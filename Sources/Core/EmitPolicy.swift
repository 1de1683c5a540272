// Which content changes an object turns into `updated` events (`emit`, docs/DESIGN.md §2 rule 5a). In Core
// because the config carries it and the engine applies it; one type serves both.

/// `emit` of an object.
public enum EmitPolicy: String, Sendable, Hashable, CaseIterable {
    /// Every content-hash change emits `updated`, even when no field of the normalized model changed (`changes`
    /// is then `{}` and `changed_fields` names the provider fields that did). The default: native webhooks fire
    /// on any update too.
    case anyChange = "any_change"
    /// Only changes visible in the normalized model emit; a change confined to other provider fields updates
    /// the snapshot silently.
    case modelChanges = "model_changes"
}
