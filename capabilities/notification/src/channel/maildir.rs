//! The maildir channel: delivers each message as a file in a local Maildir.
//!
//! This is the default channel because it needs no server, survives
//! restarts, and any mail client (mutt, `mail -f`, Thunderbird) or test can
//! read it. The layout is the classic one (<https://cr.yp.to/proto/maildir.html>):
//! a message is written under `tmp/`, flushed, then renamed into `new/`, so a
//! reader never sees half a message; a reader marks it seen by moving it to
//! `cur/` with a `:2,FLAGS` suffix.
//!
//! Delivery is idempotent by delivery id, because the worker may crash after
//! delivering and before recording the delivery, and then deliver again. The
//! final file name is therefore derived from the id alone (`{id}.seams`)
//! instead of the usual `time.pid_random.host` name the `maildir` crate
//! generates: Maildir only requires names to be unique, a delivery id is
//! unique, and a deterministic name is what lets a redelivery see that the
//! message is already there (in `new/`, or in `cur/` after a reader moved it)
//! and do nothing. A random name would make every retry a duplicate e-mail.
//!
//! The one window left is a reader moving the file from `new/` to `cur/`
//! between our check and our rename; the same message then appears twice.
//! That needs a crash-and-retry to coincide with a reader, and the copies
//! share a `Message-ID`, so it is accepted rather than locked against.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Channel, DeliveryError, Mailbox, Message, check_id, render};

/// A [`Channel`] that writes each message into a Maildir on local disk.
#[derive(Debug, Clone)]
pub struct Maildir {
    /// The Maildir itself: the directory holding `tmp/`, `new/` and `cur/`.
    root: PathBuf,
    /// The `From` of every message, e.g. `Seams Shop <shop@localhost>`.
    from: Mailbox,
}

/// What a blocking delivery did; only used for logging.
enum Outcome {
    Written,
    AlreadyThere,
}

impl Maildir {
    /// Opens the Maildir at `root`, creating it and its `tmp/`, `new/` and
    /// `cur/` subdirectories if they are missing. Mail is personal data:
    /// the directories are its owner's alone (0700), as is every message
    /// (0600).
    pub fn new(root: impl Into<PathBuf>, from: Mailbox) -> io::Result<Self> {
        let root = root.into();
        for sub in ["tmp", "new", "cur"] {
            let mut dir = fs::DirBuilder::new();
            dir.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
            dir.create(root.join(sub))?;
        }
        Ok(Self { root, from })
    }

    /// The directory holding `tmp/`, `new/` and `cur/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every delivered message file, from `new/` and `cur/`, sorted by path.
    ///
    /// For tests and the end-to-end suite: the files are complete RFC 5322
    /// messages (LF line endings) that can be read as they are.
    pub fn delivered(&self) -> io::Result<Vec<PathBuf>> {
        let mut paths = Vec::new();
        for sub in ["new", "cur"] {
            for entry in fs::read_dir(self.root.join(sub))? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    paths.push(entry.path());
                }
            }
        }
        paths.sort();
        Ok(paths)
    }

    /// How many delivered files (in `new/` or `cur/`) carry delivery `id`.
    /// One after any number of deliveries of that id; zero before.
    pub fn count_for(&self, id: &str) -> io::Result<usize> {
        count_named(&self.root, &file_name(id))
    }
}

impl Channel for Maildir {
    fn name(&self) -> &'static str {
        "maildir"
    }

    fn deliver<'a>(
        &'a self,
        msg: &'a Message,
    ) -> seams_core::BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            // `render` checks the id too; checked here as well because it is
            // what keeps the file name inside the maildir (no `/`, no `..`).
            check_id(&msg.id)?;
            let bytes = to_local_line_endings(&render(msg, &self.from)?.formatted());
            let root = self.root.clone();
            let id = msg.id.clone();
            // std::fs plus fsync in one blocking task: tokio::fs would hop to
            // the blocking pool once per call anyway.
            let outcome = tokio::task::spawn_blocking(move || write_once(&root, &id, &bytes))
                .await
                .map_err(|err| DeliveryError::Transient(format!("maildir task failed: {err}")))?
                // Disk full, permissions, a vanished directory: all things an
                // operator can fix, after which the same message will go through.
                .map_err(|err| DeliveryError::Transient(format!("maildir write failed: {err}")))?;
            match outcome {
                Outcome::Written => tracing::debug!(id = %msg.id, "delivered to maildir"),
                Outcome::AlreadyThere => {
                    tracing::debug!(id = %msg.id, "already in maildir, not delivered again")
                }
            }
            Ok(())
        })
    }
}

/// The file name of delivery `id` in `new/`; in `cur/` it gains `:2,FLAGS`.
fn file_name(id: &str) -> String {
    format!("{id}.seams")
}

/// Whether `name` is the file `base`, with or without a Maildir info suffix
/// (`:2,S` and the like, added by readers when they move a file to `cur/`).
fn is_named(name: &str, base: &str) -> bool {
    name.strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

/// Counts files in `new/` and `cur/` that are `base` with any info suffix.
fn count_named(root: &Path, base: &str) -> io::Result<usize> {
    let in_new = usize::from(root.join("new").join(base).exists());
    Ok(in_new + count_in_cur(root, base)?)
}

/// Files in `cur/` that are `base` with any info suffix. A scan, because
/// the suffix is the reader's choice; `cur/` holds only what a reader has
/// looked at, while `new/` (where every delivery lands, and which grows
/// with every mail until a reader takes it) is tested with one `stat`.
fn count_in_cur(root: &Path, base: &str) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(root.join("cur"))? {
        if is_named(&entry?.file_name().to_string_lossy(), base) {
            n += 1;
        }
    }
    Ok(n)
}

/// Writes `bytes` as delivery `id` unless it is already delivered.
fn write_once(root: &Path, id: &str, bytes: &[u8]) -> io::Result<Outcome> {
    let name = file_name(id);
    if root.join("new").join(&name).exists() || count_in_cur(root, &name)? > 0 {
        return Ok(Outcome::AlreadyThere);
    }
    let tmp = root.join("tmp").join(tmp_name(id));
    let res = write_synced(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, root.join("new").join(&name)))
        // The rename is only durable once the directory entry is on disk; a
        // crash before that could lose a message we already reported as sent.
        .and_then(|()| File::open(root.join("new"))?.sync_all());
    if res.is_err() {
        // Best effort: a leftover is harmless (Maildir readers ignore tmp/)
        // but would otherwise accumulate on a failing disk.
        let _ = fs::remove_file(&tmp);
    }
    res.map(|()| Outcome::Written)
}

/// A name in `tmp/` no concurrent writer uses: two deliveries of the same id
/// racing (two workers, or a retry overlapping a slow first attempt) must not
/// interleave their bytes in one file. The loser's rename just replaces the
/// winner's file in `new/` with identical content.
fn tmp_name(id: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{id}.{}_{seq}.seams", std::process::id())
}

/// Creates `path` with `bytes` and flushes it to disk before returning, so
/// that the rename into `new/` never publishes a file whose data is lost.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .create(true)
        // A leftover from a crashed process that had the same pid.
        .truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Turns CRLF into LF: SMTP puts CRLF on the wire, but files in a Maildir
/// use the local convention, and mail readers and MDAs expect `\n`.
pub(super) fn to_local_line_endings(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut from = 0;
    // A line at a time (memchr finds each CRLF), not a byte at a time: the
    // `\n` of each CRLF starts the next piece copied.
    for at in memchr::memmem::find_iter(bytes, b"\r\n") {
        out.extend_from_slice(&bytes[from..at]);
        from = at + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out
}
