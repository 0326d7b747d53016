//! The Registry through its Rust API: the docs/behaviours.md §L items the oracle's scenarios do not show
//! (listeners, via names, dispatch, metadata, the window between a death and its cleanup),
//! each test named after its item.

use crate::common::{check, kill, wait_forever};
use otpsim::registry::{Keys, Registry, RegistryEvent, RegistryOptions};
use otpsim::server::{self, GenServer, Init, ServerRef, StartError, StartOptions};
use otpsim::supervisor::{self, ChildSpec, Flags, Start, Strategy, SupervisorSpec};
use otpsim::term::Term;
use otpsim::{ExitReason, Pid, Process};

/// Spawns a process that registers `key` and then waits; returns its pid once registered.
async fn registered(p: &Process, reg: &Registry<String, i64>, key: &str, value: i64) -> Pid {
    let (reg, key, me) = (reg.clone(), key.to_string(), p.pid());
    let pid = p.spawn(move |q| async move {
        reg.register(&q, key, value).expect("free key");
        q.send(me, "registered");
        wait_forever(q).await
    });
    p.receive(|m| m.downcast_ref::<&str>() == Some(&"registered"))
        .await;
    pid
}

/// Listeners hear explicit registrations and unregistrations, never deaths.
#[test]
fn l91_listeners_hear_register_and_unregister_but_not_deaths() {
    check(|p| async move {
        let options = RegistryOptions::new(Keys::Duplicate).listener(p.pid());
        let reg: Registry<String, i64> = Registry::start_link(&p, options).await.unwrap();
        let other = registered(&p, &reg, "t", 1).await;
        reg.register(&p, "t".into(), 2).unwrap();
        reg.unregister(&p, &"t".to_string());
        kill(&p, other).await;
        let mut events = Vec::new();
        while let Some(m) = p
            .try_receive(|m| m.is::<RegistryEvent<String, i64>>())
            .await
        {
            events.push(m.downcast::<RegistryEvent<String, i64>>().ok().unwrap());
        }
        assert_eq!(
            events,
            vec![
                RegistryEvent::Register {
                    key: "t".into(),
                    pid: other,
                    value: 1
                },
                RegistryEvent::Register {
                    key: "t".into(),
                    pid: p.pid(),
                    value: 2
                },
                RegistryEvent::Unregister {
                    key: "t".into(),
                    pid: p.pid()
                },
            ]
        );
    });
}

/// Between a death and the partition's cleanup, `lookup` still shows the dead pid while
/// `whereis_name` and a unique `register` treat it as absent.
#[test]
fn l90_l87_a_dead_owner_is_absent_for_whereis_and_register_before_cleanup() {
    check(|p| async move {
        let reg: Registry<String, i64> =
            Registry::start_link(&p, RegistryOptions::new(Keys::Unique))
                .await
                .unwrap();
        let owner = registered(&p, &reg, "k", 1).await;
        // Kill it without letting anyone run: the partition has not seen the EXIT yet.
        p.exit(owner, ExitReason::Kill);
        assert_eq!(reg.lookup(&"k".to_string()), vec![(owner, 1)]);
        assert_eq!(reg.whereis_name(&"k".to_string()), None);
        reg.register(&p, "k".into(), 2)
            .expect("a dead owner does not hold the key");
        assert_eq!(reg.lookup(&"k".to_string()), vec![(p.pid(), 2)]);
    });
}

struct Named;
impl GenServer for Named {
    type Arg = ();
    type Call = ();
    type Reply = Pid;
    type Cast = ();
    type Cont = ();
    async fn init(_: (), _p: &Process) -> Init<Self> {
        Init::Ok(Named)
    }
    async fn handle_call(
        &mut self,
        _: (),
        _f: server::From<Pid>,
        p: &Process,
    ) -> server::CallReply<Self> {
        server::CallReply::Reply(p.pid())
    }
}

