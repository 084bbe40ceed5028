//! The bank's `loan.issued` event: the loan and its borrower, validated on arrival.

use serde::{Deserialize, Serialize};

use crate::domain::ids::CustomerId;
use crate::domain::validation::{is_digits, is_iso_date, FieldError, Problems};

use crate::domain::bima::api::CalcRequest;
use crate::domain::bima::sale::{
    AppValue, CatalogueRef, Email, IdentityDocument, PaymentStatus, PhoneNumber, PostalAddress, Residency,
    SaleForm, SalePolicy, SaleRequest, SyncId, ThirdParty,
};

/// BIMA's sync id of Tajikistan (internal to BIMA; not an ISO code).
pub const TAJIKISTAN: &str = "1659";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueItem {
    pub sync_id: String,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Gender {
    Male,
    Female,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityDoc {
    pub doc_type_sync_id: String,
    pub series: String,
    pub number: String,
    pub issued_by: String,
    pub issued_on: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PhoneKind {
    Mobile,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phone {
    pub kind: PhoneKind,
    /// 9 digits after +992.
    pub number: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AddressKind {
    Registration,
    Actual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub kind: AddressKind,
    pub town: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub street: String,
    pub house: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Borrower {
    pub last_name: String,
    pub first_name: String,
    pub patronymic: String,
    pub birth_date: String,
    pub gender: Gender,
    /// Tajik INN: 9 digits.
    pub tin: String,
    pub resident: bool,
    pub identity_documents: Vec<IdentityDoc>,
    pub phones: Vec<Phone>,
    #[serde(default)]
    pub emails: Vec<String>,
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoanIssued {
    pub event_id: String,
    /// The loan's number: one loan, one policy.
    pub loan_number: String,
    pub customer_id: CustomerId,
    /// In somoni, digits only.
    pub sum: String,
    pub term_months: u16,
    pub start_date: String,
    pub product: CatalogueItem,
    pub program: CatalogueItem,
    pub specialist_id: String,
    /// Percent, digits only.
    pub discount: String,
    /// BIMA's `PERIODICITY_RBA`, e.g. "Страхование на весь период".
    pub periodicity: String,
    pub payment_status: PaymentStatus,
    pub borrower: Borrower,
}

/// The bank's loan events, on the bank-events queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum LoanBankEvent {
    #[serde(rename = "loan.issued")]
    Issued(Box<LoanIssued>),
}

fn filled(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max
}

impl LoanIssued {
    /// Every problem with the event, each naming its field.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut p = Problems::default();
        p.check(filled(&self.event_id, 128), "eventId", "required, at most 128 characters");
        p.check(
            (1..=32).contains(&self.loan_number.len())
                && self.loan_number.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "loanNumber",
            "1 to 32 letters, digits or '-'",
        );
        let sum_ok = (1..=12).contains(&self.sum.len())
            && self.sum.bytes().all(|b| b.is_ascii_digit())
            && !self.sum.trim_start_matches('0').is_empty();
        p.check(sum_ok, "sum", "a positive whole amount, digits only");
        p.check((1..=360).contains(&self.term_months), "termMonths", "1 to 360 months");
        p.check(is_iso_date(&self.start_date), "startDate", "YYYY-MM-DD");
        for (field, item) in [("product", &self.product), ("program", &self.program)] {
            p.check(filled(&item.sync_id, 64), format!("{field}.syncId"), "required");
            p.check(filled(&item.code, 64), format!("{field}.code"), "required");
            p.check(filled(&item.name, 200), format!("{field}.name"), "required");
        }
        p.check(filled(&self.specialist_id, 64), "specialistId", "required");
        p.check(is_digits(&self.discount, &[1, 2, 3]), "discount", "a whole percent, digits only");
        p.check(filled(&self.periodicity, 200), "periodicity", "required");
        self.borrower.check(&mut p);
        p.into_result()
    }

    /// `POST /api/v1/premium/calc`.
    pub fn calc_request(&self) -> CalcRequest {
        CalcRequest {
            program: self.program.code.clone(),
            credit_sum: self.sum.clone(),
            credit_periods: self.term_months.to_string(),
            birth_date: self.borrower.birth_date.clone(),
        }
    }

    /// `POST /api/v1/policies/sale`: the sale form and the payment status.
    pub fn sale_request(&self) -> SaleRequest {
        let catalogue = |c: &CatalogueItem| CatalogueRef {
            sync_id: c.sync_id.clone(),
            code: c.code.clone(),
            name: c.name.clone(),
        };
        let app = |app: &str, value: &str| AppValue { app: app.into(), value: value.into() };
        SaleRequest {
            json_forma_prodazhi: SaleForm {
                policy: SalePolicy {
                    start_date: self.start_date.clone(),
                    product: catalogue(&self.product),
                    program: catalogue(&self.program),
                    app_dict: vec![
                        app("CREDIT_NUMBER", &self.loan_number),
                        app("CREDIT_SUM", &self.sum),
                        app("CREDIT_PERIODS", &self.term_months.to_string()),
                        app("PERIODICITY_RBA", &self.periodicity),
                        app("DISCOUNT", &self.discount),
                    ],
                    specialist_id: SyncId { sync_id: self.specialist_id.clone() },
                },
                third_party: vec![self.borrower.third_party()],
            },
            status_payment: self.payment_status,
        }
    }
}

impl Borrower {
    fn check(&self, p: &mut Problems) {
        for (field, value) in
            [("lastName", &self.last_name), ("firstName", &self.first_name), ("patronymic", &self.patronymic)]
        {
            p.check(filled(value, 100), format!("borrower.{field}"), "required, at most 100 characters");
        }
        p.check(is_iso_date(&self.birth_date), "borrower.birthDate", "YYYY-MM-DD");
        p.check(is_digits(&self.tin, &[9]), "borrower.tin", "a Tajik INN has 9 digits");
        p.check(!self.identity_documents.is_empty(), "borrower.identityDocuments", "at least one");
        for (i, d) in self.identity_documents.iter().enumerate() {
            let at = format!("borrower.identityDocuments[{i}]");
            p.check(filled(&d.doc_type_sync_id, 32), format!("{at}.docTypeSyncId"), "required");
            p.check(filled(&d.series, 10), format!("{at}.series"), "required");
            p.check(filled(&d.number, 20), format!("{at}.number"), "required");
            p.check(filled(&d.issued_by, 200), format!("{at}.issuedBy"), "required");
            p.check(is_iso_date(&d.issued_on), format!("{at}.issuedOn"), "YYYY-MM-DD");
        }
        p.check(!self.phones.is_empty(), "borrower.phones", "at least one");
        for (i, phone) in self.phones.iter().enumerate() {
            p.check(
                is_digits(&phone.number, &[9]),
                format!("borrower.phones[{i}].number"),
                "9 digits after +992",
            );
        }
        for (i, email) in self.emails.iter().enumerate() {
            let ok = email.len() <= 254
                && email
                    .split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'));
            p.check(ok, format!("borrower.emails[{i}]"), "an e-mail address");
        }
        p.check(!self.addresses.is_empty(), "borrower.addresses", "at least one");
        for (i, a) in self.addresses.iter().enumerate() {
            let at = format!("borrower.addresses[{i}]");
            p.check(filled(&a.town, 100), format!("{at}.town"), "required");
            p.check(filled(&a.street, 200), format!("{at}.street"), "required");
            p.check(filled(&a.house, 20), format!("{at}.house"), "required");
            if let Some(code) = &a.post_code {
                p.check(is_digits(code, &[6]), format!("{at}.postCode"), "6 digits");
            }
        }
    }

    fn third_party(&self) -> ThirdParty {
        ThirdParty {
            last_name: self.last_name.clone(),
            first_name: self.first_name.clone(),
            patronymic: self.patronymic.clone(),
            birth_date: self.birth_date.clone(),
            gender: match self.gender {
                Gender::Male => "0",
                Gender::Female => "1",
            }
            .into(),
            tin: self.tin.clone(),
            sign_legal: "0".into(),
            sign_person: "1".into(),
            tp_resident: vec![Residency {
                sign: if self.resident { "0" } else { "1" }.into(),
                country: TAJIKISTAN.into(),
            }],
            tp_identity: self
                .identity_documents
                .iter()
                .map(|d| IdentityDocument {
                    doc_type: SyncId { sync_id: d.doc_type_sync_id.clone() },
                    series: d.series.clone(),
                    doc_number: d.number.clone(),
                    issue_institution: d.issued_by.clone(),
                    issue_date: d.issued_on.clone(),
                })
                .collect(),
            phone_numbers: self
                .phones
                .iter()
                .map(|ph| PhoneNumber {
                    kind: match ph.kind {
                        PhoneKind::Mobile => "0",
                        PhoneKind::Other => "1",
                    }
                    .into(),
                    country: TAJIKISTAN.into(),
                    phone_number: ph.number.clone(),
                })
                .collect(),
            emails: self.emails.iter().map(|e| Email { email: e.clone() }).collect(),
            postal_address: self
                .addresses
                .iter()
                .map(|a| PostalAddress {
                    address_type: match a.kind {
                        AddressKind::Registration => "0",
                        AddressKind::Actual => "1",
                    }
                    .into(),
                    country: TAJIKISTAN.into(),
                    town: a.town.clone(),
                    area: a.area.clone(),
                    street: a.street.clone(),
                    street_nr: a.house.clone(),
                    street_flat: a.flat.clone(),
                    post_code: a.post_code.clone(),
                })
                .collect(),
        }
    }

    /// Where BIMA sends the print link: the first e-mail and the first mobile, when given.
    pub fn contacts(&self) -> (Option<String>, Option<String>) {
        let email = self.emails.first().cloned();
        let phone = self.phones.iter().find(|p| p.kind == PhoneKind::Mobile).map(|p| p.number.clone());
        (email, phone)
    }
}
