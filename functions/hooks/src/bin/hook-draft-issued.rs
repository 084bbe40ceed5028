//! POST /api/hooks/{scoringId}/draft-issued

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    polis_hooks::run(polis::domain::must::hook::HookKind::DraftIssued).await
}
