//! Insurers that score a MUST process (changelog v2): `"ingostrah"`, `"renaissance"`, ...

use std::fmt;

use serde::{Deserialize, Serialize};

/// An insurer code as MUST spells it. Kept open: a new insurer is data, not a release.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Insurer(String);

impl Insurer {
    pub fn parse(raw: &str) -> Result<Insurer, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Insurer(raw.to_owned()))
        } else {
            Err(format!("insurer code must be 1 to 32 of a-z, 0-9, '-', '_': {raw:?}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The insurer of an agent MUST names no insurer for: the seed's hooks (changelog v2
    /// names insurers only "if the agent can use several") come from an agent with one
    /// insurer, the one of the bank's contract with MUST. Its offer is kept, and told to the
    /// bank, under this code; a payment request for it names no insurer.
    pub fn unnamed() -> Insurer {
        Insurer(UNNAMED.to_owned())
    }

    /// Whether MUST named no insurer (see [`Insurer::unnamed`]).
    pub fn is_unnamed(&self) -> bool {
        self.0 == UNNAMED
    }
}

/// The code of [`Insurer::unnamed`]: no insurer MUST works with has it.
const UNNAMED: &str = "must-agent";

impl TryFrom<String> for Insurer {
    type Error = String;
    fn try_from(raw: String) -> Result<Insurer, String> {
        Insurer::parse(&raw)
    }
}

impl From<Insurer> for String {
    fn from(i: Insurer) -> String {
        i.0
    }
}

impl fmt::Display for Insurer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
