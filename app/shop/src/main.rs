//! The `shop` command: starts the runtime and hands over to the library.

fn main() -> anyhow::Result<()> {
    // Taken before any other thread exists: taking it clears `LISTEN_FDS`
    // from the environment, which is only sound while no thread reads it.
    let passed = shop::cli::passed_socket()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(shop::cli::main(passed))
}
