//! The example systems (`otpsim::systems`) under the harness: every fault family on, the
//! harness's invariants and each system's own checked on every case (issue 6). 2,000 cases
//! each; `OTPSIM_CASES` raises the count, `OTPSIM_SEED=random` varies the cases.

use otpsim::sim::harness::Harness;

/// kv: lookups never name a dead bucket (once the registry can have seen the death), no
/// bucket runs unnamed, buckets die with their registry, buckets keep what was put in them.
#[test]
fn kv_keeps_its_invariants_under_faults() {
    Harness::new(otpsim::systems::kv::KvTarget)
        .cases(2000)
        .corpus(None)
        .check();
}

/// todo, the seed's steps (issue 6): start the system; get a server for "bob"; getting "bob"
/// again returns the same pid; getting "alice" starts another; crash bob's server; getting
/// "bob" returns a new pid with bob's entries intact.
#[test]
fn todo_the_seed_steps() {
    use otpsim::systems::todo::{Entry, MemoryStorage, Todo};
    crate::common::check(|p| async move {
        let todo = Todo::new(MemoryStorage::new());
        todo.start_link(&p).await.expect("the system starts");
        let bob = todo.server_process(&p, "bob").await.unwrap();
        todo.add_entry(&p, bob, Entry::new(20, "dentist"))
            .await
            .unwrap();
        todo.add_entry(&p, bob, Entry::new(21, "movies"))
            .await
            .unwrap();
        assert_eq!(todo.server_process(&p, "bob").await.unwrap(), bob);
        let alice = todo.server_process(&p, "alice").await.unwrap();
        assert_ne!(alice, bob);
        crate::common::kill(&p, bob).await;
        let bob_again = todo.server_process(&p, "bob").await.unwrap();
        assert_ne!(bob_again, bob);
        assert_eq!(
            todo.entries(&p, bob_again, 20).await.unwrap(),
            vec![Entry::new(20, "dentist")]
        );
        assert_eq!(
            todo.entries(&p, bob_again, 21).await.unwrap(),
            vec![Entry::new(21, "movies")]
        );
        assert_eq!(todo.server_process(&p, "alice").await.unwrap(), alice);
    });
}

/// todo: no acknowledged entry is lost across crashes of servers and database workers, and
/// at most one server serves a list.
#[test]
fn todo_keeps_its_invariants_under_faults() {
    Harness::new(otpsim::systems::todo::TodoTarget)
        .cases(2000)
        .corpus(None)
        .check();
}

/// connections: no two live connections share a client id; at rest every wanted connection
/// and the sensor's are connected through exactly one session; the telemetry holds the
/// sensor's live connection.
#[test]
fn connections_keep_their_invariants_under_faults() {
    Harness::new(otpsim::systems::connections::ConnectionsTarget)
        .cases(2000)
        .corpus(None)
        .check();
}

/// pipeline: every item fed is delivered to the sink once, in order, transformed.
#[test]
fn pipeline_delivers_each_item_once_under_faults() {
    Harness::new(otpsim::systems::pipeline::PipelineTarget)
        .cases(2000)
        .corpus(None)
        .check();
}

/// tickets: a ticket never goes backwards and a restarted worker has its last state; open
/// tickets stay in the queue; notifications follow the store.
#[test]
fn tickets_keep_their_invariants_under_faults() {
    Harness::new(otpsim::systems::tickets::TicketsTarget)
        .cases(2000)
        .corpus(None)
        .check();
}
