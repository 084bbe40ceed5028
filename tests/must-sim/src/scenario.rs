//! What a simulated MUST process does, chosen per vehicle.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OfferOutcome {
    Approved,
    Rejected,
    /// The "scoring company failed" hook (changelog v2).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InsurerResult {
    pub insurer: String,
    pub outcome: OfferOutcome,
    #[serde(default)]
    pub premium: f64,
    #[serde(default)]
    pub error_code: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Scenario {
    /// Sent in `documents/types-required`.
    pub required_types: Vec<u32>,
    /// Each insurer's answer, in the order MUST sends them.
    pub insurers: Vec<InsurerResult>,
    /// The first document association fails (`upload-failed` for the first type).
    pub upload_failed_once: bool,
    /// `contract/update-completed` arrives before `documents/upload-completed`.
    pub contract_hook_first: bool,
    /// Document recognition sends a pre-filled contract (changelog v3).
    pub prefilled_contract: bool,
    /// Every hook is delivered twice (same `webhook-id`).
    pub duplicate_hooks: bool,
    /// Scoring ends with the `failed` hook and this code.
    pub fail_with: Option<u32>,
    /// How many files the issued policy has.
    pub policy_files: u32,
    /// Each hook is delivered this many times at the same instant (0 or 1: once), to race our intake.
    pub concurrent_deliveries: u32,
    /// MUST is down for this vehicle: `init` answers 503 until the scenario is set again without it.
    pub unavailable: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            required_types: vec![11, 12],
            insurers: vec![InsurerResult {
                insurer: "ingostrah".into(),
                outcome: OfferOutcome::Approved,
                premium: 17847.29,
                error_code: None,
            }],
            upload_failed_once: false,
            contract_hook_first: false,
            prefilled_contract: false,
            duplicate_hooks: false,
            fail_with: None,
            policy_files: 1,
            concurrent_deliveries: 1,
            unavailable: false,
        }
    }
}
