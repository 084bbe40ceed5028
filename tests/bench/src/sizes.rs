//! The zipped `bootstrap` of each function, as Lambda would receive it (zip -9).

use std::collections::BTreeMap;

use polis_e2e::{BoxError, Harness};

use crate::Row;

pub fn zipped(h: &Harness) -> Result<Vec<Row>, BoxError> {
    let mut by_kind: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let dir = std::env::temp_dir().join(format!("polis-bench-zip-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for launch in &h.cloud.launches {
        let raw = std::fs::metadata(&launch.binary)?.len();
        let bootstrap = dir.join("bootstrap");
        std::fs::copy(&launch.binary, &bootstrap)?;
        let zip = dir.join("function.zip");
        let _ = std::fs::remove_file(&zip);
        let status = std::process::Command::new("zip").arg("-9qj").arg(&zip).arg(&bootstrap).status()?;
        if !status.success() {
            return Err("zip failed (is zip installed?)".into());
        }
        let zipped = std::fs::metadata(&zip)?.len();
        let kind = if launch.function.starts_with("Hook") {
            "hook (x14)".to_owned()
        } else {
            launch.function.clone()
        };
        let entry = by_kind.entry(kind).or_default();
        *entry = (entry.0.max(raw), entry.1.max(zipped));
    }
    let mb = |b: u64| b as f64 / 1_048_576.0;
    Ok(by_kind
        .into_iter()
        .map(|(kind, (raw, zipped))| {
            Row::new(
                format!("zipped bootstrap, {kind}"),
                format!("{:.2} MB ({:.2} MB unzipped)", mb(zipped), mb(raw)),
                if mb(zipped) < 5.0 { "< 5 MB: met" } else { "< 5 MB: NOT met" },
            )
        })
        .collect())
}