/// Servers started under a via name: a second start reports the owner; the name is free again
/// for the child a supervisor restarts, and reaches the new process (docs/behaviours.md item 93).
#[test]
fn l93_via_names_for_servers_and_restarted_children() {
    check(|p| async move {
        let reg: Registry<String, ()> =
            Registry::start_link(&p, RegistryOptions::new(Keys::Unique))
                .await
                .unwrap();
        let via = reg.via("cache".to_string());
        let opts = StartOptions::linked().via(via.clone());
        let first = server::start_with::<Named>(&p, (), opts.clone())
            .await
            .unwrap();
        assert_eq!(via.whereis(&p).await, Some(first.pid()));
        let again = server::start_with::<Named>(&p, (), opts.clone()).await;
        assert_eq!(again, Err(StartError::AlreadyStarted(first.pid())));
        p.unlink(first.pid());
        kill(&p, first.pid()).await;

        // Under a supervisor: the restarted child takes the name back.
        let child_opts = opts.clone();
        let spec = SupervisorSpec::new(Flags::new(Strategy::OneForOne).intensity(3)).child(
            ChildSpec::worker(
                "cache",
                Start::new(move |sp| {
                    let o = child_opts.clone();
                    Box::pin(async move {
                        supervisor::start_result(
                            server::start_with::<Named>(sp, (), o)
                                .await
                                .map(|s| s.pid()),
                        )
                    })
                }),
            ),
        );
        let sup = supervisor::start_link(&p, spec).await.unwrap();
        let before = via.whereis(&p).await.expect("registered");
        kill(&p, before).await;
        // This call is queued behind the EXIT: when it returns, the child has restarted.
        sup.count_children(&p).await.unwrap();
        let after = via
            .whereis(&p)
            .await
            .expect("the restarted child holds the name");
        assert_ne!(after, before);
        // Reach it through the name: the call goes to the restarted process.
        let server = ServerRef::<Named>::from_pid(after);
        assert_eq!(server.call(&p, ()).await, Ok(after));
    });
}

/// dispatch calls the function once per partition that has entries, never with an empty list;
/// metadata, update_value, count, keys and values (docs/behaviours.md items 94, 95).
#[test]
fn l94_l95_dispatch_meta_update_value_count_keys_values() {
    check(|p| async move {
        let reg: Registry<String, i64> =
            Registry::start_link(&p, RegistryOptions::new(Keys::Duplicate).partitions(4))
                .await
                .unwrap();
        let a = registered(&p, &reg, "t", 1).await;
        let b = registered(&p, &reg, "t", 2).await;
        reg.register(&p, "u".into(), 9).unwrap();
        let mut seen = Vec::new();
        reg.dispatch(&"t".to_string(), |entries| {
            assert!(!entries.is_empty());
            seen.extend_from_slice(entries);
        });
        seen.sort();
        assert_eq!(seen, vec![(a, 1), (b, 2)]);
        let mut calls = 0;
        reg.dispatch(&"none".to_string(), |_| calls += 1);
        assert_eq!(calls, 0);
        assert_eq!(reg.count(), 3);
        assert_eq!(reg.keys(p.pid()), vec!["u".to_string()]);
        assert_eq!(reg.values(&"t".to_string(), a), vec![1]);
        assert_eq!(reg.match_values(&"t".to_string(), |v| *v > 1), vec![(b, 2)]);
        reg.put_meta("owner", Term::atom("me"));
        assert_eq!(reg.meta("owner"), Some(Term::atom("me")));
        reg.delete_meta("owner");
        assert_eq!(reg.meta("owner"), None);
        // update_value is for unique registries and the caller's own key only.
        assert_eq!(reg.update_value(&p, &"u".to_string(), |v| v + 1), None);
        let uniq: Registry<String, i64> =
            Registry::start_link(&p, RegistryOptions::new(Keys::Unique))
                .await
                .unwrap();
        uniq.register(&p, "mine".into(), 1).unwrap();
        assert_eq!(
            uniq.update_value(&p, &"mine".to_string(), |v| v + 10),
            Some((11, 1))
        );
        let other = registered(&p, &uniq, "theirs", 5).await;
        assert_eq!(
            uniq.update_value(&p, &"theirs".to_string(), |v| v + 1),
            None
        );
        assert_eq!(uniq.lookup(&"theirs".to_string()), vec![(other, 5)]);
    });
}

/// Supervisors and dynamic supervisors start under via names too; a second start under the
/// same name reports the owner (docs/behaviours.md item 93).
#[test]
fn l93_supervisors_and_dynamic_supervisors_under_via_names() {
    use otpsim::supervisor::dynamic::{self, DynamicInit, DynamicOptions};
    use otpsim::supervisor::SupervisorInit;
    check(|p| async move {
        let reg: Registry<String, ()> =
            Registry::start_link(&p, RegistryOptions::new(Keys::Unique))
                .await
                .unwrap();
        let opts = |key: &str| StartOptions::linked().via(reg.via(key.to_string()));
        let init = |_: &Process| SupervisorInit::Ok(SupervisorSpec::default());
        let sup = supervisor::start_with(&p, init, opts("top")).await.unwrap();
        assert_eq!(reg.whereis_name(&"top".to_string()), Some(sup.pid()));
        let again = supervisor::start_with(&p, init, opts("top")).await;
        assert_eq!(again.unwrap_err(), StartError::AlreadyStarted(sup.pid()));
        let dinit = |_: &Process| DynamicInit::Ok(DynamicOptions::default());
        let dsup = dynamic::start_with(&p, dinit, opts("pool")).await.unwrap();
        assert_eq!(reg.whereis_name(&"pool".to_string()), Some(dsup.pid()));
    });
}

