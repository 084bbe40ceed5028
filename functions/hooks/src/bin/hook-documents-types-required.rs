//! POST /api/hooks/{scoringId}/documents/types-required

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    polis_hooks::run(polis::domain::must::hook::HookKind::DocumentsTypesRequired).await
}
