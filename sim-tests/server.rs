//! GenServer-style servers: start results, call/cast/info, continue, terminate, names, and
//! the failure modes of calls (docs/behaviours.md §M item 103 and gen_server's `init_it`, `decode_msg`).

use crate::common::{check, has_line};
use otpsim::server::{
    self, CallError, CallReply, From, GenServer, Init, Next, ServerRef, StartError, StartOptions,
};
use otpsim::{ExitReason, Msg, Pid, Process};

/// A scriptable server: its behaviour is chosen by its argument and requests.
struct Probe {
    log_to: Pid,
    value: i64,
    deferred: Option<From<i64>>,
    panic_in_terminate: bool,
}

enum InitMode {
    Ok,
    Continue,
    Ignore,
    Stop,
    Panic,
    Trap,
}

enum Req {
    Get,
    Add(i64),
    Defer,
    Release,
    StopWithReply,
    Panic,
    #[cfg_attr(not(madsim), allow(dead_code))]
    Slow,
}

impl GenServer for Probe {
    type Arg = (Pid, InitMode);
    type Call = Req;
    type Reply = i64;
    type Cast = Req;
    type Cont = &'static str;

    async fn init((log_to, mode): (Pid, InitMode), p: &Process) -> Init<Self> {
        let state = Probe {
            log_to,
            value: 0,
            deferred: None,
            panic_in_terminate: false,
        };
        match mode {
            InitMode::Ok => Init::Ok(state),
            InitMode::Continue => Init::Continue(state, "from init"),
            InitMode::Ignore => Init::Ignore,
            InitMode::Stop => Init::Stop(ExitReason::error("no_db")),
            InitMode::Panic => panic!("init exploded"),
            InitMode::Trap => {
                p.trap_exit(true);
                Init::Ok(state)
            }
        }
    }

    async fn handle_call(&mut self, req: Req, from: From<i64>, p: &Process) -> CallReply<Self> {
        match req {
            Req::Get => CallReply::Reply(self.value),
            Req::Add(n) => {
                self.value += n;
                CallReply::ReplyContinue(self.value, "after add")
            }
            Req::Defer => {
                p.send(self.log_to, "deferred".to_string());
                self.deferred = Some(from);
                CallReply::NoReply
            }
            Req::Release => {
                if let Some(f) = self.deferred.take() {
                    f.reply(p, -1);
                }
                CallReply::Reply(0)
            }
            Req::StopWithReply => CallReply::Stop(ExitReason::error("asked"), Some(99)),
            Req::Panic => panic!("handler exploded"),
            Req::Slow => {
                p.sleep(otpsim::rt::Duration::from_secs(10)).await;
                CallReply::Reply(0)
            }
        }
    }

    async fn handle_cast(&mut self, req: Req, _p: &Process) -> Next<Self> {
        match req {
            Req::Add(n) => {
                self.value += n;
                Next::Continue
            }
            Req::Panic => {
                self.panic_in_terminate = true;
                Next::Stop(ExitReason::error("cast_stop"))
            }
            _ => Next::Stop(ExitReason::error("bad_cast")),
        }
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        p.send(self.log_to, format!("info {msg:?}"));
        Next::Continue
    }

    async fn handle_continue(&mut self, cont: &'static str, p: &Process) -> Next<Self> {
        p.send(self.log_to, format!("continue {cont} value={}", self.value));
        Next::Continue
    }

    async fn terminate(&mut self, reason: &ExitReason, p: &Process) {
        p.send(self.log_to, format!("terminate {reason}"));
        if self.panic_in_terminate {
            panic!("terminate exploded");
        }
    }
}

async fn log(p: &Process) -> String {
    p.receive(|m| m.is::<String>())
        .await
        .downcast::<String>()
        .ok()
        .unwrap()
}

async fn start(p: &Process, mode: InitMode) -> Result<ServerRef<Probe>, StartError> {
    server::start_link::<Probe>(p, (p.pid(), mode)).await
}

