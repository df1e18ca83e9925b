//! Self-service flows (Kratos' recovery and settings flows) as the flow API
//! and the pages keep them between requests. The store keeps a flow's body
//! under its id with a version and knows nothing of what it means: every
//! state and rule of a flow is `reclaim_wire::flows`'. A flow is never
//! edited in place: a writer replaces the version it read, so two requests
//! racing on one flow can't both move it on.

use anyhow::Result;

use super::Pending;

/// A flow as stored: its id (a UUID), when it may be forgotten, the version
/// a replacement must name, and its body (JSON written by the flow API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFlow {
    pub id: String,
    pub expires_at: u64,
    pub version: u64,
    pub body: String,
}

/// The flows of a backend. Outside any unit of work: a flow is the person's
/// progress, not a credential; the credential a flow's code redeems is kept
/// (and consumed, once) by the units of work of the operations.
pub trait Flows {
    /// The flow with `id`, whatever its expiry: an expired flow is still
    /// answered (as expired) until it is purged.
    fn flow(&self, id: &str) -> Result<Option<StoredFlow>>;

    /// One step of a flow, written at once: `replace` (if any) gets its
    /// expiry and body and its version bumped to `version + 1`, if it is
    /// still at `version` (another writer replaced it first, or it is gone:
    /// false); then the new flows of `insert` (fresh ids) and the
    /// flows of `put` (inserted, or overwritten whatever their version: a
    /// record one name always holds). False, and nothing written, when
    /// `replace` lost its race; an error writes nothing either.
    fn save_flows(
        &self,
        replace: Option<&StoredFlow>,
        insert: &[StoredFlow],
        put: &[StoredFlow],
    ) -> Pending<bool>;

    /// Forgets the flows that expired before `before`; returns how many.
    fn purge_flows(&self, before: u64) -> Result<u64>;
}

/// A flow's step to write: the flow replaced at the version it was read,
/// new flows, and records put over whatever their name held.
#[derive(Clone, Debug, Default)]
pub struct FlowStep {
    pub replace: Option<StoredFlow>,
    pub insert: Vec<StoredFlow>,
    pub put: Vec<StoredFlow>,
}

impl FlowStep {
    pub fn is_empty(&self) -> bool {
        self.replace.is_none() && self.insert.is_empty() && self.put.is_empty()
    }
}

/// The flows inside a unit of work: a flow's step that stands or falls with
/// the unit's other writes (a recovery's ending: the redemption, its
/// session, the recovery flow's new state and the settings flow).
pub trait FlowSteps {
    /// [`Flows::save_flows`], in the unit: false (and nothing of the step
    /// written) when `replace` lost its race.
    fn save_flow_step(
        &mut self,
        replace: Option<&StoredFlow>,
        insert: &[StoredFlow],
        put: &[StoredFlow],
    ) -> Result<bool>;
}
