//! must-sim: the MUST simulator as a process. Configured by environment:
//! `MUST_SIM_LISTEN` (127.0.0.1:4010), `MUST_SIM_HOOK_BASE_URL`, `MUST_SIM_HOOK_SECRET` or
//! `MUST_SIM_HOOK_SIGNING_SECRET` (`whsec_…`: sign hooks the Standard Webhooks way),
//! `MUST_SIM_LOGIN`, `MUST_SIM_PASSWORD`.

use polis_must_sim::{start, HookSigning, SimConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok();
    let defaults = SimConfig::default();
    let config = SimConfig {
        hook_base_url: env("MUST_SIM_HOOK_BASE_URL").unwrap_or(defaults.hook_base_url.clone()),
        hook_auth: match (env("MUST_SIM_HOOK_SIGNING_SECRET"), env("MUST_SIM_HOOK_SECRET")) {
            (Some(signing), _) => HookSigning::Sign(signing),
            (None, Some(secret)) => HookSigning::Secret(secret),
            (None, None) => defaults.hook_auth.clone(),
        },
        login: env("MUST_SIM_LOGIN").unwrap_or(defaults.login.clone()),
        password: env("MUST_SIM_PASSWORD").unwrap_or(defaults.password.clone()),
        ..defaults
    };
    let listen = env("MUST_SIM_LISTEN").unwrap_or_else(|| "127.0.0.1:4010".into()).parse()?;
    let handle = start(config, listen).await?;
    println!("must-sim listening on {}", handle.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
