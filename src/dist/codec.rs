//! What may cross a real network: the user's message types, each registered in a [`Codec`]
//! under a name both nodes know (the transport, `dist::tcp`, sends every signal between
//! processes of two nodes as bytes).
//!
//! Messages are any `Send + 'static` value inside a node; between machines only the types a
//! codec knows can go. A message of another type is not sent: encoding it fails with
//! [`CodecError::Unregistered`], which the transport records in the trace
//! ([`EventKind::Undeliverable`](crate::trace::EventKind::Undeliverable)) and counts, and the
//! message is dropped as one to an unreachable node would be.
//!
//! ```
//! use otpsim::dist::Codec;
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Ping(u32);
//! let mut codec = Codec::new();
//! codec.register::<Ping>("ping");
//! let bytes = codec.encode(&Ping(7)).unwrap();
//! let back = codec.decode("ping", &bytes).unwrap();
//! assert_eq!(back.downcast_ref::<Ping>(), Some(&Ping(7)));
//! assert!(codec.encode(&3.5f64).is_err()); // f64 is not registered
//! ```

use crate::term::Term;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

type EncodeFn = fn(&dyn Any) -> Result<Vec<u8>, String>;
type DecodeFn = fn(&[u8]) -> Result<Box<dyn Any + Send>, String>;

/// Why a value could not cross the network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value's type is not registered in the codec.
    #[error(
        "no codec for messages of type {type_name}: register it on every node (Codec::register)"
    )]
    Unregistered {
        /// The type's name, as Rust writes it (`my_crate::Ping`), if known.
        type_name: String,
    },
    /// The peer sent a type this node does not know.
    #[error("no codec for the tag {0:?} that the peer sent")]
    UnknownTag(String),
    /// The bytes are not a value of the registered type (a different version on the peer).
    #[error("malformed {tag:?} from the peer: {message}")]
    Malformed {
        /// The type's tag.
        tag: String,
        /// What the decoder said.
        message: String,
    },
}

/// The message types that may cross the network, each under a tag (its name on the wire).
/// Both nodes must register the same types under the same tags. [`Term`] is registered as
/// `"term"` from the start (and the runtime's own answer to a remote spawn).
#[derive(Clone)]
pub struct Codec {
    by_type: BTreeMap<TypeId, (Arc<str>, EncodeFn)>,
    by_tag: BTreeMap<Arc<str>, DecodeFn>,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

/// Two codecs are equal when they register the same types under the same tags.
impl PartialEq for Codec {
    fn eq(&self, other: &Codec) -> bool {
        let types = |c: &Codec| -> Vec<(TypeId, Arc<str>)> {
            c.by_type
                .iter()
                .map(|(id, (tag, _))| (*id, tag.clone()))
                .collect()
        };
        types(self) == types(other) && self.by_tag.keys().eq(other.by_tag.keys())
    }
}

impl Eq for Codec {}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut tags: Vec<&str> = self.by_tag.keys().map(|t| &**t).collect();
        tags.sort_unstable();
        f.debug_struct("Codec").field("tags", &tags).finish()
    }
}

fn encode_as<T: Serialize + 'static>(value: &dyn Any) -> Result<Vec<u8>, String> {
    let value = value
        .downcast_ref::<T>()
        .ok_or_else(|| "registered under another type".to_string())?;
    bincode::serialize(value).map_err(|e| e.to_string())
}

fn decode_as<T: DeserializeOwned + Send + 'static>(
    bytes: &[u8],
) -> Result<Box<dyn Any + Send>, String> {
    bincode::deserialize::<T>(bytes)
        .map(|v| Box::new(v) as Box<dyn Any + Send>)
        .map_err(|e| e.to_string())
}

/// The names of the types sent to other nodes, for the error about an unregistered one
/// (a `dyn Any` has its `TypeId`, not its name).
static TYPE_NAMES: Mutex<BTreeMap<TypeId, &'static str>> = Mutex::new(BTreeMap::new());

/// Remembers `T`'s name for [`CodecError::Unregistered`] (called when a `T` is sent to
/// another node).
pub(crate) fn note_type<T: Any>() {
    let mut names = TYPE_NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    names
        .entry(TypeId::of::<T>())
        .or_insert(std::any::type_name::<T>());
}

fn type_name(id: TypeId) -> String {
    let names = TYPE_NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    names
        .get(&id)
        .map_or_else(|| format!("{id:?}"), |n| n.to_string())
}

impl Codec {
    /// A codec that knows [`Term`] (tag `"term"`).
    pub fn new() -> Codec {
        let mut codec = Codec {
            by_type: BTreeMap::new(),
            by_tag: BTreeMap::new(),
        };
        codec.register::<Term>("term");
        codec.register::<crate::process::SpawnReply>("otpsim.spawn_reply");
        codec
    }

    /// Registers `T` under `tag`. A type registered under several tags (two servers with
    /// the same reply type, say) is sent under its first and received under any; registering
    /// a tag again for another type replaces it.
    pub fn register<T>(&mut self, tag: &str) -> &mut Codec
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let tag: Arc<str> = tag.into();
        self.by_type
            .entry(TypeId::of::<T>())
            .or_insert((tag.clone(), encode_as::<T>));
        self.by_tag.insert(tag, decode_as::<T>);
        self
    }

    /// Encodes a value of a registered type.
    pub fn encode(&self, value: &dyn Any) -> Result<Vec<u8>, CodecError> {
        self.encode_tagged(value).map(|(_, bytes)| bytes)
    }

    /// The tag and bytes of a value.
    pub(crate) fn encode_tagged(&self, value: &dyn Any) -> Result<(Arc<str>, Vec<u8>), CodecError> {
        let id = value.type_id();
        let (tag, encode) = self
            .by_type
            .get(&id)
            .ok_or_else(|| CodecError::Unregistered {
                type_name: type_name(id),
            })?;
        let bytes = encode(value).map_err(|message| CodecError::Malformed {
            tag: tag.to_string(),
            message,
        })?;
        Ok((tag.clone(), bytes))
    }

    /// Decodes the bytes of a value sent under `tag`.
    pub fn decode(&self, tag: &str, bytes: &[u8]) -> Result<Box<dyn Any + Send>, CodecError> {
        let decode = self
            .by_tag
            .get(tag)
            .ok_or_else(|| CodecError::UnknownTag(tag.to_string()))?;
        decode(bytes).map_err(|message| CodecError::Malformed {
            tag: tag.to_string(),
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unregistered_type_is_a_typed_error_that_names_it() {
        struct Secret;
        note_type::<Secret>();
        let err = Codec::new().encode(&Secret).unwrap_err();
        match err {
            CodecError::Unregistered { type_name } => assert!(type_name.ends_with("Secret")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Codec::new().decode("nope", &[]),
            Err(CodecError::UnknownTag(_))
        ));
        assert!(matches!(
            Codec::new().decode("term", &[0xff, 0xff]),
            Err(CodecError::Malformed { .. })
        ));
    }
}
