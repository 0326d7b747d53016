//! The wall-clock watchdog: one thread, outside every simulation, that halts runs which take
//! too long in real time.
//!
//! A run that still yields is halted through its node's flag ([`Halt::WallClock`]). A process
//! stuck in a loop without `.await` can never be pre-empted; when a run ignores its flag for as
//! long again, the watchdog prints what happened and aborts the program, so that a test binary
//! fails instead of hanging CI.
//!
//! [`Halt::WallClock`]: crate::process::Halt::WallClock

// The watchdog measures real time on its own thread, outside every simulation.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Armed {
    deadline: Instant,
    limit: Duration,
    flag: Arc<AtomicBool>,
}

#[derive(Default)]
struct Watchdog {
    next_id: u64,
    armed: BTreeMap<u64, Armed>,
}

/// Removes its run from the watchdog when dropped.
pub(super) struct Guard {
    id: u64,
    flag: Arc<AtomicBool>,
}

impl Guard {
    pub(super) fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        watchdog()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .armed
            .remove(&self.id);
    }
}

fn watchdog() -> &'static Mutex<Watchdog> {
    static WATCHDOG: OnceLock<Mutex<Watchdog>> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        std::thread::Builder::new()
            .name("otpsim-watchdog".into())
            .spawn(patrol)
            .expect("the watchdog thread can be spawned");
        Mutex::new(Watchdog::default())
    })
}

/// Registers a run that may take `limit` of wall-clock time. Call outside any simulation.
pub(super) fn arm(limit: Duration) -> Guard {
    let flag = Arc::new(AtomicBool::new(false));
    let mut w = watchdog().lock().unwrap_or_else(|e| e.into_inner());
    w.next_id += 1;
    let id = w.next_id;
    w.armed.insert(
        id,
        Armed {
            deadline: Instant::now() + limit,
            limit,
            flag: flag.clone(),
        },
    );
    Guard { id, flag }
}

fn patrol() {
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        let mut w = watchdog().lock().unwrap_or_else(|e| e.into_inner());
        for armed in w.armed.values_mut() {
            if now < armed.deadline {
                continue;
            }
            if !armed.flag.swap(true, Ordering::Relaxed) {
                armed.deadline = now + armed.limit;
            } else {
                eprintln!(
                    "otpsim watchdog: a simulated run ignored its halt for {:?} of wall-clock \
                     time: a process is looping without `.await`. Aborting.",
                    armed.limit
                );
                std::process::abort();
            }
        }
    }
}
