//! The composition root: [`open`] is the one place that names a concrete
//! backend and picks one for a [`Location`]. Each backend is a crate of its
//! own (`backends/` at the repository's root), implementing the storage
//! seam (`reclaim-storage`) file for file.

use std::sync::Arc;

use anyhow::Result;

use crate::storage::{Backend, Unavailable, UnitOfWork};

pub use crate::storage::directory::DirectoryQueries;
pub use reclaim_memory::{self as memory, MemoryStorage};
#[cfg(feature = "postgres")]
pub use reclaim_postgres::{self as postgres, PostgresStorage};
pub use reclaim_sqlite::{self as sqlite, Durability, SqliteStorage};

/// Where and how the backend keeps its data.
#[derive(Clone, Debug)]
pub enum Location {
    /// One SQLite file.
    Sqlite {
        path: std::path::PathBuf,
        durability: Durability,
    },
    /// A PostgreSQL database, shared by any number of processes
    /// (`postgres://user:pass@host:port/db`).
    Postgres {
        url: String,
        /// PEM certificates to trust for TLS (`sslmode=require`), besides
        /// the public roots.
        ca: Option<std::path::PathBuf>,
        /// The platform's own user table as the directory, in place of
        /// Reclaim's `identities`.
        directory: Option<DirectoryQueries>,
    },
    /// Process memory: gone when the process ends (tests, benchmarks).
    Memory,
}

/// Opens the backend at `location`: the one function that names a
/// concrete backend.
pub fn open(location: &Location) -> Result<Arc<dyn Backend>> {
    Ok(match location {
        Location::Sqlite { path, durability } => {
            Arc::new(SqliteStorage::open_with(path, *durability)?)
        }
        #[cfg(feature = "postgres")]
        Location::Postgres { url, ca, directory } => Arc::new(PostgresStorage::open_with(
            url,
            ca.as_deref(),
            directory.as_ref(),
        )?),
        #[cfg(not(feature = "postgres"))]
        Location::Postgres { .. } => {
            anyhow::bail!(
                "this build of reclaim has no PostgreSQL backend (its `postgres` feature)"
            )
        }
        Location::Memory => Arc::new(MemoryStorage::new()),
    })
}

/// Whether `error` says the backend was out of reach, or out of space: the
/// seam's [`Unavailable`], which each backend wraps its lost connections
/// in, or a full SQLite disk, which a statement inside a unit of work
/// reports as itself.
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.is::<Unavailable>() || sqlite::is_out_of_space(cause))
}

/// A unit of work over nothing, for a call that must not touch a backend
/// (warming the runtime up).
pub fn scratch_unit() -> Result<Box<dyn UnitOfWork>> {
    MemoryStorage::new().begin()
}

#[cfg(test)]
mod tests;
