//! Writes the seed corpus of every target to `fuzz/corpus/<target>/`
//! (`cargo run --manifest-path fuzz/Cargo.toml --example seeds`): the seeds
//! come from the real types, so this is how they are remade when a wire
//! format changes.

use std::path::Path;

use seams_fuzz::seeds::{self, Seed};

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets: [(&str, Vec<Seed>); 3] = [
        ("envelope", seeds::envelopes()),
        ("token", seeds::tokens()),
        ("config", seeds::configs()),
    ];
    for (target, seeds) in targets {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in seeds {
            std::fs::write(dir.join(name), bytes)?;
        }
        println!("{}: seeds written", dir.display());
    }
    Ok(())
}
