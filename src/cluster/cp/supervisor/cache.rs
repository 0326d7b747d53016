//! Each node's cache of where the children run, which [`DistRef::whereis`] reads first
//! (docs/cp.md, "Lookups"; the design's "lookup is cache-first", ../shared/cluster/SWARM.md
//! §4.5, is in the repository as docs/cp.md's summary of it).
//!
//! * An owner announces each instance it starts to every node's cache ([`Announce`]).
//! * A cache that sees a node come up asks that node's supervisor for what it runs
//!   ([`Peer::Snapshot`](super::Peer::Snapshot)): what was announced while the two were
//!   apart is not lost for good.
//! * Each cached instance is monitored, and forgotten at its `DOWN`: it ended, or the
//!   connection to its node went (`noconnection`).
//! * A lookup is a call to the cache, answered in the order of its mailbox: an instance whose
//!   `DOWN` reached the cache before the lookup was asked is never the answer (I4 in
//!   docs/cluster-invariants.md).
//!
//! [`DistRef::whereis`]: super::DistRef::whereis

use super::Peer;
use crate::process::MonitorRef;
use crate::server::{CallReply, From, GenServer, Init, Next};
use crate::{ExitReason, Msg, Pid, Process};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An owner's word that `pid` is the instance of the child `name` (sent to every node's
/// cache when it starts one, and in answer to a snapshot request).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Announce {
    /// The child.
    pub name: String,
    /// Its instance.
    pub pid: Pid,
}

/// The cache process's state.
pub(super) struct Cache {
    /// The supervisor's name, whose peers it asks for snapshots.
    supervisor: String,
    entries: BTreeMap<String, (Pid, MonitorRef)>,
}

impl Cache {
    fn insert(&mut self, p: &Process, name: String, pid: Pid) {
        if self
            .entries
            .get(&name)
            .is_some_and(|(known, _)| *known == pid)
        {
            return;
        }
        let mref = p.monitor(pid);
        if let Some((_, old)) = self.entries.insert(name, (pid, mref)) {
            p.demonitor_flush(old);
        }
    }
}

impl GenServer for Cache {
    /// The cache's registered name, and its supervisor's.
    type Arg = (String, String);
    /// The child whose instance is asked for.
    type Call = String;
    type Reply = Option<Pid>;
    type Cast = ();
    type Cont = ();

    async fn init((name, supervisor): (String, String), p: &Process) -> Init<Self> {
        if p.register(&name).is_err() {
            return Init::Stop(ExitReason::error("already_started"));
        }
        p.monitor_nodes(true);
        for k in p.node().nodes() {
            let ask = Peer::Snapshot { reply: p.pid() };
            p.send_named(&supervisor, k, ask);
        }
        Init::Ok(Cache {
            supervisor,
            entries: BTreeMap::new(),
        })
    }

    async fn handle_call(
        &mut self,
        name: String,
        _: From<Option<Pid>>,
        _: &Process,
    ) -> CallReply<Self> {
        CallReply::Reply(self.entries.get(&name).map(|(pid, _)| *pid))
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        let msg = match msg.downcast::<Announce>() {
            Ok(Announce { name, pid }) => {
                self.insert(p, name, pid);
                return Next::Continue;
            }
            Err(msg) => msg,
        };
        match msg {
            Msg::Down { mref, .. } => self.entries.retain(|_, (_, m)| *m != mref),
            Msg::NodeUp { node } => {
                let ask = Peer::Snapshot { reply: p.pid() };
                p.send_named(&self.supervisor, node, ask);
            }
            _ => {}
        }
        Next::Continue
    }
}
