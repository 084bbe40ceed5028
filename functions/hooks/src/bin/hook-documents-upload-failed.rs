//! POST /api/hooks/{scoringId}/documents/upload-failed

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    polis_hooks::run(polis::domain::must::hook::HookKind::DocumentsUploadFailed).await
}
