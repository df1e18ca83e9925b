//! What an operation costs on PostgreSQL in round trips, counted on the
//! wire: every millisecond between a replica and its database is paid once
//! per round trip, so a statement that stops being pipelined fails here.

use reclaim::backends::{self, Location};
use reclaim::storage::FlowStep;
use reclaim::{IdentityRef, NewIdentity, NewSession, Reclaim, Runtime, Settings};

use crate::common::postgres;
use crate::common::round_trips::RoundTripCounter;

const OPERATIONS: u64 = 20;
/// More than the pool's connections, so that each prepares its statements
/// before anything is counted.
const WARMING_THREADS: usize = 32;

/// A `Reclaim` on a fresh database through `counter`, and the ids of its
/// identities (one per warming thread).
fn reclaim_through(
    counter: &RoundTripCounter,
    revoke_older_links: bool,
) -> (Reclaim, Vec<IdentityRef>) {
    let database = postgres::server();
    let url = database.fresh_database().replace(
        &format!(":{}/", database.port()),
        &format!(":{}/", counter.port),
    );
    let backend = backends::open(&Location::Postgres {
        url,
        ca: None,
        directory: None,
    })
    .unwrap();
    let people = (0..WARMING_THREADS)
        .map(|n| {
            let new = NewIdentity {
                email: Some(format!("person{n}@example.com")),
                active: true,
                ..Default::default()
            };
            IdentityRef::Id(backend.create_identity(&new, 0).unwrap().id)
        })
        .collect();
    let secrets =
        reclaim::settings::parse_secrets("a-hashing-secret-of-at-least-32-bytes").unwrap();
    let mut settings = Settings::new("https://id.example.com", secrets);
    settings.revoke_older_links = Some(revoke_older_links);
    let reclaim = Reclaim::new(Runtime::embedded().unwrap(), backend, settings);
    (reclaim, people)
}

/// Round trips per call of `operation`, over [`OPERATIONS`] calls, after one
/// call of each kind prepared what the connections need.
fn per_operation(counter: &RoundTripCounter, mut operation: impl FnMut()) -> f64 {
    let before = counter.count();
    for _ in 0..OPERATIONS {
        operation();
    }
    (counter.count() - before) as f64 / OPERATIONS as f64
}

fn session() -> NewSession {
    NewSession {
        key: "0".repeat(64),
        expires_at: u64::MAX / 2,
    }
}

#[test]
fn a_link_costs_two_round_trips_and_its_redemption_three() {
    let counter = RoundTripCounter::start(postgres::server().port());
    let (reclaim, people) = reclaim_through(&counter, false);
    let token = |link: &str| link.rsplit("token=").next().unwrap().to_string();
    // Every worker's connection prepares its statements once: warm them
    // all, concurrently, before counting.
    std::thread::scope(|scope| {
        for person in &people {
            scope.spawn(|| {
                for _ in 0..4 {
                    let link = reclaim.create_link(person, None, None).wait().unwrap();
                    reclaim
                        .redeem_link_into(&token(&link.link), session(), |_| FlowStep::default())
                        .wait()
                        .unwrap();
                }
            });
        }
    });
    // A redemption revokes its identity's other links: one link each.
    let mut tokens = Vec::new();
    let mut people_in_turn = people.iter();
    let links = per_operation(&counter, || {
        let person = people_in_turn.next().unwrap();
        let link = reclaim.create_link(person, None, None).wait().unwrap();
        tokens.push(token(&link.link));
    });
    let mut tokens = tokens.into_iter();
    let redemptions = per_operation(&counter, || {
        reclaim
            .redeem_link_into(&tokens.next().unwrap(), session(), |_| FlowStep::default())
            .wait()
            .unwrap();
    });
    assert_eq!(
        (links, redemptions),
        (2.0, 3.0),
        "round trips per link creation and per redemption"
    );
}

#[test]
fn a_link_that_revokes_older_ones_costs_one_round_trip_more() {
    let counter = RoundTripCounter::start(postgres::server().port());
    let (reclaim, people) = reclaim_through(&counter, true);
    std::thread::scope(|scope| {
        for person in &people {
            scope.spawn(|| {
                for _ in 0..4 {
                    reclaim.create_link(person, None, None).wait().unwrap();
                }
            });
        }
    });
    let ann = &people[0];
    let links = per_operation(&counter, || {
        reclaim.create_link(ann, None, None).wait().unwrap();
    });
    assert_eq!(links, 3.0, "round trips per link creation");
}
