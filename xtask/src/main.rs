//! `cargo run -p xtask -- template`: writes `template.yaml`'s generated parts.
//! `cargo run -p xtask -- template --check`: fails when they are stale.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("template") {
        return Err("usage: xtask template [--check]".into());
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let current = std::fs::read_to_string(&path)?;
    let generated = xtask::generate(&current)?;
    if args.get(1).map(String::as_str) == Some("--check") {
        if generated != current {
            return Err("template.yaml is stale: run `cargo run -p xtask -- template`".into());
        }
        println!("template.yaml is up to date");
    } else if generated != current {
        std::fs::write(&path, generated)?;
        println!("template.yaml written");
    } else {
        println!("template.yaml is up to date");
    }
    Ok(())
}
