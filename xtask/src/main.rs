//! `cargo xtask check`: runs every architecture and tidy check on this
//! workspace and prints what is broken, for use outside `cargo test`.
//! `cargo xtask new-capability NAME [--dir DIR]`: writes a new
//! capability's two crates under `capabilities/` (or `DIR`).

use std::process::ExitCode;

use xtask::{arch, report, scaffold, tidy, workspace_root};

fn main() -> anyhow::Result<ExitCode> {
    match std::env::args().nth(1).as_deref() {
        Some("check") => {
            let root = workspace_root();
            let mut violations = arch::check(&arch::Workspace::load(&root)?);
            violations.extend(tidy::check(&tidy::collect(&root)?));
            if violations.is_empty() {
                println!("all architecture invariants hold");
                Ok(ExitCode::SUCCESS)
            } else {
                eprint!("{}", report(&violations));
                Ok(ExitCode::FAILURE)
            }
        }
        Some("new-capability") => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            let (name, dir) = match args.as_slice() {
                [name] => (name, "capabilities"),
                [name, flag, dir] if flag == "--dir" => (name, dir.as_str()),
                _ => {
                    eprintln!("usage: cargo xtask new-capability NAME [--dir DIR]");
                    return Ok(ExitCode::from(2));
                }
            };
            let root = workspace_root();
            let written = scaffold::write(&root.join(dir), name)?;
            for path in &written {
                println!(
                    "wrote {}",
                    path.strip_prefix(&root).unwrap_or(path).display()
                );
            }
            // The templates are laid out for one name length; rustfmt
            // settles the rest (import order, line breaks).
            let sources = written
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "rs"));
            let formatted = std::process::Command::new("rustfmt")
                .args(["--edition", "2024"])
                .args(sources)
                .status();
            if !formatted.is_ok_and(|s| s.success()) {
                eprintln!("rustfmt did not run on what was written; run `cargo fmt`");
            }
            let krate = name.replace('-', "_");
            println!(
                "\nNext: `cargo test -p {name}`; to run it in the shop, add to app/shop/Cargo.toml\n  \
                 {name} = {{ path = \"../../{dir}/{name}\" }}\n\
                 and to app/shop/src/capabilities.rs's TABLE\n  capability!({krate}),\n\
                 then `shop contracts snapshot`. docs/write-a-capability.md walks through the rest."
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("usage: cargo xtask check | cargo xtask new-capability NAME [--dir DIR]");
            Ok(ExitCode::from(2))
        }
    }
}
