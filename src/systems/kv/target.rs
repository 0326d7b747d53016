//! kv under the harness: the workload creates, looks up, writes and reads buckets while the
//! faults crash and kill buckets, the registry and the bucket supervisor.

use super::{create, get, lookup, names, put, BUCKETS, REGISTRY};
use crate::process::Process;
use crate::sim::harness::{delays_injected, only_children_hit, Domain, Target, Workload};
use crate::sim::invariants::Violation;
use crate::term::Pid;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `kv` target.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvTarget;

/// One workload operation: on bucket `bucket{n}` (four names), key `key{k}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOp {
    /// Create the bucket.
    Create(u8),
    /// Look its name up.
    Lookup(u8),
    /// Write a key (in the bucket the name resolves to, if any).
    Put(u8, u8, u16),
    /// Read a key.
    Get(u8, u8),
}

/// What the workload knows: the registry it last talked to, and for each name the bucket it
/// wrote to and what it wrote there (`None`: a put whose call failed, which may or may not
/// have been stored).
#[derive(Default)]
pub struct KvModel {
    registry: Option<Pid>,
    buckets: BTreeMap<String, (Pid, BTreeMap<String, Option<String>>)>,
    /// Buckets of earlier registries: dead, or about to die of a signal still in flight.
    earlier: Vec<(String, Pid)>,
}

fn name(n: u8) -> String {
    format!("bucket{}", n % 4)
}

impl KvModel {
    /// A crash of the registry takes every bucket with it (one_for_all): when the workload
    /// meets a new registry, every bucket it knew is dead, and it starts from nothing. And
    /// a bucket's crash takes nothing else: while only buckets were hit, the registry is the
    /// one it was.
    fn meet_registry(&mut self, p: &Process) -> Result<Option<Pid>, Violation> {
        let now = p.whereis(REGISTRY);
        if now.is_some() && now != self.registry {
            if self.registry.is_some() && only_children_hit(p, BUCKETS) {
                return Err(Violation::app(
                    "registry_survives_bucket_crashes",
                    "only buckets were hit, yet the registry restarted (and every bucket with it)",
                ));
            }
            let buckets = std::mem::take(&mut self.buckets);
            self.earlier
                .extend(buckets.into_iter().map(|(name, (pid, _))| (name, pid)));
            self.registry = now;
            // A bucket killed by the link of its dying supervisor dies when that signal
            // arrives: at once without delays, by the end of the run with them.
            if !delays_injected(p) {
                self.earlier_buckets_are_dead(p)?;
            }
        }
        Ok(now)
    }

    fn earlier_buckets_are_dead(&self, p: &Process) -> Result<(), Violation> {
        let alive: Vec<String> = self
            .earlier
            .iter()
            .filter(|(_, pid)| p.node().is_alive(*pid))
            .map(|(name, pid)| format!("{name} ({pid})"))
            .collect();
        if alive.is_empty() {
            return Ok(());
        }
        Err(Violation::app(
            "buckets_die_with_the_registry",
            format!("the registry restarted, yet {} still run", alive.join(", ")),
        ))
    }
}

/// Once the registry has seen a bucket's death it never names it. Without message delays the
/// `DOWN` reaches the registry before any later request, so a lookup after the death must
/// not name it; with delays the `DOWN` may still be on its way.
fn check_lookup(p: &Process, name: &str, found: Option<Pid>) -> Result<(), Violation> {
    match found {
        Some(pid) if !p.node().is_alive(pid) && !delays_injected(p) => Err(Violation::app(
            "lookup_never_names_a_dead_bucket",
            format!("{name} resolves to {pid}, which is dead"),
        )),
        _ => Ok(()),
    }
}

impl Target for KvTarget {
    type Setup = ();
    type Op = KvOp;
    type State = KvModel;

