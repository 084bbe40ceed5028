//! hook: the Lambda behind one MUST hook path. Every hook function runs this
//! binary; each knows its hook from `HOOK_PATH` (set by the template, one value per
//! function) and refuses any other path.

use polis::adapters::config::var;
use polis::domain::must::hook::HookKind;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let path = var("HOOK_PATH")?;
    let kind = HookKind::from_path(&path).ok_or_else(|| format!("HOOK_PATH {path:?} is no MUST hook"))?;
    polis_hooks::run(kind).await
}
