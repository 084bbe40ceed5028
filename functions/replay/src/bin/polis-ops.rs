//! polis-ops: the operator's command.
//!
//! ```text
//! polis-ops timeline REQ-1 [--json]   # one process's story: hooks, bank events, calls, stages, notices
//!                                     # (by request id, MUST's scoringId, loan number or TRUCK#/LOAN# key)
//! polis-ops stuck --older-than 30m [--json]  # processes not ended, in their stage longer than that
//! polis-ops list            # what is kept for a person, with reasons (ids and reasons, no bodies)
//! polis-ops quarantine      # re-drive kept input that now passes its checks
//! polis-ops dead-letters    # move dead-lettered messages back to their queues
//! polis-ops all             # both
//! polis-ops resolve TRUCK#REQ-1 happened sc-123   # a held call reached the partner (its id, if needed)
//! polis-ops resolve LOAN#L-7 happened 100234 CL-9 # a sale happened: BIMA's policy id and number
//! polis-ops resolve TRUCK#REQ-1 did-not-happen    # it did not: send it again
//! ```
//! Configured like the replay Lambda (TABLE_NAME, the queue and DLQ URLs; see the README).

use polis::domain::workflow::Resolution;
use polis::ports::now_ms;
use polis::services::timeline::{parse_span, span, utc};
use polis_replay::{ReplayRequest, Replayer, Resolve};

const USAGE: &str = "usage: polis-ops timeline <requestId|scoringId|loanNumber> [--json] \
    | stuck --older-than <30m|2h|1d> [--json] | list | quarantine | dead-letters | all \
    | resolve <TRUCK#id|LOAN#number> happened [reference [number]] | resolve <...> did-not-happen";

enum Command {
    Timeline(String),
    Stuck(std::time::Duration),
    List,
    Run(ReplayRequest),
}

fn parse(args: &[String]) -> Result<Command, String> {
    let arg = |n: usize| args.get(n).cloned();
    let nothing = ReplayRequest { quarantine: false, dead_letters: false, resolve: None };
    Ok(match args.first().map(String::as_str) {
        Some("timeline") => Command::Timeline(arg(1).ok_or(USAGE)?),
        Some("stuck") => match (arg(1).as_deref(), arg(2)) {
            (Some("--older-than"), Some(span)) => Command::Stuck(parse_span(&span)?),
            _ => return Err(USAGE.into()),
        },
        Some("list") => Command::List,
        Some("quarantine") => Command::Run(ReplayRequest { quarantine: true, ..nothing }),
        Some("dead-letters") => Command::Run(ReplayRequest { dead_letters: true, ..nothing }),
        Some("all") => Command::Run(ReplayRequest::default()),
        Some("resolve") => {
            let process = arg(1).ok_or(USAGE)?;
            let resolution = match arg(2).as_deref() {
                Some("happened") => Resolution::Happened { reference: arg(3), number: arg(4) },
                Some("did-not-happen") => Resolution::DidNotHappen,
                _ => return Err(USAGE.into()),
            };
            Command::Run(ReplayRequest { resolve: Some(Resolve { process, resolution }), ..nothing })
        }
        _ => return Err(USAGE.into()),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    args.retain(|a| a != "--json");
    let command = parse(&args)?;
    let replayer = Replayer::from_env().await?;
    match command {
        Command::Timeline(id) => {
            let timeline =
                replayer.timeline(&id).await?.ok_or_else(|| format!("no process is named {id:?}"))?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&timeline)?),
                false => print!("{}", timeline.render(now_ms())),
            }
        }
        Command::Stuck(older_than) => {
            let stuck = replayer.stuck(older_than).await?;
            let now = now_ms();
            for p in &stuck {
                let waited = now.saturating_sub(p.since_ms);
                match json {
                    true => println!(
                        "{}",
                        serde_json::json!({
                            "process": p.process, "stage": p.stage, "sinceMs": p.since_ms, "forMs": waited,
                        })
                    ),
                    false => {
                        println!("{}\t{}\tsince {}\t{}", p.process, p.stage, utc(p.since_ms), span(waited))
                    }
                }
            }
        }
        Command::List => {
            for item in replayer.list().await? {
                println!("{}\t{}\t{}", item.id, item.origin.source(), item.reason);
            }
        }
        Command::Run(request) => println!("{}", serde_json::to_string_pretty(&replayer.run(request).await?)?),
    }
    Ok(())
}
