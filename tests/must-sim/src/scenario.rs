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

/// A call of ours that changes something at MUST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Call {
    Init,
    Documents,
    Contract,
    PaymentLink,
    PaymentInvoice,
    PaymentOrder,
}

impl Call {
    pub const ALL: [Call; 6] = [
        Call::Init,
        Call::Documents,
        Call::Contract,
        Call::PaymentLink,
        Call::PaymentInvoice,
        Call::PaymentOrder,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Call::Init => "init",
            Call::Documents => "documents",
            Call::Contract => "contract",
            Call::PaymentLink => "payment-link",
            Call::PaymentInvoice => "payment-invoice",
            Call::PaymentOrder => "payment-order",
        }
    }
}

/// How a call ends for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// The answer comes after the caller's timeout.
    Timeout,
    /// HTTP 502, as a gateway in front of MUST answers.
    BadGateway,
    /// The connection is closed without an answer.
    Reset,
}

/// One call that fails, after (or before) MUST has acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallFault {
    pub call: Call,
    pub failure: Failure,
    /// MUST acts on the request before the failure (the change is made); otherwise it does not.
    pub committed: bool,
}

/// The policy files MUST serves, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyFile {
    /// A PDF with a few bytes before its `%PDF-` header, served as `application/octet-stream`
    /// (MUST's documents say nothing of file types: the least helpful reading).
    Pdf,
    /// A scan: a JPEG, served as `image/jpeg`.
    Jpeg,
    /// A ZIP of documents, served as `application/octet-stream`.
    Zip,
    /// A file of this many megabytes (over any sane cap).
    Huge(u32),
    /// The download answers 404.
    Missing,
}

/// How `policy-issued` names the policy's files: MUST's documents use several names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyNaming {
    /// `documents: [{blobId, name}]`.
    #[default]
    Documents,
    /// One `policyBlobId` (`fleet-api.md`).
    PolicyBlobId,
    /// One `policyLink` on MUST's API host (`UI-Api.md`).
    PolicyLink,
    /// A `policyLink` on another host.
    ForeignLink,
    /// No file at all.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Scenario {
    /// MUST as its seed alone describes it: an agent with one insurer, so no hook names an
    /// insurer (changelog v2 adds them only for several), a per-insurer error comes as `failed`,
    /// and a payment request names none (one that does is refused with 403).
    pub seed_only: bool,
    /// Sent in `documents/types-required`.
    pub required_types: Vec<u32>,
    /// How `policy-issued` names the policy's files.
    pub policy_named_by: PolicyNaming,
    /// The invoice named by `paymentInvoiceDownloadKey`, for `GET /download?key=` (`UI-Api.md`),
    /// instead of `paymentInvoiceBlobId`.
    pub invoice_by_download_key: bool,
    /// Each insurer's answer, in the order MUST sends them.
    pub insurers: Vec<InsurerResult>,
    /// The first this many document associations fail with the same `upload-failed` body.
    pub upload_failures: u32,
    /// Document recognition pre-fills the contract (changelog v3) and says so with
    /// `contract/update-completed`, `recognition_delay_ms` after the documents are accepted
    /// (after `upload-completed`). Off: no recognition, so no pre-filled contract ever comes.
    pub prefilled_contract: bool,
    /// How long recognition takes.
    pub recognition_delay_ms: u64,
    /// Recognition finishes only once our contract card has arrived, and overwrites it.
    pub late_recognition: bool,
    /// Every hook is delivered twice.
    pub duplicate_hooks: bool,
    /// Scoring ends with the `failed` hook and this code.
    pub fail_with: Option<u32>,
    /// The vehicle's first this many processes end `failed` with 1205 ("registration for
    /// legal entities temporarily unavailable").
    pub unavailable_first: u32,
    /// The customer does not pay in time: after the payment link, MUST stops the process
    /// with `failed` 1603 ("payment deadline expired, process stopped", changelog v2).
    pub payment_deadline_passes: bool,
    /// How many files the issued policy has, and what they are.
    pub policy_files: u32,
    pub policy_file: PolicyFile,
    /// `policy-issued` comes before `policy-is-paid`.
    pub issued_before_paid: bool,
    /// Insurers whose payment link or invoice MUST refuses with 403, though they approved.
    pub payment_refused: Vec<String>,
    /// MUST refuses every payment request with HTTP 400 and this error code.
    pub payment_rejected_with: Option<u32>,
    /// This insurer drops out right after its payment link went out (a `company-failed` hook,
    /// code 1602); MUST delivers that link once more, late, just before the next insurer's.
    pub drops_out_after_link: Option<String>,
    /// Each hook is delivered this many times at the same instant (0 or 1: once), to race our intake.
    pub concurrent_deliveries: u32,
    /// This vehicle's hooks carry a `webhook-id` (MUST's documents define none).
    pub webhook_ids: bool,
    /// MUST throttles this vehicle: `init` answers 429 until the scenario is set again without it.
    pub throttled: bool,
    /// Calls that fail, committed or not: each listed fault fails one call of its kind, in
    /// the order listed.
    pub faults: Vec<CallFault>,
    /// The licence category MUST's helper finds for this vehicle.
    pub license_category: String,
    /// Whether the vehicle must be driven with a trailer (a tractor unit).
    pub trailer_required: bool,
    /// MUST cannot identify the vehicle: its helpers answer 400 with code 1203.
    pub unknown_vehicle: bool,
    /// Every helper call about this vehicle fails so (after the token is checked).
    pub helper_failure: Option<Failure>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seed_only: false,
            policy_named_by: PolicyNaming::Documents,
            invoice_by_download_key: false,
            required_types: vec![11, 12],
            insurers: vec![InsurerResult {
                insurer: "ingostrah".into(),
                outcome: OfferOutcome::Approved,
                premium: 17847.29,
                error_code: None,
            }],
            upload_failures: 0,
            prefilled_contract: true,
            recognition_delay_ms: 1_000,
            late_recognition: false,
            duplicate_hooks: false,
            fail_with: None,
            unavailable_first: 0,
            payment_deadline_passes: false,
            policy_files: 1,
            policy_file: PolicyFile::Pdf,
            issued_before_paid: false,
            payment_refused: Vec::new(),
            drops_out_after_link: None,
            payment_rejected_with: None,
            concurrent_deliveries: 1,
            webhook_ids: false,
            throttled: false,
            faults: Vec::new(),
            license_category: "C".into(),
            trailer_required: false,
            unknown_vehicle: false,
            helper_failure: None,
        }
    }
}
