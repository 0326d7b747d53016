//! The invariant checker (`sim::invariants`) on traces that are correct OTP behaviour but
//! easy to misread: each was once reported as a violation by the fuzz campaign.

use crate::common::check;
use otpsim::rt::Duration;
use otpsim::sim::invariants::{check as check_trace, CheckOptions};
use otpsim::supervisor::{self, ChildSpec, Flags, Shutdown, Start, Started, Strategy};
use otpsim::term::Term;
use otpsim::{ExitReason, Msg};

/// A worker's acknowledgement that it traps exits.
struct Trapping;

fn at_rest() -> CheckOptions {
    CheckOptions {
        at_rest: true,
        ..CheckOptions::default()
    }
}

/// A `start_error` in a supervisor's `init` is not a failed restart (SPEC items 9, 38): the
/// supervisor fails to start, and while it is still stopping the children it did start
/// (slowly, here), no retry is due. The run ends in that window.
#[test]
fn b9_a_child_failing_in_init_leaves_no_retry_due() {
    let report = check(|p| async move {
        let slow = ChildSpec::worker(
            "c0",
            Start::new(|p| {
                let parent = p.pid();
                let pid = p.spawn_link(move |q| async move {
                    q.trap_exit(true);
                    q.send(parent, Trapping);
                    while !matches!(q.recv().await, Msg::Exit { .. }) {}
                    q.sleep(Duration::from_secs(10)).await;
                    ExitReason::Shutdown
                });
                Box::pin(async move {
                    let acked = p.await_start(pid, |m| m.is::<Trapping>()).await;
                    acked.map_err(|reason| reason.to_term())?;
                    Ok(Started::Pid(pid))
                })
            }),
        )
        .shutdown(Shutdown::Infinity);
        let failing = ChildSpec::worker(
            "c1",
            Start::new(|_| Box::pin(async { Err(Term::atom("start_failed")) })),
        );
        let spec = supervisor::SupervisorSpec::new(Flags::new(Strategy::OneForOne))
            .child(slow)
            .child(failing);
        p.spawn(move |q| async move {
            q.trap_exit(true);
            let _ = supervisor::start_link(&q, spec).await;
        });
        p.sleep(Duration::from_secs(1)).await;
    });
    assert!(
        report
            .trace
            .lines()
            .iter()
            .any(|l| l.contains("context=start_error")),
        "the scenario reports the failed start"
    );
    assert_eq!(check_trace(&report.trace, &at_rest()), Ok(()));
}
