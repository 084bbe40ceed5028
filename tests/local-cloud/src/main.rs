//! `local-cloud`: brings the template up on the emulator and serves it until Ctrl-C.
//!
//! Options: `--template template.yaml --stack polis-local --http 127.0.0.1:3000
//! --runtime 127.0.0.1:9001 --bin-dir target/debug --log-dir .local/logs
//! --param Name=Value ... --resources-out .local/resources.json --schedule-seconds 60`
//! (`--schedule-seconds`: run scheduled functions this often instead of at their rates)

use std::collections::BTreeMap;
use std::path::PathBuf;

use polis_local_cloud::{CloudOptions, LocalCloud};

fn platform_env() -> Vec<(String, String)> {
    ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .chain([("S3_FORCE_PATH_STYLE".to_owned(), "true".to_owned())])
        .chain(polis_local_cloud::own_emulators_from_env())
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut options = CloudOptions {
        template: "template.yaml".into(),
        stack: "polis-local".into(),
        http_listen: "127.0.0.1:3000".parse()?,
        runtime_listen: "127.0.0.1:9001".parse()?,
        bin_dir: "target/debug".into(),
        log_dir: ".local/logs".into(),
        parameters: BTreeMap::new(),
        platform_env: platform_env(),
        env_overrides: Vec::new(),
        instances: 1,
        schedule_every: None,
        traces: false,
    };
    let mut resources_out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--template" => options.template = value.into(),
            "--stack" => options.stack = value,
            "--http" => options.http_listen = value.parse()?,
            "--runtime" => options.runtime_listen = value.parse()?,
            "--bin-dir" => options.bin_dir = value.into(),
            "--log-dir" => options.log_dir = value.into(),
            "--instances" => options.instances = value.parse()?,
            "--resources-out" => resources_out = Some(value.into()),
            "--schedule-seconds" => {
                options.schedule_every = Some(std::time::Duration::from_secs_f64(value.parse()?))
            }
            "--param" => {
                let (k, v) = value.split_once('=').ok_or("--param takes Name=Value")?;
                options.parameters.insert(k.to_owned(), v.to_owned());
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let sdk = polis::adapters::config::aws().await;
    let cloud = LocalCloud::start(options, &sdk).await?;
    println!("local-cloud: hook API on {}", cloud.http_url);
    for route in &cloud.routes {
        println!("  {} {} -> {}", route.method, route.path, route.function);
    }
    if let Some(path) = resources_out {
        std::fs::write(&path, serde_json::to_string_pretty(&cloud.resources)?)?;
        println!("local-cloud: resources written to {}", path.display());
    }
    tokio::signal::ctrl_c().await?;
    cloud.stop();
    Ok(())
}
