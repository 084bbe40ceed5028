//! POST /api/hooks/{scoringId}/draft-issued

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    polis_hooks::run(polis::domain::must::hook::HookKind::DraftIssued).await
}
