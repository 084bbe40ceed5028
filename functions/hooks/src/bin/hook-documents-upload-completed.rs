//! POST /api/hooks/{scoringId}/documents/upload-completed

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    polis_hooks::run(polis::domain::must::hook::HookKind::DocumentsUploadCompleted).await
}
