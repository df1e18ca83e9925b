//! The self-service flows in PostgreSQL.

use anyhow::Result;

use super::{Conn, PgWork, PostgresStorage};
use crate::storage::{FlowSteps, Flows, Pending, StoredFlow, from_db, to_db};

impl Flows for PostgresStorage {
    fn flow(&self, id: &str) -> Result<Option<StoredFlow>> {
        let id = id.to_owned();
        self.call(move |conn| {
            let rows = conn.query(
                "SELECT id, expires_at, version, body FROM self_service_flows WHERE id = $1",
                &[&id],
            )?;
            Ok(rows.first().map(|r| StoredFlow {
                id: r.get(0),
                expires_at: from_db(r.get(1)),
                version: from_db(r.get(2)),
                body: r.get(3),
            }))
        })
        .wait()
    }

    fn save_flows(
        &self,
        replace: Option<&StoredFlow>,
        insert: &[StoredFlow],
        put: &[StoredFlow],
    ) -> Pending<bool> {
        let (replace, insert, put) = (replace.cloned(), insert.to_vec(), put.to_vec());
        self.transaction(move |conn| save_step(conn, replace.as_ref(), &insert, &put))
    }

    fn purge_flows(&self, before: u64) -> Result<u64> {
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM self_service_flows WHERE expires_at < $1",
                &[&to_db(before)],
            )
        })
        .wait()
    }
}

impl FlowSteps for PgWork {
    fn save_flow_step(
        &mut self,
        replace: Option<&StoredFlow>,
        insert: &[StoredFlow],
        put: &[StoredFlow],
    ) -> Result<bool> {
        let mut conn = self.conn()?;
        save_step(&mut conn, replace, insert, put)
    }
}

/// A step's statements, in the transaction they are given: the replace
/// first, so that a lost race writes nothing. Two replicas replacing one
/// version: the second's UPDATE waits for the first's commit, then matches
/// no row.
fn save_step(
    conn: &mut Conn,
    replace: Option<&StoredFlow>,
    insert: &[StoredFlow],
    put: &[StoredFlow],
) -> Result<bool> {
    if let Some(flow) = replace {
        let replaced = conn.execute(
            "UPDATE self_service_flows SET expires_at = $1, version = version + 1, body = $2
             WHERE id = $3 AND version = $4",
            &[
                &to_db(flow.expires_at),
                &flow.body,
                &flow.id,
                &to_db(flow.version),
            ],
        )?;
        if replaced != 1 {
            return Ok(false);
        }
    }
    for flow in insert {
        conn.execute(
            "INSERT INTO self_service_flows (id, expires_at, version, body)
             VALUES ($1, $2, $3, $4)",
            &[
                &flow.id,
                &to_db(flow.expires_at),
                &to_db(flow.version),
                &flow.body,
            ],
        )?;
    }
    for flow in put {
        conn.execute(
            "INSERT INTO self_service_flows (id, expires_at, version, body)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at,
                 version = self_service_flows.version + 1, body = excluded.body",
            &[
                &flow.id,
                &to_db(flow.expires_at),
                &to_db(flow.version),
                &flow.body,
            ],
        )?;
    }
    Ok(true)
}
