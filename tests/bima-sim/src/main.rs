//! bima-sim: the BIMA simulator as a process. Configured by environment:
//! `BIMA_SIM_LISTEN` (127.0.0.1:4020), `BIMA_SIM_CLIENT_ID`, `BIMA_SIM_CLIENT_SECRET`.

use polis_bima_sim::{start, SimConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).ok();
    let defaults = SimConfig::default();
    let config = SimConfig {
        client_id: env("BIMA_SIM_CLIENT_ID").unwrap_or(defaults.client_id.clone()),
        client_secret: env("BIMA_SIM_CLIENT_SECRET").unwrap_or(defaults.client_secret.clone()),
        ..defaults
    };
    let listen = env("BIMA_SIM_LISTEN").unwrap_or_else(|| "127.0.0.1:4020".into()).parse()?;
    let handle = start(config, listen).await?;
    println!("bima-sim listening on {}", handle.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
