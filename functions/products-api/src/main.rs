//! products-api: `GET /api/customers/{customerId}/products` (IAM-authorized) →
//! one query of the customer index → loans with their credit-life policies and
//! truck policies with presigned links to their PDFs.

use std::time::Duration;

use lambda_http::{service_fn, Error, Request, RequestExt};
use polis::adapters::config;
use polis::adapters::s3::Buckets;
use polis::services::products::Products;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    polis::telemetry::init();
    let sdk = config::aws().await;
    let products = Products {
        index: config::table(&sdk)?,
        presigner: Buckets::new(config::s3(&sdk)),
        link_ttl: Duration::from_secs(config::number("PRESIGN_SECONDS", 300)?),
    };
    let products = &products;
    polis_lambda::run_http(service_fn(move |req: Request| async move {
        let path = req.path_parameters();
        let query = req.query_string_parameters();
        let reply =
            products.list(path.first("customerId"), query.first("limit"), query.first("nextToken")).await;
        polis_lambda::http_response(reply)
    }))
    .await
}
