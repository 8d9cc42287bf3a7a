//! The `shop` command: parses arguments and hands over to the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = shop::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(shop::cli::run(cli))
}
