//! The bank's truck-eOSAGO events: what it sends us, and what we send back.

use serde::{Deserialize, Serialize};

pub use crate::domain::bank::{ArchivedFile, ErrorReport, PendingFile};
use crate::domain::ids::{CustomerId, ProcessId};
use crate::domain::must::hook::DocumentProblem;
use crate::domain::must::insurer::Insurer;
use crate::domain::validation::{is_digits, is_iso_date, is_safe_object_key, FieldError, Problems};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PartyKind {
    Individual,
    LegalEntity,
    Entrepreneur,
}

/// A person or company in the contract: the policyholder (MUST calls it `insurer`) or the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    pub kind: PartyKind,
    /// Full name of a person, or the company's name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Registration city (FIAS id or name) of an owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_city: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vehicle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plates: Option<String>,
    pub has_trailer: bool,
    /// The diagnostic card (MUST's `technicalInspection`, `UI-Api.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technical_inspection: Option<TechnicalInspection>,
    /// Standard cargo (`isStandardCargo`); absent: not said, MUST's recognition or default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_standard_cargo: Option<bool>,
    /// High-risk cargo (`isHighRiskCargo`); absent: not said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_high_risk_cargo: Option<bool>,
}

/// A vehicle's diagnostic card, as MUST's application shows it (dates as the bank gives them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TechnicalInspection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    pub number: String,
    pub start_on: String,
    pub end_on: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    pub full_name: String,
    pub birth_date: String,
    pub license_number: String,
    pub license_issued_on: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTerms {
    /// First day of cover, `YYYY-MM-DD`.
    pub start_on: String,
    pub term_months: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PaymentMethod {
    /// A card payment link for the customer.
    Link,
    /// An invoice, paid by a legal entity with a payment order (changelog v3).
    Invoice,
}

/// Who chooses the insurer once the offers are in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InsurerChoice {
    /// polis: the preferred insurer once it approves, else the cheapest approved offer.
    #[default]
    Auto,
    /// The bank: polis waits after the offers for `truck.insurer-chosen`.
    Bank,
}

impl InsurerChoice {
    pub fn is_auto(&self) -> bool {
        *self == InsurerChoice::Auto
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentChoice {
    pub method: PaymentMethod,
    /// Take this insurer's offer as soon as it is approved; otherwise the cheapest approved one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_insurer: Option<Insurer>,
}

/// A document the bank stored in S3 for MUST (MUST's `typeId`: STS 11, PTS 12, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankDocument {
    pub type_id: u32,
    pub s3_key: String,
    pub file_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruckPolicyRequest {
    pub request_id: ProcessId,
    pub customer_id: CustomerId,
    pub policyholder: Party,
    pub owner: Party,
    pub vehicle: Vehicle,
    /// Named drivers; empty means any driver (MUST's `isRestricted: false`).
    #[serde(default)]
    pub drivers: Vec<Driver>,
    pub policy: PolicyTerms,
    pub payment: PaymentChoice,
    pub documents: Vec<BankDocument>,
    /// Who chooses the insurer after the offers (`auto` when absent).
    #[serde(default, skip_serializing_if = "InsurerChoice::is_auto")]
    pub choice: InsurerChoice,
}

/// What the bank sends us about truck policies, on the bank-events queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TruckBankEvent {
    #[serde(rename = "truck.policy-requested")]
    PolicyRequested {
        #[serde(rename = "eventId")]
        event_id: String,
        #[serde(flatten)]
        request: Box<TruckPolicyRequest>,
    },
    #[serde(rename = "truck.documents-corrected", rename_all = "camelCase")]
    DocumentsCorrected { event_id: String, request_id: ProcessId, documents: Vec<BankDocument> },
    /// The scan of a paid invoice's payment order (legal entities): `insurer`, the invoice's,
    /// is needed once a chosen insurer dropped out and its invoice was withdrawn.
    #[serde(rename = "truck.payment-order", rename_all = "camelCase")]
    PaymentOrder {
        event_id: String,
        request_id: ProcessId,
        document: BankDocument,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        insurer: Option<Insurer>,
    },
    /// The bank's choice among the approved offers (a request with `"choice": "bank"`), and
    /// how to pay: a link, or for a legal entity an invoice (changelog v3); the request's
    /// `payment.method` when absent.
    #[serde(rename = "truck.insurer-chosen", rename_all = "camelCase")]
    InsurerChosen {
        event_id: String,
        request_id: ProcessId,
        insurer: Insurer,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payment_method: Option<PaymentMethod>,
    },
    /// The corrected sections of a request MUST refused with a code the customer can
    /// correct (after `truck.correction-needed`): the request continues with a new MUST process.
    #[serde(rename = "truck.request-corrected", rename_all = "camelCase")]
    RequestCorrected {
        event_id: String,
        request_id: ProcessId,
        #[serde(flatten)]
        correction: Box<RequestCorrection>,
    },
}

/// Sections of a [`TruckPolicyRequest`] the bank sends again: each one given replaces the
/// request's whole section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCorrection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policyholder: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle: Option<Vehicle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drivers: Option<Vec<Driver>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyTerms>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<Vec<BankDocument>>,
}

