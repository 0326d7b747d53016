//! kv: a key-value store of named buckets, the design of Elixir's "Mix and OTP" guide.
//!
//! ```text
//! kv (one_for_all)
//! ├── bucket supervisor   DynamicSupervisor, named "kv_buckets": the buckets, temporary
//! └── registry            GenServer, named "kv_registry": bucket name -> bucket pid
//! ```
//!
//! A bucket is a server holding a map. The registry starts a bucket under the bucket
//! supervisor when a name is created, and **monitors** it: when the bucket dies the registry
//! gets a `DOWN` and forgets the name, so a lookup never names a dead bucket once the registry
//! has seen the death.
//!
//! Three details carry the design:
//!
//! * **Monitor, do not link.** A registry linked to its buckets dies with the first bucket
//!   that crashes, and every name goes with it; trapping exits instead would make the registry
//!   responsible for cleanups the link machinery already does. A monitor is one-way: the
//!   registry hears of a bucket's death and nothing else happens to it.
//! * **Buckets are temporary.** A restarted bucket would be a process nobody knows: the
//!   registry watched the old pid and never hears of the new one (a leak that grows with
//!   every crash). A crashed bucket is gone, and its name with it; a client creates it again.
//! * **The bucket supervisor starts first, under one_for_all.** The registry calls the bucket
//!   supervisor, so it must start after it; and if either dies the other must restart too: a
//!   registry that outlived its bucket supervisor would name buckets that are gone, and buckets
//!   that outlived their registry would be unreachable. one_for_all restarts both, empty.
//!   And a registry restarted alone (an operator's `terminate_child` and `restart_child`,
//!   which leave the strategy out) finds its predecessor's buckets still running and nameless:
//!   its `init` stops them.
//!
//! ```
//! # #[cfg(madsim)] {
//! use otpsim::systems::kv;
//! use otpsim::sim::Sim;
//!
//! let report = Sim::new(0).run(|p| async move {
//!     kv::start_link(&p).await.unwrap();
//!     let shopping = kv::create(&p, "shopping").await.unwrap();
//!     kv::put(&p, shopping, "milk", "3").await.unwrap();
//!     assert_eq!(kv::get(&p, shopping, "milk").await.unwrap(), Some("3".to_string()));
//!     // A bucket that crashes is forgotten: its name no longer resolves.
//!     p.exit(shopping, otpsim::ExitReason::Kill);
//!     assert_eq!(kv::lookup(&p, "shopping").await.unwrap(), None);
//! });
//! assert_eq!(report.failure(), None);
//! # }
//! ```

use crate::process::{ExitReason, Msg, Process};
use crate::server::{self, CallError, CallReply, GenServer, Init, Next, ServerRef, StartOptions};
use crate::supervisor::dynamic::{DynamicOptions, DynamicSupervisorRef};
use crate::supervisor::{self, ChildSpec, Flags, Restart, Strategy, SupervisorRef, SupervisorSpec};
use crate::term::{Pid, Ref};
use std::collections::BTreeMap;

#[cfg(feature = "harness")]
mod target;

#[cfg(feature = "harness")]
pub use target::{KvOp, KvTarget};

/// The registry's local name.
pub const REGISTRY: &str = "kv_registry";
/// The bucket supervisor's local name.
pub const BUCKETS: &str = "kv_buckets";

/// A bucket: a map from keys to values.
pub struct Bucket(BTreeMap<String, String>);

/// A request to a bucket.
pub enum BucketCall {
    /// The value of a key.
    Get(String),
    /// Sets a key; answers the previous value.
    Put(String, String),
    /// Removes a key; answers its value.
    Delete(String),
}

impl GenServer for Bucket {
    type Arg = ();
    type Call = BucketCall;
    type Reply = Option<String>;
    type Cast = ();
    type Cont = ();

    async fn init(_: (), _p: &Process) -> Init<Self> {
        Init::Ok(Bucket(BTreeMap::new()))
    }

    async fn handle_call(
        &mut self,
        request: BucketCall,
        _from: server::From<Option<String>>,
        _p: &Process,
    ) -> CallReply<Self> {
        CallReply::Reply(match request {
            BucketCall::Get(key) => self.0.get(&key).cloned(),
            BucketCall::Put(key, value) => self.0.insert(key, value),
            BucketCall::Delete(key) => self.0.remove(&key),
        })
    }
}

/// The registry: bucket names to the buckets it started and monitors.
pub struct Registry {
    buckets: DynamicSupervisorRef,
    names: BTreeMap<String, (Pid, Ref)>,
}

/// A request to the registry.
pub enum RegistryCall {
    /// The bucket of a name.
    Lookup(String),
    /// The bucket of a name, started if there is none.
    Create(String),
    /// Every name with its bucket.
    Names,
}

/// The registry's answers.
#[derive(Debug)]
pub enum RegistryReply {
    /// The bucket, if any (also the answer to a failed `Create`: `None`).
    Bucket(Option<Pid>),
    /// Every name with its bucket, in name order.
    Names(Vec<(String, Pid)>),
}

impl GenServer for Registry {
    type Arg = ();
    type Call = RegistryCall;
    type Reply = RegistryReply;
    type Cast = ();
    type Cont = ();

