//! MUST's hooks: the catalogue of paths, and their bodies parsed leniently.
//!
//! MUST's Swagger is not public, so every field name we read is declared
//! here, once, with the aliases we accept. The raw JSON is always kept next
//! to the parsed form; unknown fields are data, not errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::files::{files_or_blob_ids, MustFile};
use super::insurer::Insurer;
use crate::domain::ids::BlobId;
use crate::domain::validation::without_values;

/// Every hook MUST sends us, one Lambda each, at `/api/hooks/{scoringId}/<path>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    DocumentsTypesRequired,
    DocumentsUploadFailed,
    DocumentsUploadCompleted,
    ContractUpdateCompleted,
    Started,
    Approved,
    Rejected,
    DraftIssued,
    PaymentLinkGenerated,
    PaymentInvoiceGenerated,
    PolicyIsPaid,
    PolicyIssued,
    Failed,
    /// Changelog v2's "scoring company failed" hook. MUST has not published its path;
    /// ours is `company-failed` until MUST says otherwise: change [`HookKind::path`]
    /// and the route in `template.yaml` together (the agreement test holds them equal).
    CompanyFailed,
}

impl HookKind {
    pub const ALL: [HookKind; 14] = [
        HookKind::DocumentsTypesRequired,
        HookKind::DocumentsUploadFailed,
        HookKind::DocumentsUploadCompleted,
        HookKind::ContractUpdateCompleted,
        HookKind::Started,
        HookKind::Approved,
        HookKind::Rejected,
        HookKind::DraftIssued,
        HookKind::PaymentLinkGenerated,
        HookKind::PaymentInvoiceGenerated,
        HookKind::PolicyIsPaid,
        HookKind::PolicyIssued,
        HookKind::Failed,
        HookKind::CompanyFailed,
    ];

    /// The path after `/api/hooks/{scoringId}/`, as MUST calls it.
    pub fn path(self) -> &'static str {
        match self {
            HookKind::DocumentsTypesRequired => "documents/types-required",
            HookKind::DocumentsUploadFailed => "documents/upload-failed",
            HookKind::DocumentsUploadCompleted => "documents/upload-completed",
            HookKind::ContractUpdateCompleted => "contract/update-completed",
            HookKind::Started => "started",
            HookKind::Approved => "approved",
            HookKind::Rejected => "rejected",
            HookKind::DraftIssued => "draft-issued",
            HookKind::PaymentLinkGenerated => "payment-link-generated",
            HookKind::PaymentInvoiceGenerated => "payment-invoice-generated",
            HookKind::PolicyIsPaid => "policy-is-paid",
            HookKind::PolicyIssued => "policy-issued",
            HookKind::Failed => "failed",
            HookKind::CompanyFailed => "company-failed",
        }
    }

    /// The hook served at `/api/hooks/{scoringId}/<path>`.
    pub fn from_path(path: &str) -> Option<HookKind> {
        HookKind::ALL.into_iter().find(|k| k.path() == path)
    }
}

/// A hook body we could not act on; the raw body is quarantined with this reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HookParseError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is JSON but not an object")]
    NotAnObject,
    #[error("field {field}: {problem}")]
    Field { field: &'static str, problem: String },
}

/// One document MUST reports as missing or rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentProblem {
    pub type_id: u32,
    pub reason: Option<String>,
}

