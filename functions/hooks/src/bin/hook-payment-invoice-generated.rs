//! POST /api/hooks/{scoringId}/payment-invoice-generated

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    polis_hooks::run(polis::domain::must::hook::HookKind::PaymentInvoiceGenerated).await
}
