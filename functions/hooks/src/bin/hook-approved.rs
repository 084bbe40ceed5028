//! POST /api/hooks/{scoringId}/approved

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    polis_hooks::run(polis::domain::must::hook::HookKind::Approved).await
}
