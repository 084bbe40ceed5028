//! What applying an event to a process did.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The process changed; new effects (if any) were appended to its outbox.
    Advanced,
    /// The same event was applied before: a redelivery, nothing to do.
    Duplicate,
    /// Nothing to do: an event that no longer matters.
    Ignored(String),
    /// The event contradicts the process; it must be kept for a person to look at.
    Rejected(String),
}
