//! "My products": a customer's loans with their credit-life policies, and their
//! truck eOSAGO policies with a short-lived link to the PDF. One index query per
//! call; long lists come in pages (`nextToken`).

use std::time::Duration;

use serde_json::{json, Value};

use super::Reply;
use crate::domain::bank::ArchivedFile;
use crate::domain::ids::CustomerId;
use crate::domain::products::{LoanProduct, ProductSummary, TruckProduct};
use crate::keys::Cursor;
use crate::ports::{Presigner, ProductIndex};

pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

pub struct Products<I, P> {
    pub index: I,
    pub presigner: P,
    /// Lifetime of the presigned links to policy PDFs.
    pub link_ttl: Duration,
}

fn bad_request(message: impl Into<String>) -> Reply {
    Reply::new(400, json!({"error": message.into()}))
}

fn loan_view(p: &LoanProduct) -> Value {
    let credit_life = p.sold.then(|| {
        let calc = p.calculation.as_ref();
        json!({
            "policyId": p.policy_id,
            "policyNumber": p.policy_number,
            // BIMA saved the sale without naming the policy: its number is still to come.
            "numberPending": p.policy_number.is_none(),
            "premium": calc.map(|c| c.premium.clone()),
            "sumInsured": calc.map(|c| c.sum_insured.clone()),
            "risks": calc.map(|c| c.risks.clone()).unwrap_or_default(),
            "status": p.status,
            "printLink": p.print_link,
            "printFormPending": p.print_form_pending,
        })
    });
    json!({
        "loanNumber": p.loan_number,
        "sum": p.sum,
        "termMonths": p.term_months,
        "startDate": p.start_date,
        "insuranceStatus": p.status,
        "creditLife": credit_life,
    })
}

impl<I, P> Products<I, P>
where
    I: ProductIndex + Sync,
    P: Presigner + Sync,
{
    /// Short-lived links to archived files.
    async fn links(&self, files: &[ArchivedFile]) -> Vec<Value> {
        let mut links = Vec::new();
        for file in files {
            match self.presigner.presign_get(&file.bucket, &file.key, self.link_ttl).await {
                Ok(url) => links.push(json!({
                    "url": url,
                    "expiresInSeconds": self.link_ttl.as_secs(),
                    "sha256": file.sha256,
                    "contentType": file.content_type,
                })),
                Err(e) => tracing::warn!(error = %e, "no link to an archived file"),
            }
        }
        links
    }

    async fn truck_view(&self, p: &TruckProduct) -> Value {
        json!({
            "processId": p.process_id,
            "status": p.status,
            "insurer": p.insurer,
            "premium": p.premium,
            "policyNumber": p.policy_number,
            "documents": self.links(&p.policy_files).await,
            "pendingFiles": p.pending_files,
            "drafts": self.links(&p.draft_files).await,
        })
    }

    pub async fn list(&self, customer: Option<&str>, limit: Option<&str>, next_token: Option<&str>) -> Reply {
        let customer = match CustomerId::parse(customer.unwrap_or_default()) {
            Ok(c) => c,
            Err(e) => return bad_request(e.to_string()),
        };
        let limit = match limit.map(str::parse::<u32>) {
            None => DEFAULT_PAGE,
            Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
            Some(_) => return bad_request(format!("limit must be a whole number from 1 to {MAX_PAGE}")),
        };
        let after = match next_token.map(Cursor::decode) {
            None => None,
            Some(Some(start)) => Some(start),
            Some(None) => return bad_request("nextToken is not one this API issued"),
        };
        let first_page = after.is_none();
        let page = match self.index.customer_products(&customer, limit, after).await {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "products index unavailable");
                return Reply::new(503, json!({"error": "temporarily unavailable, retry"}));
            }
        };
        if first_page && page.items.is_empty() {
            return Reply::new(404, json!({"error": format!("no products for customer {customer}")}));
        }
        let (mut loans, mut trucks) = (Vec::new(), Vec::new());
        for record in &page.items {
            match record {
                ProductSummary::Loan(p) => loans.push(loan_view(p)),
                ProductSummary::Truck(p) => trucks.push(self.truck_view(p).await),
            }
        }
        let next = page.next.map(|cursor| cursor.encode());
        Reply::new(
            200,
            json!({"customerId": customer, "loans": loans, "truckPolicies": trucks, "nextToken": next}),
        )
    }
}

#[cfg(test)]
#[path = "products_tests.rs"]
mod tests;
