//! The self-service flows in memory.

use anyhow::Result;

use super::MemoryStorage;
use crate::storage::{Flows, Pending, StoredFlow};

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
        let saved = self.write(|tables| {
            let flows = &mut tables.self_service_flows;
            if let Some(flow) = replace {
                match flows.get_mut(&flow.id) {
                    Some(stored) if stored.version == flow.version => {
                        *stored = StoredFlow {
                            version: flow.version + 1,
                            ..flow.clone()
                        };
                    }
                    _ => return false,
                }
            }
            for flow in insert {
                flows.insert(flow.id.clone(), flow.clone());
            }
            for flow in put {
                let version = flows.get(&flow.id).map_or(flow.version, |f| f.version + 1);
                flows.insert(
                    flow.id.clone(),
                    StoredFlow {
                        version,
                        ..flow.clone()
                    },
                );
            }
            true
        });
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
