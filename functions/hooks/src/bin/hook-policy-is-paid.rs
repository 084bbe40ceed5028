//! POST /api/hooks/{scoringId}/policy-is-paid

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    polis_hooks::run(polis::domain::must::hook::HookKind::PolicyIsPaid).await
}
