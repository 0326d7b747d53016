//! Exit reasons, with Erlang's special cases as variants.

use crate::term::Term;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a process exited, or the reason an exit signal carries.
///
/// The special reasons of Erlang are variants; anything else is [`ExitReason::Other`].
/// [`ExitReason::from_term`] normalises, so `Term::atom("normal")` always becomes `Normal`.
///
/// ```
/// use otpsim::{ExitReason, term::Term};
/// let r = ExitReason::from_term(Term::tuple([Term::atom("shutdown"), Term::atom("bye")]));
/// assert_eq!(r, ExitReason::ShutdownWith(Term::atom("bye")));
/// assert_eq!(r.to_string(), "{shutdown,bye}");
/// assert!(r.is_shutdown());
/// assert_eq!(ExitReason::error("boom").to_string(), "boom");
/// assert_eq!(ExitReason::Panic("oops".into()).to_string(), "{panic,\"oops\"}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExitReason {
    /// `normal`: the process finished its work.
    Normal,
    /// `shutdown`: asked to stop by its supervisor or parent.
    Shutdown,
    /// `{shutdown, Term}`: a shutdown with extra information.
    ShutdownWith(Term),
    /// `kill`: sent with [`exit`](crate::Process::exit) it cannot be trapped and the target
    /// dies with `killed`.
    Kill,
    /// `killed`: the reason of a process that was sent `kill`.
    Killed,
    /// `noproc`: the process did not exist (monitor or link of a dead pid).
    Noproc,
    /// `{panic, Message}`: the process's code panicked.
    Panic(String),
    /// Any other reason, e.g. `boom` or `{bad_return, ...}`.
    Other(Term),
}

impl ExitReason {
    /// `noconnection`: the connection to the other process's node went down (a link or
    /// monitor across nodes fires with it).
    ///
    /// ```
    /// use otpsim::ExitReason;
    /// assert_eq!(ExitReason::noconnection().to_string(), "noconnection");
    /// ```
    pub fn noconnection() -> ExitReason {
        ExitReason::Other(Term::atom("noconnection"))
    }

    /// An error reason from a term (`"boom"` becomes the atom `boom`), normalised.
    pub fn error(term: impl Into<Term>) -> ExitReason {
        ExitReason::from_term(term.into())
    }

    /// The reason a term stands for; Erlang's special atoms and tuples become their variants.
    pub fn from_term(term: Term) -> ExitReason {
        match term {
            Term::Atom(a) => match &*a {
                "normal" => ExitReason::Normal,
                "shutdown" => ExitReason::Shutdown,
                "kill" => ExitReason::Kill,
                "killed" => ExitReason::Killed,
                "noproc" => ExitReason::Noproc,
                _ => ExitReason::Other(Term::Atom(a)),
            },
            Term::Tuple(mut items) if items.len() == 2 && items[0].is_atom("shutdown") => {
                ExitReason::ShutdownWith(items.pop().expect("two elements"))
            }
            Term::Tuple(items)
                if items.len() == 2
                    && items[0].is_atom("panic")
                    && matches!(items[1], Term::Str(_)) =>
            {
                match items.into_iter().nth(1) {
                    Some(Term::Str(msg)) => ExitReason::Panic(msg),
                    _ => unreachable!("checked above"),
                }
            }
            other => ExitReason::Other(other),
        }
    }

    /// The reason as a term, e.g. `{shutdown,bye}`.
    pub fn to_term(&self) -> Term {
        match self {
            ExitReason::ShutdownWith(t) => Term::tuple([Term::atom("shutdown"), t.clone()]),
            ExitReason::Panic(msg) => Term::tuple([Term::atom("panic"), Term::Str(msg.clone())]),
            ExitReason::Other(t) => t.clone(),
            atom => Term::atom(atom.plain_atom().unwrap_or_default()),
        }
    }

    /// The atom of a reason that is one (`normal`, `shutdown`, `kill`, `killed`, `noproc`).
    fn plain_atom(&self) -> Option<&'static str> {
        match self {
            ExitReason::Normal => Some("normal"),
            ExitReason::Shutdown => Some("shutdown"),
            ExitReason::Kill => Some("kill"),
            ExitReason::Killed => Some("killed"),
            ExitReason::Noproc => Some("noproc"),
            ExitReason::ShutdownWith(_) | ExitReason::Panic(_) | ExitReason::Other(_) => None,
        }
    }

    /// `normal`.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }

    /// `shutdown` or `{shutdown, _}`.
    pub fn is_shutdown(&self) -> bool {
        matches!(self, ExitReason::Shutdown | ExitReason::ShutdownWith(_))
    }
}

/// The canonical form of [`to_term`](ExitReason::to_term), written without building the term.
impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::ShutdownWith(t) => write!(f, "{{shutdown,{t}}}"),
            ExitReason::Panic(msg) => write!(f, "{{panic,{msg:?}}}"),
            ExitReason::Other(t) => t.fmt(f),
            atom => f.write_str(atom.plain_atom().unwrap_or_default()),
        }
    }
}

/// What a process body may return: its exit reason.
///
/// `()` and `Ok(())` mean `normal`; `Err(reason)` and a bare [`ExitReason`] are that reason.
pub trait IntoExitReason {
    /// The exit reason this value stands for.
    fn into_exit_reason(self) -> ExitReason;
}

impl IntoExitReason for () {
    fn into_exit_reason(self) -> ExitReason {
        ExitReason::Normal
    }
}

impl IntoExitReason for ExitReason {
    fn into_exit_reason(self) -> ExitReason {
        self
    }
}

impl IntoExitReason for Result<(), ExitReason> {
    fn into_exit_reason(self) -> ExitReason {
        self.err().unwrap_or(ExitReason::Normal)
    }
}

/// The message of a panic payload, as `std` prints it.
/// A broken internal invariant of otpsim (see `internal_check!` in `lib.rs`): a bug of the
/// runtime. It is not a process's exit reason: it goes through every process's panic
/// handling and fails the run.
#[derive(Debug)]
pub struct InternalError(pub String);

/// The message of a process's panic. An [`InternalError`] is not one: it is raised again,
/// out of the process.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if payload.is::<InternalError>() {
        std::panic::resume_unwind(payload);
    }
    let payload = &*payload;
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons() -> Vec<ExitReason> {
        vec![
            ExitReason::Normal,
            ExitReason::Shutdown,
            ExitReason::ShutdownWith(Term::Int(3)),
            ExitReason::Kill,
            ExitReason::Killed,
            ExitReason::Noproc,
            ExitReason::Panic("x".into()),
            ExitReason::error("boom"),
            ExitReason::Other(Term::tuple([Term::atom("panic"), Term::Int(1)])),
            ExitReason::Panic("say \"hi\"\n".into()),
            ExitReason::ShutdownWith(Term::tuple([Term::atom("Odd atom"), Term::Str("s".into())])),
            ExitReason::error("it's"),
        ]
    }

    #[test]
    fn terms_round_trip_through_reasons() {
        for r in reasons() {
            assert_eq!(ExitReason::from_term(r.to_term()), r);
        }
    }

    /// A reason prints as its term does (traces and notes hold that form).
    #[test]
    fn a_reason_prints_as_its_term() {
        for r in reasons() {
            assert_eq!(r.to_string(), r.to_term().to_string(), "{r:?}");
        }
    }
}
