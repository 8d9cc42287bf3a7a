//! The `shop` command: starts the runtime and hands over to the library.

/// mimalloc instead of glibc's allocator: an invoice made about 1,070 Rust
/// allocations and glibc's malloc, free and realloc were a quarter of the
/// invoice's instructions (BENCHMARKS.md, "Instructions per invoice"). With
/// its `override` feature mimalloc also provides `malloc` and `free` to the
/// C code linked into `shop`, so the bundled SQLite's own allocations
/// (about 230 an invoice) go through it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Everything this process creates (databases, their journals, mail,
    // keys, tokens, the discovery file) is its user's alone: 0600 files,
    // 0700 directories, whatever the shell's umask was.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // Taken before any other thread exists: taking it clears `LISTEN_FDS`
    // from the environment, which is only sound while no thread reads it.
    let passed = shop::cli::passed_socket()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(shop::cli::main(passed))
}
