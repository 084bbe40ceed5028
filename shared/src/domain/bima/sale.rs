//! BIMA's sale form (`POST /api/v1/policies/sale`): `json_forma_prodazhi` plus
//! `status_payment`, as typed structs whose JSON is exactly the seed's shape.
//!
//! The seed prints the form in broken fragments; the structure reconstructed
//! here (and in `examples/bima/sale.seed.json`) follows these choices:
//! - `app_dict` and `specialist_id` belong to `policy` (the fragment closes
//!   `policy` right after `specialist_id`);
//! - `third_party` is a list beside `policy` inside `json_forma_prodazhi`;
//! - `status_payment` sits beside `json_forma_prodazhi` ("one request: the
//!   sale form plus the payment status");
//! - `tp_identity` carries `series` twice ("A", then "B"); JSON parsers keep
//!   the last, so one `series` field, "B" in the example;
//! - `doc_number`, `issue_institution`, `issue_date` complete that identity
//!   document; `phone_numbers`, `emails`, `postal_address` belong to the person;
//! - the second postal address has no `area` or `post_code`: optional fields
//!   are left out, not sent empty;
//! - every number is a string, as in the seed; `"1659"` is BIMA's internal
//!   country sync id, kept as data.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRequest {
    pub json_forma_prodazhi: SaleForm,
    pub status_payment: PaymentStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Paid,
    NotPaid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleForm {
    pub policy: SalePolicy,
    pub third_party: Vec<ThirdParty>,
}

/// A catalogue entry of BIMA's (product, program).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueRef {
    pub sync_id: String,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncId {
    pub sync_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppValue {
    pub app: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalePolicy {
    pub start_date: String,
    pub product: CatalogueRef,
    pub program: CatalogueRef,
    pub app_dict: Vec<AppValue>,
    pub specialist_id: SyncId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThirdParty {
    pub last_name: String,
    pub first_name: String,
    pub patronymic: String,
    pub birth_date: String,
    /// `"0"` male, `"1"` female (the seed's example is `"0"`).
    pub gender: String,
    /// Tajik INN: 9 digits.
    pub tin: String,
    /// `"0"`: not a legal entity.
    pub sign_legal: String,
    /// `"1"`: a natural person.
    pub sign_person: String,
    pub tp_resident: Vec<Residency>,
    pub tp_identity: Vec<IdentityDocument>,
    pub phone_numbers: Vec<PhoneNumber>,
    pub emails: Vec<Email>,
    pub postal_address: Vec<PostalAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Residency {
    /// `"0"` resident, `"1"` non-resident.
    pub sign: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityDocument {
    pub doc_type: SyncId,
    pub series: String,
    pub doc_number: String,
    pub issue_institution: String,
    pub issue_date: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    /// `"0"` mobile, `"1"` other.
    #[serde(rename = "type")]
    pub kind: String,
    pub country: String,
    /// 9 digits, without +992.
    pub phone_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddress {
    /// `"0"` registration, `"1"` actual.
    pub address_type: String,
    pub country: String,
    pub town: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub street: String,
    pub street_nr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_flat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_code: Option<String>,
}