    /// Finds the bucket supervisor, started before it (so it is there, or the start fails).
    async fn init(_: (), p: &Process) -> Init<Self> {
        let Some(pid) = p.whereis(BUCKETS) else {
            return Init::Stop(ExitReason::error("no_bucket_supervisor"));
        };
        let buckets = DynamicSupervisorRef::from_pid(pid);
        // Buckets an earlier registry started are unreachable now: stop them.
        if let Ok(orphans) = buckets.which_children(p).await {
            for orphan in orphans {
                if let supervisor::ChildState::Running(bucket) = orphan.state {
                    let _ = buckets.terminate_child(p, bucket).await;
                }
            }
        }
        Init::Ok(Registry {
            buckets,
            names: BTreeMap::new(),
        })
    }

    async fn handle_call(
        &mut self,
        request: RegistryCall,
        _from: server::From<RegistryReply>,
        p: &Process,
    ) -> CallReply<Self> {
        CallReply::Reply(match request {
            RegistryCall::Lookup(name) => {
                RegistryReply::Bucket(self.names.get(&name).map(|(pid, _)| *pid))
            }
            RegistryCall::Create(name) => RegistryReply::Bucket(self.create(name, p).await),
            RegistryCall::Names => RegistryReply::Names(
                self.names
                    .iter()
                    .map(|(name, (pid, _))| (name.clone(), *pid))
                    .collect(),
            ),
        })
    }

    /// A bucket died: forget its name.
    async fn handle_info(&mut self, msg: Msg, _p: &Process) -> Next<Self> {
        if let Msg::Down { mref, .. } = msg {
            self.names.retain(|_, (_, r)| *r != mref);
        }
        Next::Continue
    }
}

impl Registry {
    async fn create(&mut self, name: String, p: &Process) -> Option<Pid> {
        if let Some((pid, _)) = self.names.get(&name) {
            return Some(*pid);
        }
        let spec = ChildSpec::server::<Bucket>("bucket", ()).restart(Restart::Temporary);
        let pid = self.buckets.start_child(p, spec).await.ok()?.pid()?;
        let mref = p.monitor(pid);
        self.names.insert(name, (pid, mref));
        Some(pid)
    }
}

/// The whole store as a supervisor spec, to start on its own or under a supervisor of yours.
pub fn spec() -> SupervisorSpec {
    let buckets = DynamicOptions::default()
        .into_child_with("buckets", StartOptions::default().named(BUCKETS));
    let registry =
        ChildSpec::server_with::<Registry>("registry", (), StartOptions::default().named(REGISTRY));
    SupervisorSpec::new(Flags::elixir(Strategy::OneForAll))
        .child(buckets)
        .child(registry)
}

/// Starts the store, linked to the caller.
pub async fn start_link(p: &Process) -> Result<SupervisorRef, server::StartError> {
    supervisor::start_link(p, spec()).await
}

/// The store as a child of another supervisor.
pub fn child_spec(id: &str) -> ChildSpec {
    spec().into_child(id)
}

fn registry(p: &Process) -> Result<ServerRef<Registry>, CallError> {
    ServerRef::whereis(p, REGISTRY).ok_or(CallError::Noproc)
}

fn bucket_reply(reply: RegistryReply) -> Option<Pid> {
    match reply {
        RegistryReply::Bucket(pid) => pid,
        RegistryReply::Names(_) => None,
    }
}

/// The bucket called `name`, if the registry knows one.
pub async fn lookup(p: &Process, name: &str) -> Result<Option<Pid>, CallError> {
    let reply = registry(p)?
        .call(p, RegistryCall::Lookup(name.into()))
        .await?;
    Ok(bucket_reply(reply))
}

/// The bucket called `name`, started if there is none.
pub async fn create(p: &Process, name: &str) -> Result<Pid, CallError> {
    let reply = registry(p)?
        .call(p, RegistryCall::Create(name.into()))
        .await?;
    bucket_reply(reply).ok_or(CallError::Exit(ExitReason::error("bucket_not_started")))
}

/// Every name the registry knows, with its bucket.
pub async fn names(p: &Process) -> Result<Vec<(String, Pid)>, CallError> {
    match registry(p)?.call(p, RegistryCall::Names).await? {
        RegistryReply::Names(names) => Ok(names),
        RegistryReply::Bucket(_) => Ok(Vec::new()),
    }
}

/// The value of `key` in `bucket`.
pub async fn get(p: &Process, bucket: Pid, key: &str) -> Result<Option<String>, CallError> {
    let bucket = ServerRef::<Bucket>::from_pid(bucket);
    bucket.call(p, BucketCall::Get(key.into())).await
}

/// Sets `key` in `bucket`; the previous value.
pub async fn put(
    p: &Process,
    bucket: Pid,
    key: &str,
    value: &str,
) -> Result<Option<String>, CallError> {
    let bucket = ServerRef::<Bucket>::from_pid(bucket);
    bucket
        .call(p, BucketCall::Put(key.into(), value.into()))
        .await
}

/// Removes `key` from `bucket`; its value.
pub async fn delete(p: &Process, bucket: Pid, key: &str) -> Result<Option<String>, CallError> {
    let bucket = ServerRef::<Bucket>::from_pid(bucket);
    bucket.call(p, BucketCall::Delete(key.into())).await
}
