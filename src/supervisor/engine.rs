//! The supervisor process: a [`GenServer`] that follows OTP's `supervisor.erl` step by step
//! (docs/behaviours.md §B-§I). The public face is in `mod.rs`.
//!
//! It follows `supervisor.erl` function by function, in one file as OTP's is (hence its length).

use super::children::{Child, Children, Key, Slot};
use super::intensity::RestartWindow;
use super::shutdown::{shutdown, shutdown_accepted, stop_in_parallel, Queued};
use super::spec::{
    check_childspecs, AutoShutdown, ChildSpec, ChildType, Flags, InitError, Restart, SpecError,
    StartResult, Started, Strategy,
};
use super::{ChildError, ChildInfo, ChildRef, ChildState, Counts, SupervisorInit};
use crate::process::{ExitReason, Msg, Process};
use crate::server::{CallReply, From, GenServer, Init, Next, ServerRef};
use crate::term::{Pid, Term};
use crate::trace::{Offender, ReportContext, SupEvent, SupervisorKind};
use std::sync::Arc;

/// A supervisor's `init`: called in the new supervisor process, again on every restart.
pub(super) type InitFn = dyn Fn(&Process) -> SupervisorInit + Send + Sync;

/// Requests of the supervisor API.
pub(super) enum Call {
    StartChild(ChildSpec),
    StartChildArgs(Vec<Term>),
    Terminate(ChildRef),
    Restart(String),
    Delete(String),
    Which,
    Count,
    GetSpec(ChildRef),
}

/// Replies to [`Call`]s, one variant per request kind.
pub(super) enum Reply {
    Started(Result<Started, ChildError>),
    Done(Result<(), ChildError>),
    Which(Vec<ChildInfo>),
    Count(Counts),
    Spec(Result<ChildSpec, ChildError>),
}

/// `{try_again_restart, Id}`: the retry of a failed restart, sent to itself.
pub(super) struct TryAgain(Key);

pub(super) struct Supervisor {
    flags: Flags,
    children: Children,
    /// The template of a simple_one_for_one supervisor.
    template: Option<ChildSpec>,
    window: RestartWindow,
}

fn stop(reason: &InitError) -> Init<Supervisor> {
    Init::Stop(ExitReason::from_term(reason.to_term()))
}

impl GenServer for Supervisor {
    type Arg = Arc<InitFn>;
    type Call = Call;
    type Reply = Reply;
    type Cast = TryAgain;
    type Cont = ();

    async fn init(init: Arc<InitFn>, p: &Process) -> Init<Self> {
        p.trap_exit(true); // docs/behaviours.md item 8: before the callback's init
        super::label_by_name(p);
        let spec = match init(p) {
            SupervisorInit::Ok(spec) => spec,
            SupervisorInit::Ignore => return Init::Ignore,
            SupervisorInit::Invalid(e) => return stop(&e),
        };
        let flags = spec.flags;
        if let Err(e) = flags.check() {
            return stop(&InitError::SupervisorData(e));
        }
        if let Err(e) = check_childspecs(&spec.children, flags.auto_shutdown) {
            return stop(&InitError::StartSpec(e));
        }
        super::record(p, || SupEvent::Init {
            kind: SupervisorKind::Supervisor(flags.strategy),
            intensity: flags.intensity,
            period: flags.period,
        });
        let dynamic = flags.strategy == Strategy::SimpleOneForOne;
        let mut sup = Supervisor {
            flags,
            children: Children::new(dynamic),
            template: None,
            window: RestartWindow::new(flags.intensity, flags.period),
        };
        if dynamic {
            let n = spec.children.len();
            match <[ChildSpec; 1]>::try_from(spec.children) {
                Ok([template]) => sup.template = Some(template),
                Err(_) => return stop(&InitError::BadStartSpec(n)),
            }
            return Init::Ok(sup);
        }
        for spec in spec.children {
            sup.children.push(Child {
                spec,
                args: Vec::new(),
                slot: Slot::Undefined,
            });
        }
        // docs/behaviours.md items 9-13.
        match sup.start_children(sup.children.keys(), p).await {
            Ok(()) => Init::Ok(sup),
            Err((_, id, reason)) => {
                sup.terminate_children(sup.children.keys(), p).await;
                let failed =
                    Term::tuple([Term::atom("failed_to_start_child"), Term::atom(id), reason]);
                Init::Stop(ExitReason::ShutdownWith(failed))
            }
        }
    }

