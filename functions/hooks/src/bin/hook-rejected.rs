//! POST /api/hooks/{scoringId}/rejected

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    polis_hooks::run(polis::domain::must::hook::HookKind::Rejected).await
}