impl RequestCorrection {
    fn is_empty(&self) -> bool {
        *self == RequestCorrection::default()
    }

    /// The request with the corrected sections, checked whole: every problem names its field.
    pub fn applied_to(&self, request: &TruckPolicyRequest) -> Result<TruckPolicyRequest, Vec<FieldError>> {
        let mut corrected = request.clone();
        let c = self.clone();
        corrected.policyholder = c.policyholder.unwrap_or(corrected.policyholder);
        corrected.owner = c.owner.unwrap_or(corrected.owner);
        corrected.vehicle = c.vehicle.unwrap_or(corrected.vehicle);
        corrected.drivers = c.drivers.unwrap_or(corrected.drivers);
        corrected.policy = c.policy.unwrap_or(corrected.policy);
        corrected.documents = c.documents.unwrap_or(corrected.documents);
        let mut p = Problems::default();
        corrected.check(&mut p);
        p.into_result().map(|()| corrected)
    }
}

impl TruckBankEvent {
    pub fn event_id(&self) -> &str {
        match self {
            TruckBankEvent::PolicyRequested { event_id, .. }
            | TruckBankEvent::DocumentsCorrected { event_id, .. }
            | TruckBankEvent::PaymentOrder { event_id, .. }
            | TruckBankEvent::InsurerChosen { event_id, .. }
            | TruckBankEvent::RequestCorrected { event_id, .. } => event_id,
        }
    }

    pub fn process_id(&self) -> &ProcessId {
        match self {
            TruckBankEvent::PolicyRequested { request, .. } => &request.request_id,
            TruckBankEvent::DocumentsCorrected { request_id, .. }
            | TruckBankEvent::PaymentOrder { request_id, .. }
            | TruckBankEvent::InsurerChosen { request_id, .. }
            | TruckBankEvent::RequestCorrected { request_id, .. } => request_id,
        }
    }

    /// Every problem with the event's content, each naming its field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut p = Problems::default();
        p.check(
            !self.event_id().is_empty() && self.event_id().len() <= 128,
            "eventId",
            "required, at most 128 characters",
        );
        match self {
            TruckBankEvent::PolicyRequested { request, .. } => request.check(&mut p),
            TruckBankEvent::DocumentsCorrected { documents, request_id, .. } => {
                p.check(!documents.is_empty(), "documents", "at least one document");
                check_documents(&mut p, "documents", documents, request_id);
            }
            TruckBankEvent::PaymentOrder { document, request_id, .. } => {
                check_documents(&mut p, "document", std::slice::from_ref(document), request_id)
            }
            // The insurer's code is checked by its type; whether it approved, and whether an
            // invoice fits the policyholder, only the process knows (it answers with
            // `truck.request-invalid` naming the field).
            TruckBankEvent::InsurerChosen { .. } => {}
            // Each section is checked with the rest of the request, by the process.
            TruckBankEvent::RequestCorrected { correction, request_id, .. } => {
                p.check(
                    !correction.is_empty(),
                    "correction",
                    "at least one corrected section: policyholder, owner, vehicle, drivers, policy or documents",
                );
                if let Some(documents) = &correction.documents {
                    p.check(!documents.is_empty(), "documents", "at least one document");
                    check_documents(&mut p, "documents", documents, request_id);
                }
            }
        }
        p.into_result()
    }
}

/// Where the bank puts a request's documents in the documents bucket: a request may
/// name only its own (a key elsewhere could hand us another customer's scan).
pub fn documents_prefix(request_id: &ProcessId) -> String {
    format!("inbound/{request_id}/")
}

fn check_documents(p: &mut Problems, field: &str, documents: &[BankDocument], request_id: &ProcessId) {
    let prefix = documents_prefix(request_id);
    for (i, d) in documents.iter().enumerate() {
        let at = if field == "document" { field.to_owned() } else { format!("{field}[{i}]") };
        p.check(d.type_id > 0, format!("{at}.typeId"), "a MUST document type id");
        p.check(
            is_safe_object_key(&d.s3_key) && d.s3_key.starts_with(&prefix),
            format!("{at}.s3Key"),
            format!("a key under {prefix} without empty, '.' or '..' segments"),
        );
        p.check(
            !d.file_name.is_empty() && d.file_name.len() <= 255 && !d.file_name.contains(['/', '\\']),
            format!("{at}.fileName"),
            "1 to 255 characters, no slashes",
        );
    }
}

