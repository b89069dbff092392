//! Copying the SQLite read store's write-ahead log into the database, beside the writer.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: the
//! projector's batch then waits while the WAL is copied and the database file synced, which
//! took about a third of a batch's time when small batches of random customers were written
//! (250 customers, 100 000 in the book). The store's connections turn it off; after each commit a
//! thread with a connection of its own runs a PASSIVE checkpoint (it takes no lock a reader or
//! the writer needs), so the next batch is loaded, folded and written meanwhile.
//! `ReadStore::bound_wal` still restarts the WAL from the writer once it grows past its bound.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Wakes the checkpoint thread; cloned into every transaction. The thread ends when the last
/// clone is dropped.
#[derive(Clone, Debug)]
pub(crate) struct WalCheckpoints {
    wake: SyncSender<()>,
    /// Held while a checkpoint runs: SQLite lets one checkpoint run at a time and fails any
    /// other at once, so `ReadStore::bound_wal` takes this before it truncates.
    pub(crate) running: Arc<tokio::sync::Mutex<()>>,
}

impl WalCheckpoints {
    /// Starts the thread for the database at `path`.
    pub(crate) fn start(path: &Path) -> std::io::Result<Self> {
        let (wake, woken) = mpsc::sync_channel(1);
        let running = Arc::new(tokio::sync::Mutex::new(()));
        let path = path.to_path_buf();
        let lock = running.clone();
        std::thread::Builder::new()
            .name("readstore-checkpoint".into())
            .spawn(move || run(&path, woken, &lock))?;
        Ok(Self { wake, running })
    }

    /// Called after a commit: the thread copies what the WAL holds into the database. Never
    /// blocks; a wake-up already pending covers this one.
    pub(crate) fn committed(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("the read store's checkpoint thread has stopped")
            }
        }
    }
}

fn run(path: &Path, woken: Receiver<()>, running: &tokio::sync::Mutex<()>) {
    let mut conn: Option<rusqlite::Connection> = None;
    while woken.recv().is_ok() {
        let _running = running.blocking_lock();
        let c = match conn.take() {
            Some(c) => c,
            None => match rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            ) {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(error = %err, "opening the read store to checkpoint its WAL failed");
                    continue;
                }
            },
        };
        // (busy, frames in the WAL, frames copied); PASSIVE never waits, so busy is only set
        // when another process was checkpointing.
        match c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        }) {
            Ok((busy, frames, copied)) => {
                tracing::trace!(busy, frames, copied, "checkpointed the read store's WAL");
                conn = Some(c);
            }
            Err(err) => tracing::warn!(error = %err, "checkpointing the read store's WAL failed"),
        }
    }
}
