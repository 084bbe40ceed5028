//! replay (Lambda, invoked by an operator): one action named in full, e.g.
//! `{"by": "anna", "redrive": {"item": "<kept id>", "dryRun": true}}` or
//! `{"by": "anna", "resolve": {"process": "LOAN#L-7", "attempt": 1, "resolution": "did-not-happen"}}`
//! (see `polis_replay::ReplayRequest`) → what it did, or would do. An empty request is refused (it names no action).

use lambda_runtime::Error;
use polis_replay::{ReplayRequest, Replayer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    polis::telemetry::init();
    let replayer = Replayer::from_env().await?;
    let replayer = &replayer;
    polis_lambda::run_json(move |event: serde_json::Value| async move {
        let request: ReplayRequest = serde_json::from_value(event)?;
        Ok::<_, Error>(serde_json::to_value(replayer.run(request).await?)?)
    })
    .await
}
