//! replay (Lambda, invoked by an operator): one action named in full, e.g.
//! `{"by": "anna", "redrive": {"item": "<kept id>", "dryRun": true}}` or
//! `{"by": "anna", "resolve": {"process": "LOAN#L-7", "attempt": 1, "resolution": "did-not-happen"}}`
//! (see `polis_replay::ReplayRequest`) → what it did, or would do. An empty request is refused (it names no action).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use polis_replay::{ReplayRequest, Replayer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    polis::telemetry::init();
    let replayer = Replayer::from_env().await?;
    let replayer = &replayer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let request: ReplayRequest = serde_json::from_value(event.payload)?;
        Ok::<_, Error>(serde_json::to_value(replayer.run(request).await?)?)
    }))
    .await
}
