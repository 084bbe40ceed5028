//! polis-ops: the operator's command.
//!
//! ```text
//! polis-ops timeline REQ-1 [--json]   # one process's story: hooks, bank events, calls, stages, notices,
//!                                     # operators' actions (by request id, scoringId, loan number or key)
//! polis-ops stuck --older-than 30m [--json]  # processes not ended, in their stage longer than that
//! polis-ops list                      # what is kept for a person: id, source, process, reason
//! polis-ops redrive <id> --dry-run    # what re-driving one kept item would do: which calls, whether money
//! polis-ops redrive <id> [--confirm CODE] [--override "why"]  # re-drive it (money: the dry run's code;
//!                                     # kept by an intake check: an override and its reason)
//! polis-ops dead-letters --list       # every dead letter with what it would do (nothing moves)
//! polis-ops redrive-message <truck|loan|bank-events> <messageId> [--dry-run] [--confirm CODE]
//! polis-ops quarantine [--dry-run]    # re-drive every kept item that moves no money and passed every check
//! polis-ops dead-letters [--dry-run]  # move back every dead letter that moves no money
//! polis-ops resolve TRUCK#REQ-1 init 2 happened sc-123   # attempt 2 of init reached MUST: its scoringId
//! polis-ops resolve LOAN#L-7 sale 1 happened 100234 CL-9 # the sale happened: BIMA's policy id and number
//! polis-ops resolve TRUCK#REQ-1 payment-ingostrah 2 did-not-happen  # it did not: send it again (attempt 3)
//! ```
//! Every action that changes something is recorded with who acted: `--by NAME`, else
//! `$POLIS_OPERATOR`, else `$USER`. Configured like the replay Lambda (TABLE_NAME, the queue
//! and DLQ URLs, PAYMENT_LINK_HOSTS, REDRIVE_MONEY_MAX_AGE_HOURS; see the README).

use polis::domain::workflow::Resolution;
use polis::ports::now_ms;
use polis::services::replay::SourceQueue;
use polis::services::timeline::{parse_span, span, utc};
use polis_replay::{Redrive, RedriveMessage, ReplayRequest, Replayer, Resolve};

const USAGE: &str = "usage: polis-ops timeline <requestId|scoringId|loanNumber> [--json] \
    | stuck --older-than <30m|2h|1d> [--json] | list | dead-letters --list \
    | redrive <keptId> [--dry-run] [--confirm CODE] [--override WHY] \
    | redrive-message <truck|loan|bank-events> <messageId> [--dry-run] [--confirm CODE] \
    | quarantine [--dry-run] | dead-letters [--dry-run] \
    | resolve <TRUCK#id|LOAN#number> <call> <attempt> happened [reference [number]] \
    | resolve <TRUCK#id|LOAN#number> <call> <attempt> did-not-happen \
    [--by NAME]";

enum Command {
    Timeline(String),
    Stuck(std::time::Duration),
    List,
    ListDeadLetters,
    Run(Box<ReplayRequest>),
}

/// The command line: positional words, and the flags' values.
struct Args {
    words: Vec<String>,
    json: bool,
    dry_run: bool,
    list: bool,
    by: Option<String>,
    confirm: Option<String>,
    override_reason: Option<String>,
}

impl Args {
    fn read(raw: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut args = Args {
            words: Vec::new(),
            json: false,
            dry_run: false,
            list: false,
            by: None,
            confirm: None,
            override_reason: None,
        };
        let mut raw = raw.peekable();
        while let Some(arg) = raw.next() {
            let mut value = || raw.next().ok_or_else(|| format!("{arg} needs a value\n{USAGE}"));
            match arg.as_str() {
                "--json" => args.json = true,
                "--dry-run" => args.dry_run = true,
                "--list" => args.list = true,
                "--by" => args.by = Some(value()?),
                "--confirm" => args.confirm = Some(value()?),
                "--override" => args.override_reason = Some(value()?),
                flag if flag.starts_with("--") && flag != "--older-than" => {
                    return Err(format!("unknown flag {flag}\n{USAGE}"))
                }
                _ => args.words.push(arg),
            }
        }
        Ok(args)
    }

    /// Who acts: `--by`, else `$POLIS_OPERATOR`, else `$USER`.
    fn operator(&self) -> Option<String> {
        self.by
            .clone()
            .or_else(|| std::env::var("POLIS_OPERATOR").ok())
            .or_else(|| std::env::var("USER").ok())
    }
}

fn parse(args: &Args) -> Result<Command, String> {
    let word = |n: usize| args.words.get(n).cloned();
    let request = ReplayRequest { by: args.operator(), dry_run: args.dry_run, ..ReplayRequest::default() };
    Ok(match args.words.first().map(String::as_str) {
        Some("timeline") => Command::Timeline(word(1).ok_or(USAGE)?),
        Some("stuck") => match (word(1).as_deref(), word(2)) {
            (Some("--older-than"), Some(span)) => Command::Stuck(parse_span(&span)?),
            _ => return Err(USAGE.into()),
        },
        Some("list") => Command::List,
        Some("dead-letters") if args.list => Command::ListDeadLetters,
        Some("quarantine") => Command::Run(Box::new(ReplayRequest { quarantine: true, ..request })),
        Some("dead-letters") => Command::Run(Box::new(ReplayRequest { dead_letters: true, ..request })),
        Some("redrive") => {
            let redrive = Redrive {
                item: word(1).ok_or(USAGE)?,
                dry_run: args.dry_run,
                r#override: args.override_reason.clone(),
                confirm: args.confirm.clone(),
            };
            Command::Run(Box::new(ReplayRequest { redrive: Some(redrive), ..request }))
        }
        Some("redrive-message") => {
            let one = RedriveMessage {
                queue: SourceQueue::parse(&word(1).ok_or(USAGE)?)?,
                message_id: word(2).ok_or(USAGE)?,
                dry_run: args.dry_run,
                r#override: args.override_reason.clone(),
                confirm: args.confirm.clone(),
            };
            Command::Run(Box::new(ReplayRequest { redrive_message: Some(one), ..request }))
        }
        Some("resolve") => {
            let process = word(1).ok_or(USAGE)?;
            let named =
                || format!("name the held call and attempt you answer (polis-ops list shows them)\n{USAGE}");
            let effect = word(2).ok_or_else(named)?;
            let attempt = word(3).and_then(|a| a.parse().ok()).ok_or_else(named)?;
            let resolution = match word(4).as_deref() {
                Some("happened") => Resolution::Happened { reference: word(5), number: word(6) },
                Some("did-not-happen") => Resolution::DidNotHappen,
                _ => return Err(USAGE.into()),
            };
            Command::Run(Box::new(ReplayRequest {
                resolve: Some(Resolve { process, effect, attempt, resolution }),
                ..request
            }))
        }
        _ => return Err(USAGE.into()),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("polis-ops: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::read(std::env::args().skip(1))?;
    let json = args.json;
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
                match json {
                    true => println!("{}", serde_json::to_string(&item)?),
                    false => println!(
                        "{}\t{}\t{}\t{}\t{}",
                        item.id,
                        item.origin.source(),
                        item.origin.about(),
                        utc(item.received_at_ms),
                        item.reason
                    ),
                }
            }
        }
        Command::ListDeadLetters => {
            for plan in replayer.list_dead_letters().await? {
                println!("{}", serde_json::to_string(&plan)?);
            }
        }
        Command::Run(request) => {
            println!("{}", serde_json::to_string_pretty(&replayer.run(*request).await?)?)
        }
    }
    Ok(())
}
