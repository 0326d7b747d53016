//! OTP's loosely typed configuration (atoms, integers, tuples, as a scenario or a config file
//! gives them) turned into the runtime's typed flags and specs, with OTP's validation errors
//! in OTP's order. The runtime itself takes types, which rule most of these errors out; a
//! scenario of the oracle needs the errors themselves (docs/behaviours.md §A).

use crate::supervisor::dynamic::DynamicOptions;
use crate::supervisor::{
    AutoShutdown, ChildId, ChildSpec, ChildType, Flags, FlagsError, Restart, Shutdown, SpecError,
    Start, Strategy,
};
use crate::term::Term;

/// Flags from loosely typed values (a configuration file, an oracle scenario), checked in
/// OTP's order (`check_flags/1`); a missing value gets OTP's default.
///
/// ```
/// use otpsim::sim::conform::terms;
/// use otpsim::supervisor::FlagsError;
/// use otpsim::term::Term;
/// let err = terms::flags(None, Some(&Term::atom("infinity")), Some(&Term::Int(0)), None);
/// assert_eq!(err, Err(FlagsError::InvalidIntensity(Term::atom("infinity"))));
/// assert_eq!(err.unwrap_err().to_term().to_string(), "{invalid_intensity,infinity}");
/// ```
pub fn flags(
    strategy: Option<&Term>,
    intensity: Option<&Term>,
    period: Option<&Term>,
    auto_shutdown: Option<&Term>,
) -> Result<Flags, FlagsError> {
    let mut flags = Flags::default();
    if let Some(t) = strategy {
        flags.strategy = Strategy::parse(t).map_err(|e| FlagsError::InvalidStrategy(e.0))?;
    }
    if let Some(t) = intensity {
        flags.intensity = match t {
            Term::Int(i) if *i >= 0 => *i as u64,
            other => return Err(FlagsError::InvalidIntensity(other.clone())),
        };
    }
    if let Some(t) = period {
        flags.period = match t {
            Term::Int(i) if *i > 0 => *i as u64,
            other => return Err(FlagsError::InvalidPeriod(other.clone())),
        };
    }
    if let Some(t) = auto_shutdown {
        flags.auto_shutdown =
            AutoShutdown::parse(t).map_err(|e| FlagsError::InvalidAutoShutdown(e.0))?;
    }
    Ok(flags)
}

/// A child spec from loosely typed values, checked in OTP's order (`check_childspec/2`:
/// restart, significant, type, shutdown); a missing value gets OTP's default.
///
/// ```
/// use otpsim::sim::conform::terms;
/// use otpsim::supervisor::{AutoShutdown, Start, SpecError, Started};
/// use otpsim::term::Term;
/// let start = Start::new(|_p| Box::pin(async { Ok(Started::Ignore) }));
/// let fields = [Some(Term::atom("permanent")), Some(Term::atom("true")), None, None];
/// let err = terms::child_spec("a", start, fields.each_ref().map(Option::as_ref), AutoShutdown::AnySignificant);
/// assert_eq!(err.unwrap_err(), SpecError::SignificantPermanent);
/// ```
pub fn child_spec(
    id: impl Into<ChildId>,
    start: Start,
    [restart, significant, child_type, shutdown]: [Option<&Term>; 4],
    auto_shutdown: AutoShutdown,
) -> Result<ChildSpec, SpecError> {
    let mut spec = ChildSpec::worker(id, start);
    if let Some(t) = restart {
        spec.restart = Restart::parse(t).map_err(|e| SpecError::InvalidRestartType(e.0))?;
    }
    spec.significant = match significant {
        None => false,
        Some(t) if t.is_atom("true") => true,
        Some(t) if t.is_atom("false") => false,
        Some(other) => return Err(SpecError::InvalidSignificant(other.clone())),
    };
    spec.check(auto_shutdown)?;
    if let Some(t) = child_type {
        spec.child_type = ChildType::parse(t).map_err(|e| SpecError::InvalidChildType(e.0))?;
        if spec.child_type == ChildType::Supervisor {
            spec.shutdown = Shutdown::Infinity;
        }
    }
    if let Some(t) = shutdown {
        spec.shutdown = Shutdown::parse(t).map_err(|e| SpecError::InvalidShutdown(e.0))?;
    }
    Ok(spec)
}

/// Options from loosely typed values, checked in Elixir's order (intensity, period,
/// max_children); a missing value gets the default.
pub fn dynamic_options(
    max_children: Option<&Term>,
    max_restarts: Option<&Term>,
    max_seconds: Option<&Term>,
) -> Result<DynamicOptions, FlagsError> {
    let mut o = DynamicOptions::default();
    if let Some(t) = max_restarts {
        o.max_restarts = match t {
            Term::Int(i) if *i >= 0 => *i as u64,
            other => return Err(FlagsError::InvalidIntensity(other.clone())),
        };
    }
    if let Some(t) = max_seconds {
        o.max_seconds = match t {
            Term::Int(i) if *i > 0 => *i as u64,
            other => return Err(FlagsError::InvalidPeriod(other.clone())),
        };
    }
    if let Some(t) = max_children {
        o.max_children = match t {
            Term::Atom(a) if a == "infinity" => None,
            Term::Int(i) if *i >= 0 => Some(*i as usize),
            other => return Err(FlagsError::InvalidMaxChildren(other.clone())),
        };
    }
    Ok(o)
}
