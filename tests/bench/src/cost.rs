//! AWS requests per policy against the minimum, and what 1,000 policies cost at
//! list prices (us-east-1, on-demand, as published in 2025; arm64 Lambda).

use polis_e2e::{workspace_root, BoxError, Harness};
use polis_local_cloud::template::Template;

use crate::flows::{Measured, Phase};
use crate::Row;

const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
const LAMBDA_PER_GB_SECOND_ARM: f64 = 0.000_013_333_4;
const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
const DYNAMODB_PER_WRITE_UNIT: f64 = 0.625 / 1e6;
const DYNAMODB_PER_READ_UNIT: f64 = 0.125 / 1e6;
const SQS_FIFO_PER_REQUEST: f64 = 0.50 / 1e6;
const S3_PER_PUT: f64 = 0.005 / 1e3;
const S3_PER_GET: f64 = 0.0004 / 1e3;

#[derive(Default)]
struct Tally {
    dynamodb_reads: u64,
    dynamodb_writes: u64,
    /// Request units, with items taken as at most 1 KB (transactions cost two per item).
    write_units: u64,
    read_units: u64,
    sqs_sends: u64,
    sqs_event_source: u64,
    s3_puts: u64,
    s3_gets: u64,
    other: u64,
}

fn tally(phase: &Phase) -> Tally {
    let mut t = Tally::default();
    for ((function, call), n) in &phase.calls {
        let n = *n;
        if function.ends_with("(event source)") {
            t.sqs_event_source += n;
            continue;
        }
        match call.as_str() {
            "dynamodb:GetItem" => {
                t.dynamodb_reads += n;
                t.read_units += n;
            }
            "dynamodb:Query" => {
                t.dynamodb_reads += n;
                t.read_units += n;
            }
            "dynamodb:PutItem" | "dynamodb:UpdateItem" | "dynamodb:DeleteItem" => {
                t.dynamodb_writes += n;
                t.write_units += n;
            }
            // Two items (the record and its effect or alias), two units each.
            "dynamodb:TransactWriteItems" => {
                t.dynamodb_writes += n;
                t.write_units += 4 * n;
            }
            "sqs:SendMessage" => t.sqs_sends += n,
            "s3:PutObject" => t.s3_puts += n,
            "s3:GetObject" | "s3:HeadObject" => t.s3_gets += n,
            "ssm:GetParameter" => {} // once per container; free for standard parameters
            _ => t.other += n,
        }
    }
    t
}

fn memory_gb(template: &Template, function: &str) -> f64 {
    let mb = template
        .resources
        .get(function)
        .and_then(|r| r.pointer("/Properties/MemorySize"))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(128.0);
    mb / 1024.0
}

pub fn per_thousand(_h: &Harness, measured: &Measured) -> Result<Vec<Row>, BoxError> {
    let template = Template::load(&workspace_root().join("template.yaml"))?;
    let mut rows = Vec::new();
    for phase in &measured.phases {
        let n = phase.policies.max(1) as f64;
        let t = tally(phase);
        let ours =
            (t.dynamodb_reads + t.dynamodb_writes + t.sqs_sends + t.s3_puts + t.s3_gets + t.other) as f64 / n;
        let ratio = ours / phase.minimum_per_policy;
        rows.push(Row::new(
            format!("AWS requests per {}", phase.kind),
            format!(
                "{ours:.1} by our functions (DynamoDB {:.1} reads + {:.1} writes, SQS {:.1} sends, S3 {:.1} puts + {:.1} gets) \
                 + {:.1} SQS receives/deletes by the event sources; minimum {:.0}: {ratio:.2}x",
                t.dynamodb_reads as f64 / n,
                t.dynamodb_writes as f64 / n,
                t.sqs_sends as f64 / n,
                t.s3_puts as f64 / n,
                t.s3_gets as f64 / n,
                t.sqs_event_source as f64 / n,
                phase.minimum_per_policy
            ),
            format!("within 20% of the minimum: {}", if ratio <= 1.2 { "met" } else { "NOT met" }),
        ));
        let mut lambda = 0.0;
        let mut api_requests = 0.0;
        for inv in &phase.invocations {
            let billed_ms = (inv.finished - inv.started).as_secs_f64() * 1000.0;
            lambda += LAMBDA_PER_REQUEST
                + billed_ms.ceil() / 1000.0 * memory_gb(&template, &inv.function) * LAMBDA_PER_GB_SECOND_ARM;
            if inv.function.starts_with("Hook") || inv.function == "ProductsApiFunction" {
                api_requests += 1.0;
            }
        }
        let per = 1000.0 / n;
        let lambda = lambda * per;
        let api = api_requests * HTTP_API_PER_REQUEST * per;
        let dynamodb = (t.write_units as f64 * DYNAMODB_PER_WRITE_UNIT
            + t.read_units as f64 * DYNAMODB_PER_READ_UNIT)
            * per;
        let sqs = (t.sqs_sends + t.sqs_event_source) as f64 * SQS_FIFO_PER_REQUEST * per;
        let s3 = (t.s3_puts as f64 * S3_PER_PUT + t.s3_gets as f64 * S3_PER_GET) * per;
        rows.push(Row::new(
            format!("AWS cost per 1,000 {} (list prices)", phase.plural),
            format!(
                "${:.4}: Lambda ${lambda:.4}, API Gateway ${api:.4}, DynamoDB ${dynamodb:.4}, SQS ${sqs:.4}, S3 ${s3:.4}",
                lambda + api + dynamodb + sqs + s3
            ),
            "-",
        ));
    }
    Ok(rows)
}