/// docs/behaviours.md items 85, 90: a partition traps exits before `start_link` returns (Elixir's
/// init_ack), so a process that registers and dies at once is cleaned up instead of taking
/// the partition down with it (found by the harness: the new owner's entry was lost when the
/// partition restarted). Every scheduling seed must agree.
#[cfg(madsim)]
#[test]
fn l85_l90_a_partition_traps_exits_before_the_registry_starts() {
    for seed in 0..32 {
        let report = otpsim::sim::Sim::new(seed).run(|p| async move {
            let reg: Registry<String, i64> =
                Registry::start_link(&p, RegistryOptions::new(Keys::Unique))
                    .await
                    .unwrap();
            let r = reg.clone();
            let doomed = p.spawn(move |q| async move {
                r.register(&q, "k".into(), 1).unwrap();
                ExitReason::error("at_once")
            });
            let _ = p.node().wait_exit(doomed).await;
            let me = registered(&p, &reg, "k", 2).await;
            p.sleep(otpsim::rt::Duration::from_millis(10)).await;
            assert_eq!(reg.whereis_name(&"k".to_string()), Some(me));
            assert_eq!(reg.lookup(&"k".to_string()), vec![(me, 2)]);
        });
        crate::common::assert_normal(&report);
    }
}

/// A registration while its partition is down fails, as in Elixir (whose `Process.link/1` to
/// the partition raises `noproc`, and whose table died with it): an entry made then would
/// vanish when the partition comes back, leaving the caller running without its name. Once
/// the partition is back, registering works, in an empty table (docs/behaviours.md items 85, 86, 90).
#[test]
fn l86_no_registration_while_the_partition_is_down() {
    use otpsim::registry::RegisterError;
    check(|p| async move {
        let reg: Registry<String, i64> =
            Registry::start_link(&p, RegistryOptions::new(Keys::Unique))
                .await
                .unwrap();
        p.trap_exit(true);
        let partition = reg.register(&p, "a".into(), 1).unwrap();
        p.exit(partition, ExitReason::Kill);
        // Nobody ran since: the partition is dead and not restarted yet.
        assert_eq!(
            reg.register(&p, "b".into(), 2),
            Err(RegisterError::NotRunning)
        );
        p.sleep(otpsim::rt::Duration::from_millis(1)).await;
        assert!(reg.register(&p, "b".into(), 2).is_ok());
        assert_eq!(reg.whereis_name(&"a".to_string()), None);
    });
}

/// With several partitions a process is linked to, and its entries kept by, the partition
/// its pid hashes to: owners spread over the partitions, and in a duplicate registry (whose
/// partitions restart one by one, `one_for_one`) a partition that dies takes exactly its own
/// owners' entries with it, and the other partitions keep theirs (docs/behaviours.md items 85, 86, 96).
/// `Registry::pid` names the registry's supervisor while it runs, nothing before.
#[test]
fn l85_l96_a_partition_keeps_its_own_owners_entries_and_only_those() {
    check(|p| async move {
        let reg: Registry<String, i64> =
            Registry::new(RegistryOptions::new(Keys::Duplicate).partitions(4));
        assert_eq!(reg.pid(), None, "not started");
        let sup = reg.start(&p).await.unwrap();
        assert_eq!(reg.pid(), Some(sup));
        let me = p.pid();
        let mut owners = Vec::new();
        for i in 0..16 {
            let reg = reg.clone();
            let owner = p.spawn(move |q| async move {
                q.trap_exit(true); // survives its partition's death
                let partition = reg.register(&q, "k".into(), i).expect("duplicate keys");
                q.send(me, (q.pid(), partition));
                wait_forever(q).await
            });
            let msg = p
                .receive(|m| {
                    m.downcast_ref::<(Pid, Pid)>()
                        .is_some_and(|(o, _)| *o == owner)
                })
                .await;
            owners.push(msg.downcast::<(Pid, Pid)>().ok().unwrap());
        }
        let partitions: std::collections::BTreeSet<Pid> =
            owners.iter().map(|(_, part)| *part).collect();
        assert!(
            partitions.len() >= 3,
            "owners spread over partitions: {partitions:?}"
        );
        let victim = owners[0].1;
        kill(&p, victim).await;
        p.sleep(otpsim::rt::Duration::from_millis(10)).await;
        let mut left: Vec<Pid> = reg
            .lookup(&"k".to_string())
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        left.sort();
        let mut kept: Vec<Pid> = owners
            .iter()
            .filter(|(_, part)| *part != victim)
            .map(|(o, _)| *o)
            .collect();
        kept.sort();
        assert_eq!(
            left, kept,
            "the dead partition's owners' entries, and only those, are gone"
        );
    });
}
