//! Erlang distribution over a real network: the wire format of the signals between nodes
//! ([`codec`]), and a TCP transport ([`tcp`], feature `tcp`) that connects a node to its
//! peers with a handshake, ticks and reconnection. In a simulation the same nodes talk
//! through `sim::cluster`'s switch instead (docs/architecture.md, "Across nodes").

pub mod codec;
#[cfg(feature = "tcp")]
pub mod tcp;
pub(crate) mod wire;

pub(crate) use codec::note_type;
pub use codec::{Codec, CodecError};
