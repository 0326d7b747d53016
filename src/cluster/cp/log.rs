//! Raft's durable state on a node's [`Disk`]: the log's entries and the hard state (term,
//! vote, commit), read back when the node boots again.
//!
//! Two files per Raft group: `{name}.entries`, every entry Raft asked to persist, one record
//! after another (a 4-byte little-endian length, then the entry in protobuf), and
//! `{name}.state`, the last hard state. Reading the entries back in order and appending each
//! to a fresh [`MemStorage`] rebuilds the log as Raft left it, since an append at an index the
//! log already has replaces that entry and everything after it (Raft's own rule for a
//! follower's conflicting suffix). The log is never compacted: the groups this crate runs
//! commit a handful of entries per second of simulated time.
//!
//! Nothing is acknowledged before [`DurableLog::sync`]: a power failure
//! ([`Disk::power_fail`]) takes the files back to a state Raft had persisted.

use crate::Disk;
use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState};
use raft::storage::{MemStorage, Storage};

/// A Raft log and hard state that survive the node's crashes and restarts.
pub(crate) struct DurableLog {
    disk: Disk,
    entries_file: String,
    state_file: String,
    /// What Raft reads: the whole log, in memory.
    pub(crate) storage: MemStorage,
}

/// A file of a Raft group's durable state that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Raft file {file} cannot be read back at byte {at}: {why}")]
pub struct CorruptLog {
    /// The file.
    pub file: String,
    /// Where its first unreadable record starts.
    pub at: usize,
    /// What is wrong there.
    pub why: String,
}

impl DurableLog {
    /// The group `name`'s log on `disk`, as it was last written, for a group of `voters`
    /// (fixed membership); an empty log on a fresh disk.
    pub(crate) fn open(disk: &Disk, name: &str, voters: &[u64]) -> Result<DurableLog, CorruptLog> {
        let log = DurableLog {
            disk: disk.clone(),
            entries_file: format!("{name}.entries"),
            state_file: format!("{name}.state"),
            storage: MemStorage::new_with_conf_state(ConfState::from((voters.to_vec(), vec![]))),
        };
        if let Some(bytes) = disk.read(&log.entries_file) {
            log.replay_entries(&bytes)?;
        }
        if let Some(bytes) = disk.read(&log.state_file) {
            let corrupt = |why: String| CorruptLog {
                file: log.state_file.clone(),
                at: 0,
                why,
            };
            let hs = HardState::parse_from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?;
            let last = log.last_index();
            if hs.commit > last {
                return Err(corrupt(format!(
                    "commit {} is past the log's last entry {last}",
                    hs.commit
                )));
            }
            log.storage.wl().set_hardstate(hs);
        }
        Ok(log)
    }

    fn last_index(&self) -> u64 {
        // MemStorage's last_index cannot fail.
        self.storage.last_index().unwrap_or(0)
    }