/// What each hook tells us, with only the fields we act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HookPayload {
    DocumentsTypesRequired {
        type_ids: Vec<u32>,
    },
    DocumentsUploadFailed {
        problems: Vec<DocumentProblem>,
    },
    DocumentsUploadCompleted,
    ContractUpdateCompleted {
        /// The contract MUST pre-filled from recognised documents, when it sends one.
        prefilled_contract: Option<Value>,
    },
    Started {
        insurers: Vec<Insurer>,
    },
    Approved {
        insurer: Insurer,
        premium: Option<f64>,
    },
    Rejected {
        insurer: Insurer,
        reason: Option<String>,
    },
    DraftIssued {
        insurer: Option<Insurer>,
        #[serde(alias = "blob_ids", deserialize_with = "files_or_blob_ids")]
        files: Vec<MustFile>,
    },
    PaymentLinkGenerated {
        insurer: Option<Insurer>,
        url: String,
    },
    /// `files` may be empty: MUST named no invoice file polis knows how to read.
    PaymentInvoiceGenerated {
        insurer: Option<Insurer>,
        #[serde(alias = "blob_ids", deserialize_with = "files_or_blob_ids")]
        files: Vec<MustFile>,
    },
    /// The insurer, when MUST names it (changelog v2 names one in every hook about it).
    PolicyIsPaid {
        insurer: Option<Insurer>,
    },
    /// `files` may be empty: MUST named no policy file polis knows how to read.
    PolicyIssued {
        insurer: Option<Insurer>,
        policy_number: Option<String>,
        #[serde(alias = "blob_ids", deserialize_with = "files_or_blob_ids")]
        files: Vec<MustFile>,
    },
    Failed {
        code: u32,
        message: Option<String>,
    },
    CompanyFailed {
        insurer: Insurer,
        code: u32,
        message: Option<String>,
    },
}

/// Field names (and the aliases we accept) of MUST's hook bodies, in MUST's camelCase.
mod fields {
    pub const DOCUMENT_TYPES: &[&str] = &["documentTypes", "typeIds", "types", "requiredDocuments"];
    pub const DOCUMENTS: &[&str] = &["documents", "failedDocuments", "errors"];
    pub const MISSING_TYPES: &[&str] = &["missingTypeIds", "missingTypes"];
    pub const TYPE_ID: &[&str] = &["typeId", "documentTypeId", "id"];
    pub const REASON: &[&str] = &["reason", "message", "errorMessage"];
    pub const CONTRACT: &[&str] = &["contract"];
    pub const INSURERS: &[&str] = &["insuranceCompanies"];
    pub const INSURER: &[&str] = &["insuranceCompany"];
    pub const PREMIUM: &[&str] = &["writtenPremium", "premium"];
    pub const BLOB_IDS: &[&str] = &["blobIds", "documents", "files", "policyBlobIds"];
    pub const BLOB_ID: &[&str] = &["blobId", "policyBlobId", "paymentInvoiceBlobId"];
    pub const DOWNLOAD_KEY: &[&str] = &["paymentInvoiceDownloadKey"];
    pub const FILE_LINK: &[&str] = &["policyLink"];
    pub const URL: &[&str] = &["paymentLink", "paymentUrl", "url", "link"];
    pub const POLICY_NUMBER: &[&str] = &["policyNumber", "number"];
    pub const ERROR_CODE: &[&str] = &["errorCode", "code"];
    pub const ERROR_MESSAGE: &[&str] = &["errorMessage", "message"];
}

/// A JSON object read by alias lists.
struct Body<'a>(&'a serde_json::Map<String, Value>);

