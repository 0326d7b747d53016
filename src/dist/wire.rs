//! The bytes between two nodes of a real network (`dist::tcp`): each signal as a
//! [`WireSignal`] inside a length-prefixed [`Frame`], user messages encoded by the node's
//! [`Codec`].

use super::codec::{Codec, CodecError};
use crate::process::{ExitReason, MonitorRef, Signal, SpawnRequest};
use crate::term::{Pid, Ref, Term};
use serde::{Deserialize, Serialize};

impl Codec {
    /// A signal as it goes on the wire.
    pub(crate) fn encode_signal(&self, signal: Signal) -> Result<WireSignal, CodecError> {
        Ok(match signal {
            Signal::Message { payload, alias } => {
                let (tag, bytes) = self.encode_tagged(&*payload)?;
                WireSignal::Message {
                    tag: tag.to_string(),
                    bytes,
                    alias,
                }
            }
            Signal::Exit(r) => WireSignal::Exit(r.to_term()),
            Signal::LinkExit(r) => WireSignal::LinkExit(r.to_term()),
            Signal::Down { mref, reason } => WireSignal::Down {
                mref,
                reason: reason.to_term(),
            },
            Signal::Link => WireSignal::Link,
            Signal::Unlink => WireSignal::Unlink,
            Signal::Monitor(mref) => WireSignal::Monitor(mref),
            Signal::Demonitor(mref) => WireSignal::Demonitor(mref),
            Signal::Named(named) => {
                let (name, payload) = *named;
                let (tag, bytes) = self.encode_tagged(&*payload)?;
                WireSignal::Named {
                    name,
                    tag: tag.to_string(),
                    bytes,
                }
            }
            Signal::MonitorNamed(named) => {
                let (name, mref) = *named;
                WireSignal::MonitorNamed { name, mref }
            }
            Signal::Spawn(request) => WireSignal::Spawn(*request),
        })
    }

    /// A signal off the wire.
    pub(crate) fn decode_signal(&self, wire: WireSignal) -> Result<Signal, CodecError> {
        Ok(match wire {
            WireSignal::Message { tag, bytes, alias } => Signal::Message {
                payload: self.decode(&tag, &bytes)?,
                alias,
            },
            WireSignal::Exit(t) => Signal::Exit(ExitReason::from_term(t)),
            WireSignal::LinkExit(t) => Signal::LinkExit(ExitReason::from_term(t)),
            WireSignal::Down { mref, reason } => Signal::Down {
                mref,
                reason: ExitReason::from_term(reason),
            },
            WireSignal::Link => Signal::Link,
            WireSignal::Unlink => Signal::Unlink,
            WireSignal::Monitor(mref) => Signal::Monitor(mref),
            WireSignal::Demonitor(mref) => Signal::Demonitor(mref),
            WireSignal::Named { name, tag, bytes } => {
                Signal::Named(Box::new((name, self.decode(&tag, &bytes)?)))
            }
            WireSignal::MonitorNamed { name, mref } => Signal::MonitorNamed(Box::new((name, mref))),
            WireSignal::Spawn(request) => Signal::Spawn(Box::new(request)),
        })
    }
}

/// A signal between two processes, as bytes can carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum WireSignal {
    Message {
        tag: String,
        bytes: Vec<u8>,
        alias: Option<Ref>,
    },
    Exit(Term),
    LinkExit(Term),
    Down {
        mref: MonitorRef,
        reason: Term,
    },
    Link,
    Unlink,
    Monitor(MonitorRef),
    Demonitor(MonitorRef),
    Named {
        name: String,
        tag: String,
        bytes: Vec<u8>,
    },
    MonitorNamed {
        name: String,
        mref: MonitorRef,
    },
    Spawn(SpawnRequest),
}

/// The largest frame a node accepts from a connected peer (one that sends more is cut off).
pub(crate) const MAX_FRAME: usize = 64 << 20;

/// One frame on a connection between two nodes (the TCP transport's).
#[cfg_attr(not(feature = "tcp"), allow(dead_code))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Frame {
    /// The first frame of each side: who it is, and the cluster's secret.
    Hello {
        /// The cookie: a node with another one is refused.
        cookie: String,
        /// The node's index.
        index: u16,
        /// Its creation (incarnation).
        creation: u16,
    },
    /// Nothing to say: the connection is alive.
    Tick,
    /// The answer to a dial that loses to the answering node's own dial of the dialler
    /// (the lower index's connection wins): wait for that one.
    Busy,
    /// A signal from a process of the sender's to one of the receiver's.
    Signal {
        from: Pid,
        to: Pid,
        signal: WireSignal,
    },
    /// The answer to a hello with another cookie (Erlang's handshake status `not_allowed`):
    /// the connection is closed.
    NotAllowed,
}

#[cfg_attr(not(feature = "tcp"), allow(dead_code))]
impl Frame {
    /// The frame's bytes, after a 4-byte little-endian length; an error for a frame that
    /// cannot be encoded or is larger than a peer accepts.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let body = bincode::serialize(self).map_err(|e| e.to_string())?;
        if body.len() > MAX_FRAME {
            return Err(format!("a frame of {} bytes is too large", body.len()));
        }
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// A frame from its body (without the length); `None` for bytes that are not one.
    pub(crate) fn from_body(body: &[u8]) -> Option<Frame> {
        bincode::deserialize(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every signal survives the wire (E1-E8 depend on every kind arriving as it left).
    #[test]
    fn every_signal_kind_crosses_the_wire_unchanged() {
        let codec = Codec::new();
        let r = Ref(5);
        let signals = vec![
            Signal::Message {
                payload: Box::new(Term::atom("hi")),
                alias: Some(r),
            },
            Signal::Exit(ExitReason::Shutdown),
            Signal::LinkExit(ExitReason::noconnection()),
            Signal::Down {
                mref: r,
                reason: ExitReason::Noproc,
            },
            Signal::Link,
            Signal::Unlink,
            Signal::Monitor(r),
            Signal::Demonitor(r),
            Signal::Named(Box::new(("srv".into(), Box::new(Term::Int(3))))),
            Signal::MonitorNamed(Box::new(("srv".into(), r))),
            Signal::Spawn(Box::new(SpawnRequest {
                start: "worker".into(),
                arg: Term::Int(1),
                tag: r,
                link: true,
            })),
        ];
        for s in signals {
            let wire = codec.encode_signal(s).unwrap();
            let frame = Frame::Signal {
                from: Pid(1),
                to: Pid(2),
                signal: wire.clone(),
            };
            let bytes = frame.to_bytes().unwrap();
            let back = Frame::from_body(&bytes[4..]).unwrap();
            assert_eq!(back, frame);
            let again = codec.encode_signal(codec.decode_signal(wire.clone()).unwrap());
            assert_eq!(again.unwrap(), wire);
        }
    }

    #[test]
    fn bytes_that_are_not_a_frame_are_refused() {
        assert_eq!(Frame::from_body(&[0xff; 3]), None);
    }
}