#[test]
fn call_cast_and_info_reach_their_callbacks() {
    check(|p| async move {
        let s = start(&p, InitMode::Ok).await.unwrap();
        s.cast(&p, Req::Add(5));
        assert_eq!(s.call(&p, Req::Get).await, Ok(5));
        p.send(s.pid(), 7u8);
        assert_eq!(log(&p).await, "info User(..)");
        assert_eq!(s.call(&p, Req::Add(1)).await, Ok(6));
        assert_eq!(log(&p).await, "continue after add value=6");
    });
}

#[test]
fn init_continue_runs_before_any_message() {
    check(|p| async move {
        let s = start(&p, InitMode::Continue).await.unwrap();
        assert_eq!(s.call(&p, Req::Get).await, Ok(0));
        assert_eq!(log(&p).await, "continue from init value=0");
    });
}

#[test]
fn init_ignore_returns_ignore_and_the_process_exits_normally() {
    check(|p| async move {
        assert_eq!(start(&p, InitMode::Ignore).await, Err(StartError::Ignore));
        assert_eq!(p.mailbox_len(), 0);
    });
}

#[test]
fn init_stop_fails_the_start_and_kills_a_non_trapping_caller_through_the_link() {
    check(|p| async move {
        p.trap_exit(true);
        let err = start(&p, InitMode::Stop).await.unwrap_err();
        assert_eq!(err, StartError::Failed(ExitReason::error("no_db")));
        assert!(
            matches!(p.recv().await, Msg::Exit { reason, .. } if reason == ExitReason::error("no_db"))
        );
        let (_, mref) = p.spawn_monitor(|q| async move {
            let _ = start(&q, InitMode::Stop).await;
            q.recv().await;
        });
        match p.recv().await {
            Msg::Down {
                mref: r, reason, ..
            } => {
                assert_eq!((r, reason), (mref, ExitReason::error("no_db")));
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_panic_in_init_is_the_start_error_and_the_exit_reason() {
    check(|p| async move {
        p.trap_exit(true);
        let panic = ExitReason::Panic("init exploded".into());
        assert_eq!(
            start(&p, InitMode::Panic).await,
            Err(StartError::Failed(panic.clone()))
        );
        assert!(matches!(p.recv().await, Msg::Exit { reason, .. } if reason == panic));
    });
}

#[test]
fn a_panic_in_a_handler_runs_terminate_and_becomes_the_exit_reason() {
    check(|p| async move {
        let s = start(&p, InitMode::Trap).await.unwrap();
        p.trap_exit(true);
        let panic = ExitReason::Panic("handler exploded".into());
        assert_eq!(
            s.call(&p, Req::Panic).await,
            Err(CallError::Exit(panic.clone()))
        );
        assert_eq!(log(&p).await, "terminate {panic,\"handler exploded\"}");
        assert!(matches!(p.recv().await, Msg::Exit { reason, .. } if reason == panic));
    });
}

#[test]
fn a_panic_in_terminate_replaces_the_exit_reason() {
    check(|p| async move {
        p.trap_exit(true);
        let s = start(&p, InitMode::Ok).await.unwrap();
        s.cast(&p, Req::Panic);
        assert_eq!(log(&p).await, "terminate cast_stop");
        let panic = ExitReason::Panic("terminate exploded".into());
        assert!(
            matches!(p.recv().await, Msg::Exit { from, reason } if from == s.pid() && reason == panic)
        );
    });
}

#[test]
fn m103_a_trapping_server_terminates_with_its_parents_exit_reason() {
    let report = check(|p| async move {
        let root = p.pid();
        let (parent, _) = p.spawn_monitor(move |q| async move {
            let s = server::start_link::<Probe>(&q, (root, InitMode::Trap))
                .await
                .unwrap();
            q.send(root, s.pid());
            q.recv().await;
            ExitReason::error("parent_gone")
        });
        let server: Pid = p.receive(|m| m.is::<Pid>()).await.downcast().ok().unwrap();
        // an EXIT from a stranger (here the root) goes to handle_info
        p.exit(server, ExitReason::Shutdown);
        assert_eq!(log(&p).await, format!("info {{'EXIT',{root},shutdown}}"));
        // the parent's exit runs terminate and the server exits with that reason
        p.send(parent, ());
        assert_eq!(log(&p).await, "terminate parent_gone");
    });
    assert!(has_line(&report, "exit <0.3> reason=parent_gone"));
}

#[test]
fn m103_a_non_trapping_server_dies_without_terminate() {
    check(|p| async move {
        p.trap_exit(true);
        let s = start(&p, InitMode::Ok).await.unwrap();
        p.exit(s.pid(), ExitReason::error("stop_now"));
        assert!(
            matches!(p.recv().await, Msg::Exit { reason, .. } if reason == ExitReason::error("stop_now"))
        );
        assert_eq!(p.mailbox_len(), 0, "terminate must not have run");
    });
}

#[test]
fn calls_to_dead_or_dying_servers_are_errors_not_panics() {
    check(|p| async move {
        p.trap_exit(true);
        let s = start(&p, InitMode::Ok).await.unwrap();
        assert_eq!(s.call(&p, Req::StopWithReply).await, Ok(99));
        assert_eq!(log(&p).await, "terminate asked");
        assert!(
            matches!(p.recv().await, Msg::Exit { reason, .. } if reason == ExitReason::error("asked"))
        );
        assert_eq!(s.call(&p, Req::Get).await, Err(CallError::Noproc));
        s.cast(&p, Req::Add(1)); // casts to a dead server are dropped
        let stranger = ServerRef::<Probe>::from_pid(Pid::from_raw(12345));
        assert_eq!(stranger.call(&p, Req::Get).await, Err(CallError::Noproc));
    });
}

#[test]
fn a_deferred_reply_arrives_through_from() {
    check(|p| async move {
        let s = start(&p, InitMode::Ok).await.unwrap();
        let root = p.pid();
        p.spawn(move |q| async move {
            let r = s.call_timeout(&q, Req::Defer, None).await;
            q.send(root, r);
        });
        assert_eq!(log(&p).await, "deferred");
        assert_eq!(s.call(&p, Req::Release).await, Ok(0));
        let r: Result<i64, CallError> = p
            .receive(|m| m.is::<Result<i64, CallError>>())
            .await
            .downcast()
            .ok()
            .unwrap();
        assert_eq!(r, Ok(-1));
    });
}

#[test]
fn a_name_is_registered_before_init_and_a_second_start_reports_the_owner() {
    check(|p| async move {
        let opts = StartOptions::linked().named("probe");
        let s = server::start_with::<Probe>(&p, (p.pid(), InitMode::Ok), opts.clone())
            .await
            .unwrap();
        assert_eq!(ServerRef::<Probe>::whereis(&p, "probe"), Some(s));
        let again = server::start_with::<Probe>(&p, (p.pid(), InitMode::Ok), opts).await;
        assert_eq!(again, Err(StartError::AlreadyStarted(s.pid())));
        assert_eq!(
            again.unwrap_err().reason().to_string(),
            format!("{{already_started,{}}}", s.pid())
        );
    });
}

#[cfg(madsim)]
#[test]
fn a_call_times_out_as_a_value_and_the_late_reply_is_dropped() {
    check(|p| async move {
        let s = start(&p, InitMode::Ok).await.unwrap();
        let t0 = otpsim::rt::now();
        assert_eq!(s.call(&p, Req::Slow).await, Err(CallError::Timeout));
        // madsim adds tens of nanoseconds per poll; the timeout itself is exact to the µs
        assert_eq!(
            (otpsim::rt::now() - t0).as_micros(),
            server::DEFAULT_CALL_TIMEOUT.as_micros()
        );
        // the server answers 5 s later; the reply must not land in our mailbox
        p.sleep(otpsim::rt::Duration::from_secs(6)).await;
        assert_eq!(s.call(&p, Req::Get).await, Ok(0));
        assert_eq!(p.mailbox_len(), 0, "the late reply was dropped");
    });
}
