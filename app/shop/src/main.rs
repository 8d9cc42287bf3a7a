//! The `shop` command: starts the runtime and hands over to the library.

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(shop::cli::main())
}