    async fn handle_call(
        &mut self,
        call: Call,
        _from: From<Reply>,
        p: &Process,
    ) -> CallReply<Self> {
        let reply = match call {
            Call::StartChild(spec) => Reply::Started(self.start_child(spec, p).await),
            Call::StartChildArgs(args) => Reply::Started(self.start_child_args(args, p).await),
            Call::Terminate(child) => Reply::Done(self.terminate_child(child, p).await),
            Call::Restart(id) => Reply::Started(self.restart_child(&id, p).await),
            Call::Delete(id) => Reply::Done(self.delete_child(&id)),
            Call::Which => Reply::Which(self.which_children()),
            Call::Count => Reply::Count(self.count_children(p)),
            Call::GetSpec(child) => Reply::Spec(self.get_childspec(child, p)),
        };
        CallReply::Reply(reply)
    }

    async fn handle_cast(&mut self, TryAgain(key): TryAgain, p: &Process) -> Next<Self> {
        // docs/behaviours.md item 38: retry only if the child is still waiting for it (a terminate_child in
        // between drops the retry, item 40).
        match self.children.get(key) {
            Some(child) if matches!(child.slot, Slot::Restarting(_)) => self.restart(key, p).await,
            _ => Next::Continue,
        }
    }

    async fn handle_info(&mut self, msg: Msg, p: &Process) -> Next<Self> {
        match msg {
            // docs/behaviours.md item 19: an EXIT from anything but a current child is ignored.
            Msg::Exit { from, reason } => match self.children.key_of_running(from) {
                Some(key) => {
                    super::record(p, || SupEvent::Exited {
                        pid: from,
                        reason: reason.to_term(),
                    });
                    self.do_restart(key, reason, p).await
                }
                None => Next::Continue,
            },
            _ => Next::Continue,
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, p: &Process) {
        super::record(p, || SupEvent::Stopping);
        if self.template.is_some() {
            self.terminate_dynamic_children(p).await;
        } else {
            self.terminate_children(self.children.keys(), p).await;
        }
    }
}

impl Supervisor {
    fn simple(&self) -> bool {
        self.template.is_some()
    }

    // ---- starting -------------------------------------------------------------------------

    /// Names a new child `<supervisor path>/<id>` in the trace (once this supervisor has a
    /// path).
    fn label(&self, pid: Pid, spec: &ChildSpec, p: &Process) {
        let node = p.node();
        if !node.tracing() || self.simple() || node.path_of(pid).is_some() {
            return;
        }
        let supervisor = spec.child_type == ChildType::Supervisor;
        node.label_child(p.pid(), pid, &spec.id, supervisor);
    }

    fn report(&self, context: ReportContext, key: Key, reason: &Term, p: &Process) {
        let Some(child) = self.children.get(key) else {
            return;
        };
        let offender = || Offender::Child {
            pid: child.last_pid(),
            id: (!self.simple()).then(|| child.spec.id.to_string()),
        };
        super::report(p, context, offender, reason);
    }

    /// Starts the child at `key` and records the outcome in its slot; an `ignore` of a
    /// temporary child removes it. Returns the start function's result.
    async fn start_at(&mut self, key: Key, p: &Process) -> StartResult {
        let Some(child) = self.children.get(key) else {
            // Keys come from the list itself: a start of a child that is not there is a bug
            // of this module. (Released builds treat it as a start that did nothing.)
            internal_check!(false, "start_at: no child {key}");
            return Ok(Started::Ignore);
        };
        let (start, restart) = (child.spec.start.clone(), child.spec.restart);
        let result = start.run(p, child.args.clone()).await;
        if let (Ok(Started::Ignore), Some(child)) = (&result, self.children.get(key)) {
            let id = child.spec.id.shared();
            super::record(p, || SupEvent::Ignored {
                id,
                restart,
                order: key,
            });
        }
        match &result {
            Ok(Started::Ignore) if restart == Restart::Temporary || self.simple() => {
                self.children.remove(key);
            }
            Ok(Started::Ignore) => self.children.set(key, Slot::Undefined),
            Ok(started) => {
                let pid = started.pid().expect("a started child has a pid");
                let key = if self.simple() {
                    self.children.requeue(key)
                } else {
                    key
                };
                self.children.set(key, Slot::Running(pid));
                if let Some(child) = self.children.get(key) {
                    self.label(pid, &child.spec, p);
                    super::record(p, || super::started_event(pid, &child.spec, key));
                }
            }
            Err(_) => {}
        }
        result
    }

