//! polis-replay: the operator's command.
//!
//! ```text
//! polis-replay list            # what is quarantined, with reasons (ids and reasons, no bodies)
//! polis-replay quarantine      # re-drive quarantined input that now passes its checks
//! polis-replay dead-letters    # move dead-lettered messages back to their queues
//! polis-replay all             # both
//! ```
//! Configured like the replay Lambda (TABLE_NAME, the queue and DLQ URLs; see the README).

use polis_replay::{ReplayRequest, Replayer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let command = std::env::args().nth(1).unwrap_or_default();
    let request = match command.as_str() {
        "list" => None,
        "quarantine" => Some(ReplayRequest { quarantine: true, dead_letters: false }),
        "dead-letters" => Some(ReplayRequest { quarantine: false, dead_letters: true }),
        "all" => Some(ReplayRequest::default()),
        _ => return Err("usage: polis-replay list | quarantine | dead-letters | all".into()),
    };
    let replayer = Replayer::from_env().await?;
    match request {
        None => {
            for item in replayer.list().await? {
                println!("{}\t{}\t{}", item.id, item.source, item.reason);
            }
        }
        Some(request) => println!("{}", serde_json::to_string_pretty(&replayer.run(request).await?)?),
    }
    Ok(())
}
