//! watchdog: on its schedule, reminds the bank of truck processes waiting too long for its
//! choice of insurer, sends the card of those waiting too long for MUST's recognition,
//! starts a new MUST process for those whose wait after a temporary error is over, and
//! counts the processes stuck in a stage (`services::watchdog`).

use std::time::Duration;

use lambda_runtime::Error;
use polis::adapters::config::{self, var};
use polis::adapters::sqs::Queue;
use polis::services::watchdog::{minutes, Watchdog};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    polis::telemetry::init();
    let sdk = config::aws().await;
    let watchdog = Watchdog {
        store: config::table(&sdk)?,
        trucks: Queue::new(config::sqs(&sdk), var("TRUCK_QUEUE_URL")?),
        choice_reminder: minutes("CHOICE_REMINDER_MINUTES", &var("CHOICE_REMINDER_MINUTES")?)?,
        recognition_wait: Duration::from_secs(config::number("RECOGNITION_WAIT_SECONDS", 60)?),
        retry_delay: minutes("TEMPORARY_ERROR_RETRY_MINUTES", &var("TEMPORARY_ERROR_RETRY_MINUTES")?)?,
        stuck_after: minutes("STUCK_AFTER_MINUTES", &var("STUCK_AFTER_MINUTES")?)?,
    };
    let watchdog = &watchdog;
    // The scheduled event (EventBridge's) says nothing the run needs.
    polis_lambda::run_json(move |_: Value| async move {
        let report = watchdog.run(polis::clock::now_ms()).await?;
        tracing::info!(
            overdue_choices = report.overdue_choices.len(),
            overdue_recognitions = report.overdue_recognitions.len(),
            due_retries = report.due_retries.len(),
            stuck = ?report.stuck,
            "watchdog ran"
        );
        Ok::<_, Error>(serde_json::to_value(report)?)
    })
    .await
}