    fn name(&self) -> String {
        "kv".into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    /// Buckets and keys from the case's domain.
    fn workload(&self, domain: Domain) -> Workload<KvOp> {
        let pick = || domain.pick();
        Workload::new()
            .kind("create", 2, pick().prop_map(KvOp::Create))
            .kind("lookup", 2, pick().prop_map(KvOp::Lookup))
            .kind(
                "put",
                2,
                (pick(), pick(), any::<u16>()).prop_map(|(b, k, v)| KvOp::Put(b, k, v)),
            )
            .kind(
                "get",
                2,
                (pick(), pick()).prop_map(|(b, k)| KvOp::Get(b, k)),
            )
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, KvModel), String> {
        let sup = super::start_link(p).await.map_err(|e| e.to_string())?;
        Ok((sup.pid(), KvModel::default()))
    }

    async fn apply(&self, model: &mut KvModel, op: &KvOp, p: &Process) -> Result<(), Violation> {
        if model.meet_registry(p)?.is_none() {
            return Ok(()); // restarting, or the store gave up
        }
        match op {
            KvOp::Create(n) => {
                if let Ok(pid) = create(p, &name(*n)).await {
                    if model.buckets.get(&name(*n)).map(|(b, _)| *b) != Some(pid) {
                        model.buckets.insert(name(*n), (pid, BTreeMap::new()));
                    }
                }
            }
            KvOp::Lookup(n) => {
                if let Ok(found) = lookup(p, &name(*n)).await {
                    check_lookup(p, &name(*n), found)?;
                }
            }
            KvOp::Put(n, k, v) => {
                let Ok(Some(bucket)) = lookup(p, &name(*n)).await else {
                    return Ok(());
                };
                let (key, value) = (format!("key{k}"), v.to_string());
                let stored = put(p, bucket, &key, &value).await.is_ok();
                let entry = model
                    .buckets
                    .entry(name(*n))
                    .or_insert((bucket, BTreeMap::new()));
                if entry.0 != bucket {
                    *entry = (bucket, BTreeMap::new());
                }
                // A call that failed may still have taken effect.
                entry.1.insert(key, stored.then_some(value));
            }
            KvOp::Get(n, k) => {
                let Ok(Some(bucket)) = lookup(p, &name(*n)).await else {
                    return Ok(());
                };
                let key = format!("key{k}");
                let Ok(value) = get(p, bucket, &key).await else {
                    return Ok(());
                };
                let expected = match model.buckets.get(&name(*n)) {
                    Some((b, data)) if *b == bucket => match data.get(&key) {
                        Some(Some(value)) => Some(value.clone()),
                        Some(None) => return Ok(()), // an unknown outcome
                        None => None,
                    },
                    _ => return Ok(()),
                };
                if value != expected {
                    return Err(Violation::app(
                        "buckets_keep_their_data",
                        format!("{}[{key}] is {value:?}, {expected:?} was put", name(*n)),
                    ));
                }
            }
        }
        Ok(())
    }

    /// At rest: every name the registry holds resolves to a live bucket; every live bucket
    /// has a name; the buckets of an earlier registry are gone.
    async fn check(&self, model: &mut KvModel, p: &Process) -> Result<(), Violation> {
        model.earlier_buckets_are_dead(p)?;
        if model.meet_registry(p)?.is_none() {
            return Ok(());
        }
        let Ok(names) = names(p).await else {
            return Ok(());
        };
        for (name, pid) in &names {
            check_lookup(p, name, Some(*pid))?;
            if !p.node().is_alive(*pid) {
                return Err(Violation::app(
                    "lookup_never_names_a_dead_bucket",
                    format!("at rest, {name} still resolves to {pid}, which is dead"),
                ));
            }
        }
        let Some(buckets) = p.whereis(BUCKETS) else {
            return Ok(());
        };
        let known: std::collections::BTreeSet<Pid> = names.iter().map(|(_, pid)| *pid).collect();
        let unknown: Vec<Pid> = p
            .node()
            .descendants(buckets)
            .into_iter()
            .filter(|pid| p.node().parent_of(*pid) == Some(buckets) && !known.contains(pid))
            .collect();
        if !unknown.is_empty() {
            return Err(Violation::app(
                "no_unknown_buckets",
                format!("buckets {unknown:?} run, and the registry names none of them"),
            ));
        }
        Ok(())
    }
}
