//! A node's disk: named files of bytes that outlive the node's incarnations.
//!
//! What a process writes is at once readable, and survives a crash of its node and its restart
//! (the host's disk is still there). What it has not [`sync`](Disk::sync)ed is lost when the
//! host loses power ([`Disk::power_fail`]; in a simulated cluster,
//! `ClusterCtl::power_fail`): each file goes back to what it held at its last sync, and a
//! file never synced is gone. A write-ahead log that acknowledges before it syncs loses
//! acknowledged entries there.
//!
//! The disk lives in memory: natively it lasts as long as the OS process, and a node built
//! without one gets a fresh, empty disk.
//!
//! ```
//! use otpsim::Disk;
//! let disk = Disk::new();
//! disk.append("log", b"entry 1;");
//! disk.sync("log");
//! disk.append("log", b"entry 2;");
//! assert_eq!(disk.read("log").as_deref(), Some(&b"entry 1;entry 2;"[..]));
//! disk.power_fail();
//! assert_eq!(disk.read("log").as_deref(), Some(&b"entry 1;"[..]));
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A node's disk: named files that outlive the node's crashes and restarts, and lose what was not
/// [synced](Disk::sync) when the host loses power ([`Disk::power_fail`]). Clones are the same disk.
#[derive(Clone, Debug, Default)]
pub struct Disk(Arc<Mutex<BTreeMap<String, File>>>);

#[derive(Debug, Default)]
struct File {
    /// What a read returns.
    data: Vec<u8>,
    /// What survives a power failure (`None`: the file goes).
    synced: Option<Vec<u8>>,
}

impl Disk {
    /// An empty disk.
    pub fn new() -> Disk {
        Disk::default()
    }

    fn files(&self) -> MutexGuard<'_, BTreeMap<String, File>> {
        // Nothing panics while holding the lock; a poisoned map is still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the contents of `name` (creating it), not synced.
    pub fn write(&self, name: &str, bytes: &[u8]) {
        let mut files = self.files();
        let file = files.entry(name.to_string()).or_default();
        file.data.clear();
        file.data.extend_from_slice(bytes);
    }

    /// Adds `bytes` at the end of `name` (creating it), not synced.
    pub fn append(&self, name: &str, bytes: &[u8]) {
        let mut files = self.files();
        files
            .entry(name.to_string())
            .or_default()
            .data
            .extend_from_slice(bytes);
    }

    /// The contents of `name`, if it exists.
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        self.files().get(name).map(|f| f.data.clone())
    }

    /// Makes what `name` holds now survive a power failure (`fsync`). A name that does not
    /// exist is synced as absent.
    pub fn sync(&self, name: &str) {
        let mut files = self.files();
        if let Some(file) = files.get_mut(name) {
            file.synced = Some(file.data.clone());
        }
    }

    /// Removes `name` at once, synced (a rename or unlink followed by a directory sync).
    pub fn remove(&self, name: &str) {
        self.files().remove(name);
    }

    /// The names of the files, in order.
    pub fn names(&self) -> Vec<String> {
        self.files().keys().cloned().collect()
    }

    /// The host loses power: every file goes back to what it held at its last sync, and the
    /// files never synced are gone.
    pub fn power_fail(&self) {
        self.files().retain(|_, file| match file.synced.clone() {
            Some(synced) => {
                file.data = synced;
                true
            }
            None => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write replaces, an append adds; a power failure keeps exactly what was synced, and
    /// a removed file stays removed.
    #[test]
    fn a_power_failure_keeps_exactly_what_was_synced() {
        let disk = Disk::new();
        disk.write("term", b"3");
        disk.sync("term");
        disk.write("term", b"4");
        disk.write("vote", b"n2");
        disk.append("log", b"a");
        disk.sync("log");
        disk.remove("log");
        disk.write("gone", b"x");
        disk.sync("gone");
        disk.remove("gone");
        assert_eq!(disk.names(), ["term", "vote"]);
        assert_eq!(disk.read("term").as_deref(), Some(&b"4"[..]));
        disk.power_fail();
        assert_eq!(disk.names(), ["term"]);
        assert_eq!(disk.read("term").as_deref(), Some(&b"3"[..]));
        assert_eq!(disk.read("vote"), None);
    }
}