impl<'a> Body<'a> {
    fn get(&self, names: &[&str]) -> Option<&'a Value> {
        names.iter().find_map(|n| self.0.get(*n)).filter(|v| !v.is_null())
    }

    fn string(&self, names: &[&str]) -> Option<String> {
        match self.get(names)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn required<T>(
        &self,
        names: &'static [&'static str],
        read: impl FnOnce(&'a Value) -> Option<T>,
        expected: &str,
    ) -> Result<T, HookParseError> {
        let field = names[0];
        match self.get(names) {
            None => Err(HookParseError::Field { field, problem: "missing".into() }),
            Some(v) => read(v)
                .ok_or_else(|| HookParseError::Field { field, problem: format!("expected {expected}") }),
        }
    }

    fn insurer(&self) -> Result<Insurer, HookParseError> {
        self.required(fields::INSURER, as_insurer, "an insurer code string")
    }

    fn optional_insurer(&self) -> Result<Option<Insurer>, HookParseError> {
        match self.get(fields::INSURER) {
            None => Ok(None),
            Some(_) => self.insurer().map(Some),
        }
    }

    /// Blob ids given as a list of ids, a list of `{blobId}` objects, or one `blobId` field.
    fn blob_ids(&self) -> Result<Vec<BlobId>, HookParseError> {
        let mut ids = Vec::new();
        if let Some(list) = self.get(fields::BLOB_IDS) {
            let items = list.as_array().ok_or(HookParseError::Field {
                field: fields::BLOB_IDS[0],
                problem: "expected a list".into(),
            })?;
            for item in items {
                let raw = match item {
                    Value::Object(o) => Body(o).string(fields::BLOB_ID),
                    other => scalar_string(other),
                };
                ids.push(parse_blob_id(raw)?);
            }
        }
        if let Some(single) = self.string(fields::BLOB_ID) {
            let id = parse_blob_id(Some(single))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Every file the hook names, by any of the names MUST's documents use: blobs, a
    /// download key, a link. None is not an error: the process goes on without the file.
    fn files(&self) -> Result<Vec<MustFile>, HookParseError> {
        let mut files: Vec<MustFile> = self.blob_ids()?.into_iter().map(MustFile::from).collect();
        if let Some(key) = self.get(fields::DOWNLOAD_KEY) {
            let key = key
                .as_str()
                .filter(|k| !k.trim().is_empty() && k.len() <= 1024 && !k.chars().any(char::is_control))
                .ok_or(HookParseError::Field {
                    field: fields::DOWNLOAD_KEY[0],
                    problem: "expected a download key of at most 1024 characters".into(),
                })?;
            files.push(MustFile::DownloadKey { key: key.to_owned() });
        }
        if let Some(link) = self.get(fields::FILE_LINK) {
            let url = link.as_str().filter(|u| is_web_url(u)).ok_or(HookParseError::Field {
                field: fields::FILE_LINK[0],
                problem: "expected an http(s) URL".into(),
            })?;
            files.push(MustFile::Link { url: url.to_owned() });
        }
        Ok(files)
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_blob_id(raw: Option<String>) -> Result<BlobId, HookParseError> {
    let raw =
        raw.ok_or(HookParseError::Field { field: fields::BLOB_ID[0], problem: "expected a blob id".into() })?;
    BlobId::parse(&raw)
        .map_err(|e| HookParseError::Field { field: fields::BLOB_ID[0], problem: e.to_string() })
}

fn as_insurer(v: &Value) -> Option<Insurer> {
    v.as_str().and_then(|s| Insurer::parse(s).ok())
}

fn as_u32(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn type_id_of(v: &Value) -> Option<u32> {
    match v {
        Value::Object(o) => Body(o).get(fields::TYPE_ID).and_then(as_u32),
        other => as_u32(other),
    }
}

impl HookPayload {
    /// The hook this payload came with.
    pub fn kind(&self) -> HookKind {
        match self {
            HookPayload::DocumentsTypesRequired { .. } => HookKind::DocumentsTypesRequired,
            HookPayload::DocumentsUploadFailed { .. } => HookKind::DocumentsUploadFailed,
            HookPayload::DocumentsUploadCompleted => HookKind::DocumentsUploadCompleted,
            HookPayload::ContractUpdateCompleted { .. } => HookKind::ContractUpdateCompleted,
            HookPayload::Started { .. } => HookKind::Started,
            HookPayload::Approved { .. } => HookKind::Approved,
            HookPayload::Rejected { .. } => HookKind::Rejected,
            HookPayload::DraftIssued { .. } => HookKind::DraftIssued,
            HookPayload::PaymentLinkGenerated { .. } => HookKind::PaymentLinkGenerated,
            HookPayload::PaymentInvoiceGenerated { .. } => HookKind::PaymentInvoiceGenerated,
            HookPayload::PolicyIsPaid { .. } => HookKind::PolicyIsPaid,
            HookPayload::PolicyIssued { .. } => HookKind::PolicyIssued,
            HookPayload::Failed { .. } => HookKind::Failed,
            HookPayload::CompanyFailed { .. } => HookKind::CompanyFailed,
        }
    }

    /// Reads a hook body; fails only when a field we must act on is missing or unusable.
    pub fn parse(kind: HookKind, raw: &[u8]) -> Result<HookPayload, HookParseError> {
        let json: Value = if raw.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Default::default()) // an empty body is an empty object
        } else {
            serde_json::from_slice(raw).map_err(|e| HookParseError::NotJson(without_values(&e)))?
        };
        let object = json.as_object().ok_or(HookParseError::NotAnObject)?;
        let body = Body(object);
        Ok(match kind {
            HookKind::DocumentsTypesRequired => HookPayload::DocumentsTypesRequired {
                type_ids: body.required(
                    fields::DOCUMENT_TYPES,
                    |v| v.as_array()?.iter().map(type_id_of).collect(),
                    "a list of document type ids",
                )?,
            },
            HookKind::DocumentsUploadFailed => {
                let mut problems: Vec<DocumentProblem> = Vec::new();
                if let Some(list) = body.get(fields::DOCUMENTS).and_then(Value::as_array) {
                    for item in list {
                        let type_id = type_id_of(item).ok_or(HookParseError::Field {
                            field: fields::DOCUMENTS[0],
                            problem: "each entry needs a typeId".into(),
                        })?;
                        let reason = item.as_object().and_then(|o| Body(o).string(fields::REASON));
                        problems.push(DocumentProblem { type_id, reason });
                    }
                }
                if let Some(list) = body.get(fields::MISSING_TYPES).and_then(Value::as_array) {
                    for type_id in list.iter().filter_map(type_id_of) {
                        if !problems.iter().any(|p| p.type_id == type_id) {
                            problems.push(DocumentProblem { type_id, reason: Some("missing".into()) });
                        }
                    }
                }
                HookPayload::DocumentsUploadFailed { problems }
            }
            HookKind::DocumentsUploadCompleted => HookPayload::DocumentsUploadCompleted,
            HookKind::ContractUpdateCompleted => HookPayload::ContractUpdateCompleted {
                prefilled_contract: body.get(fields::CONTRACT).cloned(),
            },
            HookKind::Started => HookPayload::Started {
                insurers: match body.get(fields::INSURERS) {
                    None => Vec::new(),
                    Some(_) => body.required(
                        fields::INSURERS,
                        |v| v.as_array()?.iter().map(as_insurer).collect(),
                        "a list of insurer codes",
                    )?,
                },
            },
            // The seed's hooks name no insurer (an agent with one): changelog v2 added it.
            HookKind::Approved => HookPayload::Approved {
                insurer: body.optional_insurer()?.unwrap_or_else(Insurer::unnamed),
                premium: body.get(fields::PREMIUM).and_then(|v| match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }),
            },
            HookKind::Rejected => HookPayload::Rejected {
                insurer: body.optional_insurer()?.unwrap_or_else(Insurer::unnamed),
                reason: body.string(fields::REASON),
            },
            HookKind::DraftIssued => {
                HookPayload::DraftIssued { insurer: body.optional_insurer()?, files: body.files()? }
            }
            HookKind::PaymentLinkGenerated => HookPayload::PaymentLinkGenerated {
                insurer: body.optional_insurer()?,
                url: body.required(
                    fields::URL,
                    |v| v.as_str().filter(|s| is_https_url(s)).map(str::to_owned),
                    "an https URL",
                )?,
            },
            HookKind::PaymentInvoiceGenerated => HookPayload::PaymentInvoiceGenerated {
                insurer: body.optional_insurer()?,
                files: body.files()?,
            },
            HookKind::PolicyIsPaid => HookPayload::PolicyIsPaid { insurer: body.optional_insurer()? },
            HookKind::PolicyIssued => HookPayload::PolicyIssued {
                insurer: body.optional_insurer()?,
                policy_number: body.string(fields::POLICY_NUMBER),
                files: body.files()?,
            },
            HookKind::Failed => HookPayload::Failed {
                code: body.required(fields::ERROR_CODE, as_u32, "a numeric error code")?,
                message: body.string(fields::ERROR_MESSAGE),
            },
            HookKind::CompanyFailed => HookPayload::CompanyFailed {
                insurer: body.insurer()?,
                code: body.required(fields::ERROR_CODE, as_u32, "a numeric error code")?,
                message: body.string(fields::ERROR_MESSAGE),
            },
        })
    }
}

/// A customer pays behind this link: never over plain http.
fn is_https_url(s: &str) -> bool {
    s.starts_with("https://") && s.len() > 8 && !s.contains(char::is_whitespace)
}

/// A link to a file: fetched only where MUST's API is (whose scheme the deployment sets).
fn is_web_url(s: &str) -> bool {
    (is_https_url(s) || s.starts_with("http://")) && s.len() <= 2048 && !s.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_path_and_function() {
        let mut paths: Vec<_> = HookKind::ALL.iter().map(|k| k.path()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 14);
        for kind in HookKind::ALL {
            assert_eq!(HookKind::from_path(kind.path()), Some(kind));
        }
        assert_eq!(HookKind::from_path("documents"), None);
    }

    #[test]
    fn types_required_accepts_ids_or_objects() {
        let a = HookPayload::parse(HookKind::DocumentsTypesRequired, br#"{"documentTypes":[11,"12"]}"#);
        let b = HookPayload::parse(
            HookKind::DocumentsTypesRequired,
            br#"{"documentTypes":[{"typeId":11,"name":"STS"},{"typeId":12}],"extra":true}"#,
        );
        let want = HookPayload::DocumentsTypesRequired { type_ids: vec![11, 12] };
        assert_eq!(a.unwrap(), want);
        assert_eq!(b.unwrap(), want);
    }

    #[test]
    fn approved_reads_insurer_and_premium() {
        let p = HookPayload::parse(
            HookKind::Approved,
            br#"{"insuranceCompany":"renaissance","writtenPremium":17847.29}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            HookPayload::Approved {
                insurer: Insurer::parse("renaissance").unwrap(),
                premium: Some(17847.29)
            }
        );
    }

    #[test]
    fn the_seeds_hooks_name_no_insurer_and_are_the_agents_one_insurers() {
        // Changelog v2 added `insuranceCompany` only "if the agent can use several insurers".
        let approved = HookPayload::parse(HookKind::Approved, br#"{"writtenPremium":1}"#).unwrap();
        assert_eq!(approved, HookPayload::Approved { insurer: Insurer::unnamed(), premium: Some(1.0) });
        let rejected = HookPayload::parse(HookKind::Rejected, b"").unwrap();
        assert!(matches!(rejected, HookPayload::Rejected { insurer, .. } if insurer.is_unnamed()));
        assert_eq!(
            HookPayload::parse(HookKind::Started, b"{}"),
            Ok(HookPayload::Started { insurers: vec![] })
        );
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        let e = HookPayload::parse(HookKind::CompanyFailed, br#"{"errorCode":1502}"#).unwrap_err();
        assert_eq!(e, HookParseError::Field { field: "insuranceCompany", problem: "missing".into() });
        let e = HookPayload::parse(HookKind::Approved, br#"{"insuranceCompany":5}"#).unwrap_err();
        assert!(matches!(e, HookParseError::Field { field: "insuranceCompany", .. }), "{e:?}");
        let e = HookPayload::parse(HookKind::PaymentLinkGenerated, br#"{"paymentLink":"javascript:x"}"#)
            .unwrap_err();
        assert!(matches!(e, HookParseError::Field { field: "paymentLink", .. }));
        assert!(matches!(
            HookPayload::parse(HookKind::Failed, b"{not json"),
            Err(HookParseError::NotJson(_))
        ));
        assert_eq!(HookPayload::parse(HookKind::Started, b"[1]"), Err(HookParseError::NotAnObject));
        let e = HookPayload::parse(HookKind::PolicyIssued, br#"{"blobIds":["../x"]}"#).unwrap_err();
        assert!(matches!(e, HookParseError::Field { field: "blobId", .. }));
    }

    #[test]
    fn empty_body_is_fine_where_nothing_is_needed() {
        assert_eq!(
            HookPayload::parse(HookKind::PolicyIsPaid, b"").unwrap(),
            HookPayload::PolicyIsPaid { insurer: None }
        );
        assert_eq!(
            HookPayload::parse(HookKind::PolicyIsPaid, br#"{"insuranceCompany":"renaissance"}"#).unwrap(),
            HookPayload::PolicyIsPaid { insurer: Some(Insurer::parse("renaissance").unwrap()) }
        );
        assert_eq!(
            HookPayload::parse(HookKind::Started, b"{}").unwrap(),
            HookPayload::Started { insurers: vec![] }
        );
    }

    #[test]
    fn policy_issued_reads_blob_lists_of_any_shape() {
        let p = HookPayload::parse(
            HookKind::PolicyIssued,
            br#"{"policyNumber":"XXX 0132590777","documents":[{"blobId":"b1","name":"policy.pdf"},{"blobId":"b2"}]}"#,
        )
        .unwrap();
        let HookPayload::PolicyIssued { policy_number, files, .. } = p else { panic!("{p:?}") };
        assert_eq!(policy_number.as_deref(), Some("XXX 0132590777"));
        assert_eq!(files.iter().map(MustFile::source_id).collect::<Vec<_>>(), ["b1", "b2"]);
    }

    #[test]
    fn every_name_musts_documents_give_a_file_is_read_and_none_is_not_an_error() {
        let files = |kind, body: &str| match HookPayload::parse(kind, body.as_bytes()).unwrap() {
            HookPayload::PolicyIssued { files, .. }
            | HookPayload::PaymentInvoiceGenerated { files, .. }
            | HookPayload::DraftIssued { files, .. } => files,
            other => panic!("{other:?}"),
        };
        let blob = |id: &str| MustFile::from(BlobId::parse(id).unwrap());
        assert_eq!(files(HookKind::PolicyIssued, r#"{"policyBlobId":"p-1"}"#), [blob("p-1")]);
        assert_eq!(
            files(HookKind::PolicyIssued, r#"{"policyLink":"https://must.example/api/blob/p-2"}"#),
            [MustFile::Link { url: "https://must.example/api/blob/p-2".into() }]
        );
        assert_eq!(
            files(HookKind::PaymentInvoiceGenerated, r#"{"paymentInvoiceBlobId":"i-1"}"#),
            [blob("i-1")]
        );
        assert_eq!(
            files(HookKind::PaymentInvoiceGenerated, r#"{"paymentInvoiceDownloadKey":"k 1"}"#),
            [MustFile::DownloadKey { key: "k 1".into() }]
        );
        assert_eq!(files(HookKind::PolicyIssued, r#"{"policyNumber":"XXX 1"}"#), []);
        assert_eq!(files(HookKind::PaymentInvoiceGenerated, "{}"), []);
        let e = HookPayload::parse(HookKind::PolicyIssued, br#"{"policyLink":"ftp://x/y"}"#).unwrap_err();
        assert!(matches!(e, HookParseError::Field { field: "policyLink", .. }), "{e:?}");
        let e = HookPayload::parse(HookKind::PaymentInvoiceGenerated, br#"{"paymentInvoiceDownloadKey":7}"#)
            .unwrap_err();
        assert!(matches!(e, HookParseError::Field { field: "paymentInvoiceDownloadKey", .. }), "{e:?}");
    }

    #[test]
    fn upload_failed_merges_rejected_and_missing() {
        let p = HookPayload::parse(
            HookKind::DocumentsUploadFailed,
            br#"{"documents":[{"typeId":11,"reason":"unreadable"}],"missingTypeIds":[22,11]}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            HookPayload::DocumentsUploadFailed {
                problems: vec![
                    DocumentProblem { type_id: 11, reason: Some("unreadable".into()) },
                    DocumentProblem { type_id: 22, reason: Some("missing".into()) },
                ]
            }
        );
    }
}