    /// Starts the given children in order (OTP's `start_children`); stops at the first error,
    /// which is reported (`start_error`) and returned with the child's key and id.
    async fn start_children(
        &mut self,
        keys: Vec<Key>,
        p: &Process,
    ) -> Result<(), (Key, String, Term)> {
        for key in keys {
            if let Err(reason) = self.start_at(key, p).await {
                self.report(ReportContext::StartError, key, &reason, p);
                let id = self
                    .children
                    .get(key)
                    .map(|c| c.spec.id.clone())
                    .unwrap_or_default();
                return Err((key, id.to_string(), reason));
            }
        }
        Ok(())
    }

    // ---- restarting -----------------------------------------------------------------------

    /// A child exited by itself: OTP's `do_restart` (docs/behaviours.md §C).
    async fn do_restart(&mut self, key: Key, reason: ExitReason, p: &Process) -> Next<Self> {
        let Some(child) = self.children.get(key) else {
            return Next::Continue;
        };
        let restart = child.spec.restart;
        let reason_term = reason.to_term();
        let normal = reason.is_normal() || reason.is_shutdown();
        match restart {
            Restart::Permanent => {
                self.report(ReportContext::ChildTerminated, key, &reason_term, p);
                self.restart(key, p).await
            }
            _ if normal => self.exited_for_good(key),
            Restart::Transient => {
                self.report(ReportContext::ChildTerminated, key, &reason_term, p);
                self.restart(key, p).await
            }
            Restart::Temporary => {
                self.report(ReportContext::ChildTerminated, key, &reason_term, p);
                self.exited_for_good(key)
            }
        }
    }

    /// A child that is not restarted: forget it (temporary, dynamic) or keep its spec, then
    /// consider auto-shutdown (docs/behaviours.md §I).
    fn exited_for_good(&mut self, key: Key) -> Next<Self> {
        let significant = self.children.get(key).is_some_and(|c| c.spec.significant);
        self.forget(key);
        if !significant {
            return Next::Continue;
        }
        let shut = match self.flags.auto_shutdown {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self
                .children
                .iter()
                .any(|(_, c)| c.spec.significant && c.slot != Slot::Undefined),
        };
        if shut {
            Next::Stop(ExitReason::Shutdown)
        } else {
            Next::Continue
        }
    }

    /// OTP's `del_child`: temporary and dynamic children are removed, others lose their pid.
    fn forget(&mut self, key: Key) {
        match self.children.get(key) {
            Some(c) if c.spec.restart == Restart::Temporary || self.simple() => {
                self.children.remove(key);
            }
            Some(_) => self.children.set(key, Slot::Undefined),
            None => {}
        }
    }

    /// OTP's `restart/2`: count the restart (docs/behaviours.md §D), then restart by strategy (docs/behaviours.md §E-F).
    async fn restart(&mut self, key: Key, p: &Process) -> Next<Self> {
        if let Some(child) = self.children.get(key) {
            super::record(p, || SupEvent::Restart {
                pid: child.last_pid(),
                id: child.spec.id.shared(),
            });
        }
        if !self.window.add(super::whole_seconds(p)) {
            let reason = Term::atom("reached_max_restart_intensity");
            self.report(ReportContext::Shutdown, key, &reason, p);
            self.forget(key);
            return Next::Stop(ExitReason::Shutdown);
        }
        let retry = match self.flags.strategy {
            Strategy::OneForOne | Strategy::SimpleOneForOne => self.restart_one(key, p).await,
            Strategy::RestForOne => {
                let keys = self.children.keys_from(key);
                self.restart_group(key, keys, p).await
            }
            Strategy::OneForAll => {
                let keys = self.children.keys();
                self.restart_group(key, keys, p).await
            }
        };
        if let Some(retry) = retry {
            ServerRef::<Supervisor>::from_pid(p.pid()).cast(p, TryAgain(retry));
        }
        Next::Continue
    }

    /// Restarts one child; on failure marks it restarting and asks for a retry.
    async fn restart_one(&mut self, key: Key, p: &Process) -> Option<Key> {
        let old = self.children.get(key)?.last_pid();
        match self.start_at(key, p).await {
            Ok(_) => None,
            Err(reason) => {
                self.children.set(key, Slot::Restarting(old));
                self.report(ReportContext::StartError, key, &reason, p);
                Some(key)
            }
        }
    }

