//! `cargo run -p xtask -- check`: runs every architecture and tidy check on this
//! workspace and prints what is broken, for use outside `cargo test`.

use std::process::ExitCode;

use xtask::{arch, report, tidy, workspace_root};

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
        _ => {
            eprintln!("usage: cargo run -p xtask -- check");
            Ok(ExitCode::from(2))
        }
    }
}
