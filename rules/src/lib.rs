//! The storage rules every Reclaim host applies to a stored credential,
//! written once: the Rust host's backends, the SQL provider (which the
//! Python and Node.js packages run), the filesystem provider and the
//! component's native benchmark all take them from here, each mapping
//! [`Standing`] onto its bindings' `credential-state`. No dependencies, so
//! that every target (native, wasm32-wasip2) can use it.

/// Wrong codes a code flow survives when the host's settings name no
/// number (Kratos' default): the component applies it to a flow's code,
/// and the flow API to a flow's submissions across its re-sent codes, so
/// a flow whose address is unknown (and has no code) dies at the same
/// count as one whose address is known.
pub const DEFAULT_MAX_CODE_ATTEMPTS: u32 = 5;

/// Where a stored credential stands (the WIT's `credential-state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Active,
    Used,
    Revoked,
    Expired,
}

/// Where a credential stands at `now`. Used wins over revoked, revoked over
/// expired: the first thing that happened to it is the reason it no longer
/// works. It expires at its `expires_at`, not after it.
pub fn standing(used: bool, revoked: bool, expires_at: u64, now: u64) -> Standing {
    if used {
        Standing::Used
    } else if revoked {
        Standing::Revoked
    } else if expires_at <= now {
        Standing::Expired
    } else {
        Standing::Active
    }
}

/// Whether a credential standing so, with `failed_attempts` wrong codes,
/// can be consumed, or why not: an active one out of attempts is dead, as
/// if revoked.
pub fn consumable(
    standing: Standing,
    failed_attempts: u32,
    max_failed_attempts: u32,
) -> Result<(), Standing> {
    match standing {
        Standing::Active if failed_attempts < max_failed_attempts => Ok(()),
        Standing::Active => Err(Standing::Revoked),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_thing_that_happened_wins_and_expiry_is_at_expires_at() {
        assert_eq!(standing(false, false, 10, 9), Standing::Active);
        assert_eq!(standing(false, false, 10, 10), Standing::Expired);
        assert_eq!(standing(false, true, 10, 20), Standing::Revoked);
        assert_eq!(standing(true, true, 10, 20), Standing::Used);
    }

    #[test]
    fn an_active_credential_out_of_attempts_counts_as_revoked() {
        assert_eq!(consumable(Standing::Active, 4, 5), Ok(()));
        assert_eq!(consumable(Standing::Active, 5, 5), Err(Standing::Revoked));
        assert_eq!(consumable(Standing::Expired, 0, 5), Err(Standing::Expired));
    }
}