    /// one_for_all / rest_for_one: terminate `keys` in reverse order, start them in order
    /// (OTP's `restart_multiple_children`). On a failed start, that child is marked restarting
    /// and its key returned for the retry.
    async fn restart_group(&mut self, exited: Key, mut keys: Vec<Key>, p: &Process) -> Option<Key> {
        let old = self.children.get(exited).and_then(Child::last_pid);
        self.children.set(exited, Slot::Undefined);
        self.terminate_children(keys.clone(), p).await;
        // Temporary children were dropped by the terminate step (docs/behaviours.md item 32).
        keys.retain(|k| self.children.get(*k).is_some());
        match self.start_children(keys, p).await {
            Ok(()) => None,
            Err((failed, _, _)) => {
                let slot = if failed == exited {
                    Slot::Restarting(old)
                } else {
                    Slot::Restarting(None)
                };
                self.children.set(failed, slot);
                Some(failed)
            }
        }
    }

    // ---- stopping -------------------------------------------------------------------------

    /// Terminates the given children one by one in reverse order (OTP's
    /// `terminate_children`): temporary ones are removed, the others lose their pid.
    async fn terminate_children(&mut self, keys: Vec<Key>, p: &Process) {
        for key in keys.into_iter().rev() {
            self.do_terminate(key, p).await;
            match self.children.get(key) {
                Some(c) if c.spec.restart == Restart::Temporary => {
                    self.children.remove(key);
                }
                Some(_) => self.children.set(key, Slot::Undefined),
                None => {}
            }
        }
    }

    /// Shuts one running child down and reports an unexpected reason (OTP's `do_terminate`).
    async fn do_terminate(&mut self, key: Key, p: &Process) {
        let Some(child) = self.children.get(key) else {
            return;
        };
        let Slot::Running(pid) = child.slot else {
            return;
        };
        let spec = child.spec.clone();
        let reason = shutdown(pid, spec.shutdown, p).await;
        if !shutdown_accepted(&reason, spec.shutdown, spec.restart) {
            self.report(ReportContext::ShutdownError, key, &reason.to_term(), p);
        }
    }

