//! WAL checkpoints off the writer's thread. A checkpoint copies the log
//! back into the database file and syncs it; run by the committing thread
//! (SQLite's default), that sync stalls every unit of work queued behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

/// Log size, in pages, at which the checkpointer copies the log back
/// (SQLite's own auto-checkpoint default).
const CHECKPOINT_PAGES: i32 = 1000;
/// Log size at which the writer checkpoints itself between batches. Under
/// steady load the checkpointer never catches up with the very last
/// commit, and SQLite starts the log over only when it has; this bounds
/// the log (8000 pages of 4 KiB: 32 MiB).
const CATCH_UP_PAGES: i32 = 8 * CHECKPOINT_PAGES;

/// The checkpointer thread, and the writer's view of the log's size.
pub(super) struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    log_pages: Arc<AtomicI32>,
}

impl Checkpointer {
    /// Starts the thread on `own` and makes `writer` report its commits to
    /// it instead of checkpointing after them.
    pub(super) fn start(writer: &mut Connection, own: Connection) -> Result<Self> {
        let (wake, woken) = sync_channel(1);
        let log_pages = Arc::new(AtomicI32::new(0));
        let hook_pages = Arc::clone(&log_pages);
        let hook_wake = wake.clone();
        // Replaces SQLite's auto-checkpoint, which is itself this hook.
        writer.wal_hook(Some(move |_: &mut _, pages: i32| {
            hook_pages.store(pages, Ordering::Relaxed);
            if pages >= CHECKPOINT_PAGES {
                // Full: a wake-up is already pending.
                let _ = hook_wake.try_send(());
            }
            Ok(())
        }))?;
        let thread = std::thread::Builder::new()
            .name("reclaim-checkpoint".into())
            .spawn(move || run(&own, &woken))
            .context("starting the SQLite checkpointer thread")?;
        Ok(Self {
            wake: Some(wake),
            thread: Some(thread),
            log_pages,
        })
    }

    /// Whether the log has grown past the point where the writer should
    /// checkpoint it itself.
    pub(super) fn writer_must_catch_up(&self) -> bool {
        self.log_pages.load(Ordering::Relaxed) >= CATCH_UP_PAGES
    }

    /// The writer's own checkpoint: nothing is appended meanwhile, so it
    /// finishes the log and the next commit starts it over.
    pub(super) fn catch_up(&self, writer: &Connection) {
        match writer.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok(_) => self.log_pages.store(0, Ordering::Relaxed),
            // The checkpointer is at it; the writer tries again after its
            // next batch.
            Err(e) if is_busy(&e) => {}
            Err(e) => tracing::warn!(error = %e, "checkpoint by the writer failed"),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, woken: &Receiver<()>) {
    // The writer's hook holds a sender too: the thread ends once the
    // writer's connection is closed and this handle dropped, in that order
    // (see `WriterState`).
    while woken.recv().is_ok() {
        // PASSIVE never waits for the writer or readers; what it could not
        // copy is copied next time.
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok(_) => {}
            // Another connection (another process, or the writer catching
            // up) is checkpointing: that one does the work.
            Err(e) if is_busy(&e) => tracing::debug!("checkpoint skipped: another is running"),
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint failed; the log keeps growing until one succeeds")
            }
        }
    }
}

/// Another connection holds the checkpoint lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DatabaseBusy)
}
