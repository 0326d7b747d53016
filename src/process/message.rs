//! What a process finds in its mailbox.

use super::ExitReason;
use crate::term::{Pid, Ref};
use std::any::Any;
use std::fmt;

/// A monitor's reference, carried back in its [`Msg::Down`].
pub type MonitorRef = Ref;

/// A message in a process's mailbox.
///
/// User messages are values of any `Send + 'static` type; exit signals of a trapping process
/// and monitors' notifications arrive as their own variants.
///
/// ```
/// use otpsim::Msg;
/// let m = Msg::user(42u32);
/// assert_eq!(m.downcast_ref::<u32>(), Some(&42));
/// assert!(Msg::user("hi").downcast::<u32>().is_err());
/// ```
pub enum Msg {
    /// A value sent with [`Process::send`](crate::Process::send).
    User(Box<dyn Any + Send>),
    /// `{'EXIT', From, Reason}`: an exit signal received while trapping exits.
    Exit {
        /// The sender (for a link, the process that died).
        from: Pid,
        /// The signal's reason.
        reason: ExitReason,
    },
    /// `{'DOWN', Ref, process, Pid, Reason}`: a monitored process went down.
    Down {
        /// The monitor.
        mref: MonitorRef,
        /// The process that went down.
        pid: Pid,
        /// Its exit reason (`noproc` if it was already dead when monitored).
        reason: ExitReason,
    },
    /// `{nodedown, Node}`: the connection to node `node` went down, or could not be made
    /// (see [`Process::monitor_node`](crate::Process::monitor_node) and
    /// [`Process::monitor_nodes`](crate::Process::monitor_nodes)).
    NodeDown {
        /// The node's index.
        node: u16,
        /// Why, for a `monitor_nodes` subscriber (Erlang's `nodedown_reason`); `None` for a
        /// `monitor_node`, whose message has none.
        reason: Option<NodeDownReason>,
    },
    /// `{nodeup, Node}`: a connection to node `node` came up (see
    /// [`Process::monitor_nodes`](crate::Process::monitor_nodes)).
    NodeUp {
        /// The node's index.
        node: u16,
    },
}

/// Why a connection went down, as a `monitor_nodes` subscriber hears it (Erlang's
/// `nodedown_reason`, recorded in `sim-tests/conformance/c08_disconnect_reasons.trace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeDownReason {
    /// The other side closed it: its node crashed or stopped, or it disconnected
    /// (`connection_closed`).
    ConnectionClosed,
    /// This node disconnected it (`erlang:disconnect_node/1`: `disconnect`).
    Disconnect,
    /// Nothing was heard within `net_ticktime` (`net_tick_timeout`).
    NetTickTimeout,
}

impl NodeDownReason {
    /// Erlang's atom for it.
    pub fn as_atom(self) -> &'static str {
        match self {
            NodeDownReason::ConnectionClosed => "connection_closed",
            NodeDownReason::Disconnect => "disconnect",
            NodeDownReason::NetTickTimeout => "net_tick_timeout",
        }
    }
}

impl Msg {
    /// A user message holding `value`.
    pub fn user<T: Any + Send>(value: T) -> Msg {
        Msg::User(Box::new(value))
    }

    /// The user value, if this is a user message of type `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match self {
            Msg::User(b) => b.downcast_ref(),
            _ => None,
        }
    }

    /// Whether this is a user message of type `T`.
    pub fn is<T: Any>(&self) -> bool {
        self.downcast_ref::<T>().is_some()
    }

    /// Takes the user value out if it is of type `T`; gives the message back otherwise.
    pub fn downcast<T: Any>(self) -> Result<T, Msg> {
        match self {
            Msg::User(b) => b.downcast::<T>().map(|b| *b).map_err(Msg::User),
            other => Err(other),
        }
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Msg::User(_) => f.write_str("User(..)"),
            Msg::Exit { from, reason } => write!(f, "{{'EXIT',{from},{reason}}}"),
            Msg::Down { mref, pid, reason } => {
                write!(f, "{{'DOWN',{mref:?},process,{pid},{reason}}}")
            }
            Msg::NodeDown { node, reason: None } => write!(f, "{{nodedown,n{node}}}"),
            Msg::NodeDown {
                node,
                reason: Some(r),
            } => write!(
                f,
                "{{nodedown,n{node},#{{nodedown_reason=>{}}}}}",
                r.as_atom()
            ),
            Msg::NodeUp { node } => write!(f, "{{nodeup,n{node}}}"),
        }
    }
}
