//! Stopping a server from outside: `gen_server:stop/1,3` (Elixir's `GenServer.stop/3`,
//! `Supervisor.stop/3`), as OTP 25's `proc_lib:stop/3` does it (docs/behaviours.md, "Stopping
//! a process"; recorded: `sim-tests/conformance/probes/stop_probe`).
//!
//! The caller monitors the server and sends it a system request to terminate with a reason;
//! the server acknowledges it at once, runs `terminate` and exits with that reason. The
//! caller then waits for the server's death: `Ok` if it died with the reason asked for,
//! [`StopError::Exit`] with its actual reason otherwise (its `terminate` panicked). A timeout
//! covers both waits and never kills the server: a server that is busy, or slow in
//! `terminate`, still stops when it gets to the request.

use super::ServerRef;
use crate::process::{ExitReason, Msg, Process};
use crate::rt::Duration;
use crate::term::{Pid, Ref, Term};

/// Why a stop failed: what `gen_server:stop/3` exits with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StopError {
    /// `noproc`: the server was not alive (or the name was not registered).
    #[error("noproc: the server is not alive")]
    Noproc,
    /// `timeout`: the server was not dead within the timeout. It is not killed: it stops
    /// when it gets to the request.
    #[error("the server did not stop within the timeout")]
    Timeout,
    /// `calling_self`: a process asked to stop itself (OTP's reason names the request:
    /// `{calling_self,{sys,terminate,[Pid,Reason,Timeout]}}`).
    #[error("a process cannot stop itself with stop")]
    CallingSelf {
        /// The process.
        pid: Pid,
        /// The reason it asked for.
        reason: ExitReason,
        /// The timeout it gave.
        timeout: Option<Duration>,
    },
    /// The server died with this reason, not the one asked for (its `terminate` panicked,
    /// or it died of something else first).
    #[error("the server exited with reason {0}")]
    Exit(ExitReason),
}

impl StopError {
    /// The reason `gen_server:stop/3` exits with (`noproc`, `timeout`, ...).
    pub fn to_term(&self) -> Term {
        match self {
            StopError::Noproc => Term::atom("noproc"),
            StopError::Timeout => Term::atom("timeout"),
            StopError::CallingSelf {
                pid,
                reason,
                timeout,
            } => {
                let timeout = timeout.map_or(Term::atom("infinity"), |t| {
                    Term::Int(t.as_millis().try_into().unwrap_or(i64::MAX))
                });
                let request = Term::list([Term::Pid(*pid), reason.to_term(), timeout]);
                let mfa = Term::tuple([Term::atom("sys"), Term::atom("terminate"), request]);
                Term::tuple([Term::atom("calling_self"), mfa])
            }
            StopError::Exit(reason) => reason.to_term(),
        }
    }
}

/// `{system, From, {terminate, Reason}}`: asks a server to terminate with `reason`.
pub(super) struct SystemStop {
    pub(super) reason: ExitReason,
    pub(super) from: Pid,
    pub(super) tag: Ref,
}

/// The server's acknowledgement of a [`SystemStop`] (sent before it terminates).
struct StopAck {
    tag: Ref,
}

impl SystemStop {
    /// The server's side: acknowledges the request (through the caller's alias: a caller
    /// that gave up gets nothing) and gives the reason to terminate with.
    pub(super) fn acknowledge(self, p: &Process) -> ExitReason {
        let ack = StopAck { tag: self.tag };
        p.send_boxed(self.from, Box::new(ack), Some(self.tag));
        self.reason
    }
}

/// Stops the process `pid` (any GenServer: a server, a supervisor) with `reason`, waiting at
/// most `timeout` (`None`: for ever). See the module documentation.
pub async fn stop(
    p: &Process,
    pid: Pid,
    reason: ExitReason,
    timeout: Option<Duration>,
) -> Result<(), StopError> {
    if pid == p.pid() {
        return Err(StopError::CallingSelf {
            pid,
            reason,
            timeout,
        });
    }
    let deadline = timeout.map(|t| p.now() + t);
    let left = || deadline.map(|d| d.saturating_duration_since(p.now()));
    let mref = p.monitor(pid);
    let asked = reason.clone();
    let (request, tag) = p.request(pid, |tag| {
        let from = p.pid();
        Box::new(SystemStop {
            reason: asked,
            from,
            tag,
        })
    });
    let acked = |m: &Msg| match m {
        Msg::Down { mref: r, .. } => *r == request,
        m => m.downcast_ref::<StopAck>().is_some_and(|a| a.tag == tag),
    };
    match p.await_reply(acked, left(), (request, tag)).await {
        Some(Msg::Down { reason, .. }) => {
            p.demonitor_flush(mref);
            return Err(match reason {
                ExitReason::Noproc => StopError::Noproc,
                reason => StopError::Exit(reason),
            });
        }
        Some(_ack) => {}
        None => {
            p.demonitor_flush(mref);
            return Err(StopError::Timeout);
        }
    }
    let down = |m: &Msg| matches!(m, Msg::Down { mref: r, .. } if *r == mref);
    match p.receive_internal(down, left()).await {
        Some(Msg::Down { reason: died, .. }) if died == reason => Ok(()),
        Some(Msg::Down { reason: died, .. }) => Err(StopError::Exit(died)),
        _ => {
            p.demonitor_flush(mref);
            Err(StopError::Timeout)
        }
    }
}

impl<S> ServerRef<S> {
    /// Stops the server with reason `normal` and waits for as long as it takes
    /// (`gen_server:stop/1`): its `terminate` runs, and when this returns `Ok` it is dead.
    ///
    /// ```
    /// use otpsim::{rt, Node, Process, ExitReason};
    /// use otpsim::server::{self, GenServer, Init, StopError};
    ///
    /// struct Idle;
    /// impl GenServer for Idle {
    ///     type Arg = ();
    ///     type Call = ();
    ///     type Reply = ();
    ///     type Cast = ();
    ///     type Cont = ();
    ///     async fn init(_: (), _p: &Process) -> Init<Self> {
    ///         Init::Ok(Idle)
    ///     }
    /// }
    ///
    /// rt::block_on(0, async {
    ///     let node = Node::new();
    ///     let main = node.spawn(|p| async move {
    ///         let idle = server::start_link::<Idle>(&p, ()).await.unwrap();
    ///         assert_eq!(idle.stop(&p).await, Ok(()));
    ///         assert!(!p.node().is_alive(idle.pid()));
    ///         assert_eq!(idle.stop(&p).await, Err(StopError::Noproc));
    ///     });
    ///     assert_eq!(node.wait_exit(main).await, Some(ExitReason::Normal));
    /// });
    /// ```
    pub async fn stop(&self, p: &Process) -> Result<(), StopError> {
        stop(p, self.pid, ExitReason::Normal, None).await
    }

    /// Stops the server with `reason`, waiting at most `timeout` (`gen_server:stop/3`). A
    /// caller linked to the server and not trapping exits dies of any reason but `normal`
    /// (as in Erlang, it never returns).
    pub async fn stop_with(
        &self,
        p: &Process,
        reason: ExitReason,
        timeout: Option<Duration>,
    ) -> Result<(), StopError> {
        stop(p, self.pid, reason, timeout).await
    }
}