    fn replay_entries(&self, bytes: &[u8]) -> Result<(), CorruptLog> {
        let mut at = 0;
        while at < bytes.len() {
            let corrupt = |why: String| CorruptLog {
                file: self.entries_file.clone(),
                at,
                why,
            };
            let body = at + 4;
            let len = bytes
                .get(at..body)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| corrupt("a record's length is cut short".into()))?;
            let record = bytes
                .get(body..body + len)
                .ok_or_else(|| corrupt(format!("a record of {len} bytes is cut short")))?;
            let entry = Entry::parse_from_bytes(record).map_err(|e| corrupt(e.to_string()))?;
            let last = self.last_index();
            if entry.index == 0 || entry.index > last + 1 {
                return Err(corrupt(format!(
                    "entry {} does not follow the log's last entry {last}",
                    entry.index
                )));
            }
            self.storage
                .wl()
                .append(&[entry])
                .map_err(|e| corrupt(e.to_string()))?;
            at = body + len;
        }
        Ok(())
    }

    /// Writes `entries` (Raft's `Ready::entries`) to the log, not yet synced.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> raft::Result<()> {
        let mut bytes = Vec::new();
        for entry in entries {
            let record = entry.write_to_bytes()?;
            bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&record);
        }
        self.disk.append(&self.entries_file, &bytes);
        self.storage.wl().append(entries)
    }

    /// Writes the hard state, not yet synced.
    pub(crate) fn set_hard_state(&mut self, hs: &HardState) -> raft::Result<()> {
        self.disk.write(&self.state_file, &hs.write_to_bytes()?);
        self.storage.wl().set_hardstate(hs.clone());
        Ok(())
    }

    /// Records a new commit index (Raft's `LightReady::commit_index`), not yet synced: losing it
    /// costs nothing, the leader tells it again.
    pub(crate) fn set_commit(&mut self, commit: u64) -> raft::Result<()> {
        let hs = {
            let mut core = self.storage.wl();
            core.mut_hard_state().commit = commit;
            core.hard_state().clone()
        };
        self.disk.write(&self.state_file, &hs.write_to_bytes()?);
        Ok(())
    }

    /// Makes everything written so far survive a power failure.
    pub(crate) fn sync(&self) {
        self.disk.sync(&self.entries_file);
        self.disk.sync(&self.state_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    fn entries(log: &DurableLog) -> Vec<(u64, u64, Vec<u8>)> {
        let last = log.last_index();
        log.storage
            .entries(1, last + 1, None, raft::GetEntriesContext::empty(false))
            .unwrap()
            .into_iter()
            .map(|e| (e.index, e.term, e.data.to_vec()))
            .collect()
    }

    /// What Raft persisted comes back at the next boot, a conflicting suffix replaced as Raft
    /// replaced it (docs/cp.md, "Consensus").
    #[test]
    fn a_log_reads_back_as_raft_left_it() {
        let disk = Disk::new();
        let mut log = DurableLog::open(&disk, "g", &[1, 2, 3]).unwrap();
        log.append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")])
            .unwrap();
        // A new leader of term 2 overwrites entries 2 and 3.
        log.append(&[entry(2, 2, b"B")]).unwrap();
        let hs = HardState {
            term: 2,
            vote: 3,
            commit: 2,
            ..Default::default()
        };
        log.set_hard_state(&hs).unwrap();
        log.sync();
        let again = DurableLog::open(&disk, "g", &[1, 2, 3]).unwrap();
        assert_eq!(
            entries(&again),
            vec![(1, 1, b"a".to_vec()), (2, 2, b"B".to_vec())]
        );
        assert_eq!(again.storage.rl().hard_state(), &hs);
    }

    /// A power failure takes the log back to its last sync.
    #[test]
    fn a_power_failure_loses_what_was_not_synced() {
        let disk = Disk::new();
        let mut log = DurableLog::open(&disk, "g", &[1]).unwrap();
        log.append(&[entry(1, 1, b"a")]).unwrap();
        log.sync();
        log.append(&[entry(2, 1, b"b")]).unwrap();
        disk.power_fail();
        let again = DurableLog::open(&disk, "g", &[1]).unwrap();
        assert_eq!(entries(&again), vec![(1, 1, b"a".to_vec())]);
    }

    /// A file that is not what this module wrote is a typed error, not a panic.
    #[test]
    fn a_corrupt_file_is_a_typed_error() {
        let disk = Disk::new();
        disk.write("g.entries", &[9, 0, 0, 0, 1]);
        let err = DurableLog::open(&disk, "g", &[1]).err().unwrap();
        assert_eq!((err.file.as_str(), err.at), ("g.entries", 0));
        // An entry that leaves a gap.
        let record = entry(3, 1, b"c").write_to_bytes().unwrap();
        disk.write(
            "g.entries",
            &[&(record.len() as u32).to_le_bytes()[..], &record].concat(),
        );
        let err = DurableLog::open(&disk, "g", &[1]).err().unwrap();
        assert!(err.why.contains("does not follow"), "{err}");
        // A commit past the log.
        disk.remove("g.entries");
        let hs = HardState {
            commit: 5,
            ..Default::default()
        };
        disk.write("g.state", &hs.write_to_bytes().unwrap());
        let err = DurableLog::open(&disk, "g", &[1]).err().unwrap();
        assert!(err.why.contains("past the log"), "{err}");
    }
}
