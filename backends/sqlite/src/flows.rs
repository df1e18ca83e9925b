//! The self-service flows in SQLite.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStorage;
use super::writer::SqliteWork;
use crate::storage::{FlowSteps, Flows, Pending, StoredFlow, from_db, to_db};

impl Flows for SqliteStorage {
    fn flow(&self, id: &str) -> Result<Option<StoredFlow>> {
        self.with_connection(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id, expires_at, version, body FROM self_service_flows WHERE id = ?",
                )?
                .query_row([id], |r| {
                    Ok(StoredFlow {
                        id: r.get(0)?,
                        expires_at: from_db(r.get(1)?),
                        version: from_db(r.get(2)?),
                        body: r.get(3)?,
                    })
                })
                .optional()?)
        })
    }

    fn save_flows(
        &self,
        replace: Option<&StoredFlow>,
        insert: &[StoredFlow],
        put: &[StoredFlow],
    ) -> Pending<bool> {
        let (replace, insert, put) = (replace.cloned(), insert.to_vec(), put.to_vec());
        // One unit of the writer: undone whole if any statement fails.
        self.write(move |conn| save_step(conn, replace.as_ref(), &insert, &put))
    }

    fn purge_flows(&self, before: u64) -> Result<u64> {
        self.with_writer(move |conn| {
            let purged = conn
                .prepare_cached("DELETE FROM self_service_flows WHERE expires_at < ?")?
                .execute([to_db(before)])?;
            Ok(purged as u64)
        })
    }
}

impl FlowSteps for SqliteWork {
    fn save_flow_step(
        &mut self,
        replace: Option<&StoredFlow>,
        insert: &[StoredFlow],
        put: &[StoredFlow],
    ) -> Result<bool> {
        save_step(&*self.conn()?, replace, insert, put)
    }
}

/// A step's statements, in the transaction they are given: the replace
/// first, so that a lost race writes nothing.
fn save_step(
    conn: &Connection,
    replace: Option<&StoredFlow>,
    insert: &[StoredFlow],
    put: &[StoredFlow],
) -> Result<bool> {
    if let Some(flow) = replace {
        let replaced = conn
            .prepare_cached(
                "UPDATE self_service_flows SET expires_at = ?, version = version + 1, body = ?
                 WHERE id = ? AND version = ?",
            )?
            .execute(params![
                to_db(flow.expires_at),
                flow.body,
                flow.id,
                to_db(flow.version)
            ])?;
        if replaced != 1 {
            return Ok(false);
        }
    }
    for flow in insert {
        conn.prepare_cached(
            "INSERT INTO self_service_flows (id, expires_at, version, body) VALUES (?, ?, ?, ?)",
        )?
        .execute(params![
            flow.id,
            to_db(flow.expires_at),
            to_db(flow.version),
            flow.body
        ])?;
    }
    for flow in put {
        conn.prepare_cached(
            "INSERT INTO self_service_flows (id, expires_at, version, body) VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at,
                 version = self_service_flows.version + 1, body = excluded.body",
        )?
        .execute(params![
            flow.id,
            to_db(flow.expires_at),
            to_db(flow.version),
            flow.body
        ])?;
    }
    Ok(true)
}
