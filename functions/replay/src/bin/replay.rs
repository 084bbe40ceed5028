//! replay (Lambda, invoked by an operator): `{"quarantine": true, "deadLetters": true}` →
//! what was re-driven, what still fails and why, how many dead letters moved back.

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