    /// simple_one_for_one: all children at once, one timer (docs/behaviours.md item 52); unexpected
    /// reasons are reported once each, with their number of children.
    async fn terminate_dynamic_children(&mut self, p: &Process) {
        let Some(template) = self.template.clone() else {
            return;
        };
        let running = self.children.iter().filter_map(|(_, c)| match c.slot {
            Slot::Running(pid) => Some((pid, template.shutdown, template.restart)),
            _ => None,
        });
        let stopped = stop_in_parallel(running.collect(), Queued::Signalled, shutdown_accepted, p);
        // OTP stacks the errors by reason in a map and reports each reason once, with its
        // number of children, in the map's (Erlang's term) order.
        let mut errors: Vec<(Term, u64)> = Vec::new();
        for (_, reason) in stopped.await {
            let reason = reason.to_term();
            match errors.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, count)) => *count += 1,
                None => errors.push((reason, 1)),
            }
        }
        errors.sort_by(|(a, _), (b, _)| a.erlang_cmp(b));
        for (reason, count) in errors {
            super::report(
                p,
                ReportContext::ShutdownError,
                || Offender::Children(count),
                &reason,
            );
        }
        for key in self.children.keys() {
            self.children.remove(key);
        }
    }

    // ---- the API (docs/behaviours.md §H) ------------------------------------------------------------------

    async fn start_child(&mut self, spec: ChildSpec, p: &Process) -> Result<Started, ChildError> {
        if self.simple() {
            return Err(ChildError::SimpleOneForOne);
        }
        spec.check(self.flags.auto_shutdown)
            .map_err(ChildError::Invalid)?;
        if let Some(key) = self.children.key_of_id(&spec.id) {
            return Err(match self.children.get(key).map(|c| c.slot) {
                Some(Slot::Running(pid)) => ChildError::AlreadyStarted(pid),
                _ => ChildError::AlreadyPresent,
            });
        }
        let record = spec.record_term();
        let key = self.children.push(Child {
            spec,
            args: Vec::new(),
            slot: Slot::Undefined,
        });
        match self.start_at(key, p).await {
            Ok(started) => Ok(started),
            Err(reason) => {
                self.children.remove(key);
                Err(ChildError::StartFailed {
                    reason,
                    child: Some(record),
                })
            }
        }
    }

    async fn start_child_args(
        &mut self,
        args: Vec<Term>,
        p: &Process,
    ) -> Result<Started, ChildError> {
        let Some(template) = self.template.clone() else {
            return Err(ChildError::Invalid(SpecError::InvalidChildSpec(
                Term::list(args),
            )));
        };
        let key = self.children.push(Child {
            spec: template,
            args,
            slot: Slot::Undefined,
        });
        let result = self.start_at(key, p).await;
        if result.is_err() {
            self.children.remove(key);
        }
        result.map_err(|reason| ChildError::StartFailed {
            reason,
            child: None,
        })
    }

    async fn terminate_child(&mut self, child: ChildRef, p: &Process) -> Result<(), ChildError> {
        let key = match (&child, self.simple()) {
            (ChildRef::Id(_), true) => return Err(ChildError::SimpleOneForOne),
            (ChildRef::Pid(pid), true) => match self.children.key_of_pid(*pid) {
                Some(key) => key,
                // docs/behaviours.md item 61: a dead pid is fine, a live stranger is not found.
                None if p.node().is_alive(*pid) => return Err(ChildError::NotFound),
                None => return Ok(()),
            },
            (ChildRef::Id(id), false) => self.children.key_of_id(id).ok_or(ChildError::NotFound)?,
            (ChildRef::Pid(_), false) => return Err(ChildError::NotFound),
        };
        if let Some(Slot::Restarting(old)) = self.children.get(key).map(|c| c.slot) {
            let id = self.children.get(key).map(|c| c.spec.id.clone());
            let id = id.unwrap_or_default();
            super::record(p, || SupEvent::RetryDropped {
                pid: old,
                id: id.shared(),
            });
        }
        self.do_terminate(key, p).await;
        self.forget(key);
        Ok(())
    }

    async fn restart_child(&mut self, id: &str, p: &Process) -> Result<Started, ChildError> {
        if self.simple() {
            return Err(ChildError::SimpleOneForOne);
        }
        let key = self.children.key_of_id(id).ok_or(ChildError::NotFound)?;
        match self.children.get(key).map(|c| c.slot) {
            Some(Slot::Undefined) => {}
            Some(Slot::Restarting(_)) => return Err(ChildError::Restarting),
            _ => return Err(ChildError::Running),
        }
        self.start_at(key, p)
            .await
            .map_err(|reason| ChildError::StartFailed {
                reason,
                child: None,
            })
    }

    fn delete_child(&mut self, id: &str) -> Result<(), ChildError> {
        if self.simple() {
            return Err(ChildError::SimpleOneForOne);
        }
        let key = self.children.key_of_id(id).ok_or(ChildError::NotFound)?;
        match self.children.get(key).map(|c| c.slot) {
            Some(Slot::Undefined) => {
                self.children.remove(key);
                Ok(())
            }
            Some(Slot::Restarting(_)) => Err(ChildError::Restarting),
            _ => Err(ChildError::Running),
        }
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        let info = |c: &Child| ChildInfo {
            id: (!self.simple()).then(|| c.spec.id.clone()),
            state: match c.slot {
                Slot::Running(pid) => ChildState::Running(pid),
                Slot::Undefined => ChildState::Undefined,
                Slot::Restarting(_) => ChildState::Restarting,
            },
            child_type: c.spec.child_type,
            modules: c.spec.modules.clone(),
        };
        if self.simple() {
            self.children.iter().map(|(_, c)| info(c)).collect()
        } else {
            self.children.iter().rev().map(|(_, c)| info(c)).collect()
        }
    }

    fn count_children(&self, p: &Process) -> Counts {
        let mut counts = Counts::default();
        for (_, c) in self.children.iter() {
            counts.specs += 1;
            match c.slot {
                Slot::Running(pid) if !self.simple() && !p.node().is_alive(pid) => {}
                Slot::Running(_) => counts.active += 1,
                _ => {}
            }
            match c.spec.child_type {
                ChildType::Worker => counts.workers += 1,
                ChildType::Supervisor => counts.supervisors += 1,
            }
        }
        if self.simple() {
            counts.specs = 1; // docs/behaviours.md item 61: the template
        }
        counts
    }

    /// docs/behaviours.md item 59. A simple_one_for_one supervisor answers with its template for a child's
    /// pid, for a dead pid whoever it was, and for the template's own id (OTP's
    /// `find_child/2`; probes/get_childspec_probe).
    fn get_childspec(&self, child: ChildRef, p: &Process) -> Result<ChildSpec, ChildError> {
        if let Some(template) = &self.template {
            let found = match child {
                ChildRef::Pid(pid) => {
                    self.children.key_of_pid(pid).is_some() || !p.node().is_alive(pid)
                }
                ChildRef::Id(id) => template.id == id.as_str(),
            };
            return found.then(|| template.clone()).ok_or(ChildError::NotFound);
        }
        let key = match child {
            ChildRef::Id(id) => self.children.key_of_id(&id),
            ChildRef::Pid(_) => None,
        };
        key.and_then(|k| self.children.get(k))
            .map(|c| c.spec.clone())
            .ok_or(ChildError::NotFound)
    }
}