fn check_party(p: &mut Problems, at: &str, party: &Party) {
    p.check(!party.name.trim().is_empty() && party.name.len() <= 300, format!("{at}.name"), "required");
    match party.kind {
        PartyKind::LegalEntity => {
            p.check(
                party.inn.as_deref().is_some_and(|i| is_digits(i, &[10])),
                format!("{at}.inn"),
                "a legal entity needs a 10-digit INN",
            );
            p.check(
                party.kpp.as_deref().is_some_and(|k| is_digits(k, &[9])),
                format!("{at}.kpp"),
                "a legal entity needs a 9-digit KPP",
            );
        }
        PartyKind::Individual | PartyKind::Entrepreneur => {
            if let Some(inn) = &party.inn {
                p.check(is_digits(inn, &[12]), format!("{at}.inn"), "a person's INN has 12 digits");
            }
        }
    }
    if let Some(phone) = &party.phone {
        let digits = phone.strip_prefix('+').unwrap_or(phone);
        p.check(is_digits(digits, &[11]), format!("{at}.phone"), "11 digits, optionally after '+'");
    }
    if let Some(email) = &party.email {
        let ok = email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'));
        p.check(ok, format!("{at}.email"), "an e-mail address");
    }
}

impl TruckPolicyRequest {
    fn check(&self, p: &mut Problems) {
        check_party(p, "policyholder", &self.policyholder);
        check_party(p, "owner", &self.owner);
        let v = &self.vehicle;
        p.check(v.vin.is_some() || v.plates.is_some(), "vehicle", "needs a vin or plates");
        if let Some(vin) = &v.vin {
            p.check(
                vin.len() == 17 && vin.bytes().all(|b| b.is_ascii_alphanumeric()),
                "vehicle.vin",
                "17 letters or digits",
            );
        }
        if let Some(plates) = &v.plates {
            p.check((6..=12).contains(&plates.chars().count()), "vehicle.plates", "6 to 12 characters");
        }
        if let Some(card) = &v.technical_inspection {
            let at = "vehicle.technicalInspection";
            let number = card.number.trim();
            p.check(!number.is_empty() && number.len() <= 30, format!("{at}.number"), "1 to 30 characters");
            if let Some(series) = &card.series {
                p.check(series.len() <= 10, format!("{at}.series"), "at most 10 characters");
            }
            p.check(is_iso_date(&card.start_on), format!("{at}.startOn"), "YYYY-MM-DD");
            p.check(is_iso_date(&card.end_on), format!("{at}.endOn"), "YYYY-MM-DD");
            if is_iso_date(&card.start_on) && is_iso_date(&card.end_on) {
                p.check(card.start_on <= card.end_on, format!("{at}.endOn"), "not before startOn");
            }
        }
        for (i, d) in self.drivers.iter().enumerate() {
            p.check(!d.full_name.trim().is_empty(), format!("drivers[{i}].fullName"), "required");
            p.check(is_iso_date(&d.birth_date), format!("drivers[{i}].birthDate"), "YYYY-MM-DD");
            p.check(
                !d.license_number.trim().is_empty() && d.license_number.len() <= 20,
                format!("drivers[{i}].licenseNumber"),
                "1 to 20 characters",
            );
            p.check(is_iso_date(&d.license_issued_on), format!("drivers[{i}].licenseIssuedOn"), "YYYY-MM-DD");
        }
        p.check(is_iso_date(&self.policy.start_on), "policy.startOn", "YYYY-MM-DD");
        p.check((1..=12).contains(&self.policy.term_months), "policy.termMonths", "1 to 12 months");
        p.check(
            self.payment.method == PaymentMethod::Link || self.policyholder.kind == PartyKind::LegalEntity,
            "payment.method",
            "invoice payment is for legal entities only",
        );
        p.check(
            self.choice.is_auto() || self.payment.preferred_insurer.is_none(),
            "payment.preferredInsurer",
            "with \"choice\": \"bank\" the bank names the insurer in truck.insurer-chosen",
        );
        p.check(!self.documents.is_empty(), "documents", "at least one document");
        check_documents(p, "documents", &self.documents, &self.request_id);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OfferOutcome {
    Approved,
    Rejected,
    Failed,
}

/// What we tell the bank about a truck process, on the bank-notifications queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum TruckNotice {
    #[serde(rename = "truck.documents-to-fix")]
    DocumentsToFix { problems: Vec<DocumentProblem> },
    #[serde(rename = "truck.offer")]
    Offer {
        insurer: Insurer,
        outcome: OfferOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        premium: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorReport>,
    },
    #[serde(rename = "truck.payment-link-ready")]
    PaymentLinkReady { insurer: Insurer, url: String },
    /// The chosen insurer dropped out after its link or invoice reached the bank: it must
    /// not be paid. Sent before any other insurer's link or invoice.
    #[serde(rename = "truck.payment-link-withdrawn")]
    PaymentLinkWithdrawn {
        insurer: Insurer,
        /// The link withdrawn (a link payment).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// The invoice withdrawn (an invoice payment).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        invoice_files: Vec<ArchivedFile>,
        /// Why: the insurer's rejection or failure, as MUST reported it.
        reason: String,
    },
    #[serde(rename = "truck.invoice-ready")]
    InvoiceReady {
        insurer: Insurer,
        files: Vec<ArchivedFile>,
        /// Invoice files MUST has that could not be archived yet.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pending_files: Vec<PendingFile>,
    },
    #[serde(rename = "truck.paid")]
    Paid,
    /// The insurer issued the policy. Sent again when files pending at first are archived later.
    #[serde(rename = "truck.policy-issued")]
    PolicyIssued {
        insurer: Option<Insurer>,
        policy_number: Option<String>,
        files: Vec<ArchivedFile>,
        /// Policy files not archived yet (the policy is issued all the same; a replay finishes them).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pending_files: Vec<PendingFile>,
        /// The draft documents MUST issued before payment, archived.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        drafts: Vec<ArchivedFile>,
    },
    #[serde(rename = "truck.rejected")]
    Rejected,
    #[serde(rename = "truck.failed")]
    Failed { error: ErrorReport },
    /// A call that changes something at MUST ended without a known outcome; the process
    /// waits for an operator (or MUST's next hook) to say whether it happened.
    #[serde(rename = "truck.needs-review")]
    NeedsReview { effect: String, since_ms: u64, detail: String },
    /// The bank's own event could not be accepted; every bad field is named.
    #[serde(rename = "truck.request-invalid")]
    RequestInvalid { rejected_event_id: String, problems: Vec<FieldError> },
    /// The process has waited for the bank's `truck.insurer-chosen` longer than it should
    /// (sent once per wait): the approved offers to choose from.
    #[serde(rename = "truck.choice-reminder")]
    ChoiceReminder { offers: Vec<ApprovedOffer>, waiting_since_ms: u64 },
    /// MUST stopped the process with a code the customer can correct, before any payment:
    /// `truck.request-corrected` with the corrected section continues the request.
    #[serde(rename = "truck.correction-needed")]
    CorrectionNeeded {
        /// The `truck.policy-requested` field (or section) the code concerns.
        field: String,
        error: ErrorReport,
        /// How many more corrections polis takes for this request.
        corrections_left: u32,
    },
    /// MUST stopped the process as temporarily unavailable, before any payment: polis starts a
    /// new one after `TemporaryErrorRetryMinutes` (retry `retry` of at most `retries`).
    #[serde(rename = "truck.retry-scheduled")]
    RetryScheduled { error: ErrorReport, retry: u32, retries: u32 },
    /// The payment deadline passed and MUST stopped the process (error 1603): no policy, and
    /// no other insurer is asked for a payment.
    #[serde(rename = "truck.expired")]
    Expired { insurer: Option<Insurer>, error: ErrorReport },
}

/// An approved offer the bank may choose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedOffer {
    pub insurer: Insurer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premium: Option<f64>,
}

