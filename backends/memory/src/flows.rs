//! The self-service flows in memory.

use anyhow::Result;

use super::{MemoryStorage, MemoryWork, Tables, Undo};
use crate::storage::{FlowSteps, Flows, Pending, StoredFlow};

impl Flows for MemoryStorage {
    fn flow(&self, id: &str) -> Result<Option<StoredFlow>> {
        Ok(self.tables().self_service_flows.get(id).cloned())
    }

    fn save_flows(
        &self,
        replace: Option<&StoredFlow>,
        insert: &[StoredFlow],
        put: &[StoredFlow],
    ) -> Pending<bool> {
        let saved = self.write(|tables| save_step(tables, replace, insert, put).is_some());
        Pending::ready(Ok(saved))
    }

    fn purge_flows(&self, before: u64) -> Result<u64> {
        Ok(self.write(|tables| {
            let was = tables.self_service_flows.len();
            tables
                .self_service_flows
                .retain(|_, flow| flow.expires_at >= before);
            (was - tables.self_service_flows.len()) as u64
        }))
    }
}

impl FlowSteps for MemoryWork {
    fn save_flow_step(
        &mut self,
        replace: Option<&StoredFlow>,
        insert: &[StoredFlow],
        put: &[StoredFlow],
    ) -> Result<bool> {
        let before = save_step(&mut self.tables(), replace, insert, put);
        Ok(match before {
            Some(before) => {
                self.undo
                    .extend(before.into_iter().map(|(id, was)| Undo::Flow(id, was)));
                true
            }
            None => false,
        })
    }
}

/// Writes a step; the flows it changed as they were before (for a unit's
/// undo), or none (and nothing written) when `replace` lost its race.
fn save_step(
    tables: &mut Tables,
    replace: Option<&StoredFlow>,
    insert: &[StoredFlow],
    put: &[StoredFlow],
) -> Option<Vec<(String, Option<StoredFlow>)>> {
    let flows = &mut tables.self_service_flows;
    let mut before = Vec::new();
    if let Some(flow) = replace {
        let stored = flows
            .get_mut(&flow.id)
            .filter(|f| f.version == flow.version)?;
        before.push((flow.id.clone(), Some(stored.clone())));
        *stored = StoredFlow {
            version: flow.version + 1,
            ..flow.clone()
        };
    }
    for flow in insert {
        before.push((flow.id.clone(), flows.insert(flow.id.clone(), flow.clone())));
    }
    for flow in put {
        let version = flows.get(&flow.id).map_or(flow.version, |f| f.version + 1);
        let was = flows.insert(
            flow.id.clone(),
            StoredFlow {
                version,
                ..flow.clone()
            },
        );
        before.push((flow.id.clone(), was));
    }
    Some(before)
}
