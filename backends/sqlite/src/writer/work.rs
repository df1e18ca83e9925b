//! A unit of work's handle: its savepoint on the writer's connection,
//! usable while it is the open one; dropped unkept, its writes are undone.

use std::ops::Deref;
use std::sync::MutexGuard;

use anyhow::{Result, bail};
use rusqlite::Connection;

use super::{WriterCell, WriterState, end_unit, lock};

/// One unit of work: a savepoint on the writer's connection, usable while
/// it is the open one.
pub(crate) struct SqliteWork {
    pub(super) shared: WriterCell,
    pub(super) unit: u64,
}

/// The writer's connection, borrowed by the open unit of work.
pub(crate) struct Conn<'a>(MutexGuard<'a, WriterState>);

impl Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl SqliteWork {
    pub(crate) fn conn(&self) -> Result<Conn<'_>> {
        let state = lock(&self.shared);
        if !state.is_open(self.unit) {
            bail!("this unit of work has ended");
        }
        Ok(Conn(state))
    }

    /// Keeps this unit's writes in the batch.
    pub(crate) fn keep(self) -> Result<()> {
        let mut state = lock(&self.shared);
        if !state.is_open(self.unit) {
            bail!("this unit of work has ended");
        }
        end_unit(&mut state, true)
        // `Drop` then finds the unit closed.
    }
}

impl Drop for SqliteWork {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        if state.is_open(self.unit) {
            let _ = end_unit(&mut state, false);
        }
    }
}