impl TruckNotice {
    /// The notice's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            TruckNotice::DocumentsToFix { .. } => "truck.documents-to-fix",
            TruckNotice::Offer { .. } => "truck.offer",
            TruckNotice::PaymentLinkReady { .. } => "truck.payment-link-ready",
            TruckNotice::PaymentLinkWithdrawn { .. } => "truck.payment-link-withdrawn",
            TruckNotice::InvoiceReady { .. } => "truck.invoice-ready",
            TruckNotice::Paid => "truck.paid",
            TruckNotice::PolicyIssued { .. } => "truck.policy-issued",
            TruckNotice::Rejected => "truck.rejected",
            TruckNotice::Failed { .. } => "truck.failed",
            TruckNotice::NeedsReview { .. } => "truck.needs-review",
            TruckNotice::RequestInvalid { .. } => "truck.request-invalid",
            TruckNotice::ChoiceReminder { .. } => "truck.choice-reminder",
            TruckNotice::CorrectionNeeded { .. } => "truck.correction-needed",
            TruckNotice::RetryScheduled { .. } => "truck.retry-scheduled",
            TruckNotice::Expired { .. } => "truck.expired",
        }
    }
}

/// The envelope of every notification: who it is about, and an id the bank can de-duplicate by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TruckNotification {
    pub event_id: String,
    pub process_id: ProcessId,
    #[serde(flatten)]
    pub notice: TruckNotice,
}
