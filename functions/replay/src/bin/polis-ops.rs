//! polis-replay: the operator's command.
//!
//! ```text
//! polis-replay list            # what is quarantined, with reasons (ids and reasons, no bodies)
//! polis-replay quarantine      # re-drive quarantined input that now passes its checks
//! polis-replay dead-letters    # move dead-lettered messages back to their queues
//! polis-replay all             # both
//! polis-replay resolve TRUCK#REQ-1 happened sc-123   # a held call reached the partner (its id, if needed)
//! polis-replay resolve LOAN#L-7 happened 100234 CL-9 # a sale happened: BIMA's policy id and number
//! polis-replay resolve TRUCK#REQ-1 did-not-happen    # it did not: send it again
//! ```
//! Configured like the replay Lambda (TABLE_NAME, the queue and DLQ URLs; see the README).

use polis::domain::workflow::Resolution;
use polis_replay::{ReplayRequest, Replayer, Resolve};

const USAGE: &str = "usage: polis-replay list | quarantine | dead-letters | all \
    | resolve <TRUCK#id|LOAN#number> happened [reference [number]] | resolve <...> did-not-happen";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |n: usize| args.get(n).cloned();
    let nothing = ReplayRequest { quarantine: false, dead_letters: false, resolve: None };
    let request = match args.first().map(String::as_str) {
        Some("list") => None,
        Some("quarantine") => Some(ReplayRequest { quarantine: true, ..nothing }),
        Some("dead-letters") => Some(ReplayRequest { dead_letters: true, ..nothing }),
        Some("all") => Some(ReplayRequest::default()),
        Some("resolve") => {
            let process = arg(1).ok_or(USAGE)?;
            let resolution = match arg(2).as_deref() {
                Some("happened") => Resolution::Happened { reference: arg(3), number: arg(4) },
                Some("did-not-happen") => Resolution::DidNotHappen,
                _ => return Err(USAGE.into()),
            };
            Some(ReplayRequest { resolve: Some(Resolve { process, resolution }), ..nothing })
        }
        _ => return Err(USAGE.into()),
    };
    let replayer = Replayer::from_env().await?;
    match request {
        None => {
            for item in replayer.list().await? {
                println!("{}\t{}\t{}", item.id, item.origin.source(), item.reason);
            }
        }
        Some(request) => println!("{}", serde_json::to_string_pretty(&replayer.run(request).await?)?),
    }
    Ok(())
}
