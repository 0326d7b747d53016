//! The API calls of the cluster systems, recorded for the cluster invariants
//! (docs/cluster-invariants.md): a call and what it returned (I9, bounded progress), and a
//! lookup's answer (I4, no dangling entries, which judges it against what the node had seen
//! die before the call was made).

use crate::rt::Duration;
use crate::trace::{DistEvent, EventKind};
use crate::{Pid, Process};

/// An API call of `timeout`, recorded around `body`: its `call` event, then its `return`
/// with `shown` of the result. Returns the call's id with the result.
pub(crate) async fn recorded<R>(
    p: &Process,
    what: String,
    timeout: Duration,
    body: impl std::future::Future<Output = R>,
    shown: impl Fn(&R) -> String,
) -> (u64, R) {
    let id = p.make_ref().0;
    let node = p.pid().node();
    p.node().record(EventKind::Dist(DistEvent::Call {
        id,
        node,
        what,
        timeout_ms: timeout.as_millis() as u64,
    }));
    let result = body.await;
    let result_shown = shown(&result);
    p.node().record(EventKind::Dist(DistEvent::Return {
        id,
        result: result_shown,
    }));
    (id, result)
}

/// Records that the lookup of `name` made by API call `call` answered `pid`.
pub(crate) fn lookup(p: &Process, name: &str, pid: Option<Pid>, call: u64) {
    p.node().record(EventKind::Dist(DistEvent::Lookup {
        node: p.pid().node(),
        name: name.into(),
        pid,
        call,
    }));
}
