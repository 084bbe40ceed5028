//! bank-intake: the bank-events queue → validated, recorded, routed to the process queue.

use polis::adapters::config::{self, var};
use polis::adapters::sqs::Queue;
use polis::services::bank_intake::BankIntake;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    polis::telemetry::init();
    let sdk = config::aws().await;
    let sqs = config::sqs(&sdk);
    let intake = BankIntake {
        store: config::table(&sdk)?,
        trucks: Queue::new(sqs.clone(), var("TRUCK_QUEUE_URL")?),
        loans: Queue::new(sqs.clone(), var("LOAN_QUEUE_URL")?),
        outbox: Queue::new(sqs, var("BANK_NOTIFICATIONS_QUEUE_URL")?),
    };
    let intake = &intake;
    polis_lambda::run_sqs(|body| async move { intake.handle(&body).await }).await
}
