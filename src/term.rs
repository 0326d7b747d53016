//! Erlang-like values: process ids, references and the [`Term`]s that exit reasons and trace
//! lines are made of.
//!
//! Terms print in the canonical form of the OTP oracle (`docs/oracle.md`):
//! atoms bare (quoted when needed), tuples `{a,b}`, lists `[a,b]`, strings in double quotes,
//! and pids as `<path>` when a name is known for them.
//!
//! ```
//! use otpsim::term::Term;
//! let t = Term::tuple([Term::atom("shutdown"), Term::atom("bye")]);
//! assert_eq!(t.to_string(), "{shutdown,bye}");
//! assert_eq!(Term::atom("Hello world").to_string(), "'Hello world'");
//! ```

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// Bits of a pid's or ref's serial (the low bits); above them, 12 bits of creation, then 12 of
/// node index. Node 0 of creation 0 has the plain serial: a single-node run's pids, traces and
/// pinned hashes are what they were before nodes existed.
const SERIAL_BITS: u32 = 40;
const CREATION_BITS: u32 = 12;
const SERIAL_MASK: u64 = (1 << SERIAL_BITS) - 1;
const CREATION_MASK: u64 = (1 << CREATION_BITS) - 1;

/// The largest node index and creation a pid can carry.
pub const MAX_NODE: u16 = (1 << 12) - 1;

/// `node | creation | serial`, packed.
fn pack(node: u16, creation: u16, serial: u64) -> u64 {
    assert!(
        node <= MAX_NODE && creation <= MAX_NODE,
        "node {node} creation {creation}: 12 bits each"
    );
    assert!(serial <= SERIAL_MASK, "serial {serial}: 40 bits");
    (u64::from(node) << (SERIAL_BITS + CREATION_BITS))
        | (u64::from(creation) << SERIAL_BITS)
        | serial
}

/// Which node of a cluster and which incarnation of it a packed id belongs to.
fn node_of(raw: u64) -> u16 {
    (raw >> (SERIAL_BITS + CREATION_BITS)) as u16
}

fn creation_of(raw: u64) -> u16 {
    ((raw >> SERIAL_BITS) & CREATION_MASK) as u16
}

/// A process identifier: the node it lives on, that node's incarnation (its creation: a
/// restarted node hands out pids that differ from its earlier ones) and a serial from the
/// node's counter, so a simulated run hands out the same pids every time it is replayed.
///
/// A pid of node 0, creation 0 prints `<0.N>`; of another node `<k.N>`, and once a node has
/// restarted `<k.N.c>`.
///
/// ```
/// use otpsim::Pid;
/// let local = Pid::from_raw(7);
/// assert_eq!((local.node(), local.creation(), local.serial()), (0, 0, 7));
/// assert_eq!(local.to_string(), "<0.7>");
/// assert_eq!(Pid::new(0, 0, 7), local);
/// assert_eq!(Pid::new(2, 0, 7).to_string(), "<2.7>");
/// let restarted = Pid::new(2, 1, 7);
/// assert_eq!(restarted.to_string(), "<2.7.1>");
/// assert_ne!(restarted, Pid::new(2, 0, 7)); // an older incarnation's pid is another pid
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pid(pub(crate) u64);

impl Pid {
    /// The pid of serial `serial` on node `node` in its incarnation `creation`.
    ///
    /// # Panics
    ///
    /// If `node` or `creation` exceeds [`MAX_NODE`] or `serial` 40 bits.
    pub fn new(node: u16, creation: u16, serial: u64) -> Pid {
        Pid(pack(node, creation, serial))
    }

    /// The number behind the pid, node and creation included (unique in a cluster).
    pub fn id(self) -> u64 {
        self.0
    }

    /// The pid whose number (see [`id`](Pid::id)) is `id`. Only a node hands out live pids;
    /// this is for tests, tools and decoded cases.
    pub fn from_raw(id: u64) -> Pid {
        Pid(id)
    }

    /// The index of the node it lives on (0 in a single-node run).
    pub fn node(self) -> u16 {
        node_of(self.0)
    }

    /// The incarnation of its node (0 until the node restarts).
    pub fn creation(self) -> u16 {
        creation_of(self.0)
    }

    /// Its serial on its node's incarnation.
    pub fn serial(self) -> u64 {
        self.0 & SERIAL_MASK
    }
}

/// `<0.N>`, `<k.N>` or `<k.N.c>` (see [`Pid`]).
fn write_id(f: &mut fmt::Formatter<'_>, raw: u64) -> fmt::Result {
    let (node, creation, serial) = (node_of(raw), creation_of(raw), raw & SERIAL_MASK);
    match creation {
        0 => write!(f, "{node}.{serial}"),
        c => write!(f, "{node}.{serial}.{c}"),
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 <= SERIAL_MASK {
            // Node 0, creation 0: the common case, one number (traces print many pids).
            return write!(f, "<0.{}>", self.0);
        }
        f.write_str("<")?;
        write_id(f, self.0)?;
        f.write_str(">")
    }
}

/// A unique reference (`make_ref()`): monitors, call tags and aliases. Packed like a [`Pid`]:
/// refs made on two nodes never collide.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ref(pub(crate) u64);

impl fmt::Debug for Ref {
    /// `#Ref<N>` on node 0 of creation 0, else `#Ref<k.N>` or `#Ref<k.N.c>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 <= SERIAL_MASK {
            return write!(f, "#Ref<{}>", self.0);
        }
        f.write_str("#Ref<")?;
        write_id(f, self.0)?;
        f.write_str(">")
    }
}

/// Whether two packed ids (pids or refs) belong to the same incarnation of the same node.
pub(crate) fn same_incarnation(a: u64, b: u64) -> bool {
    (a ^ b) >> SERIAL_BITS == 0
}

/// The first id a node of index `node` and incarnation `creation` hands out is this base plus 1
/// (pids and refs alike); the base itself names "outside any process" on that node.
pub(crate) fn id_base(node: u16, creation: u16) -> u64 {
    pack(node, creation, 0)
}

/// An Erlang-like value, used for exit reasons and for the canonical trace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Term {
    /// An atom: `boom`, `shutdown`, `undefined`. Atoms written in the code are borrowed, so
    /// making and cloning them costs nothing (a trace holds thousands of `normal`s).
    Atom(Cow<'static, str>),
    /// An integer.
    Int(i64),
    /// A string (printed in double quotes, as an Erlang binary or charlist would be).
    Str(String),
    /// A tuple `{a,b}`.
    Tuple(Vec<Term>),
    /// A list `[a,b]`.
    List(Vec<Term>),
    /// A process id; printed as `<path>` when the printer knows a name for it.
    Pid(Pid),
}

impl Term {
    /// An atom.
    pub fn atom(name: impl Into<Cow<'static, str>>) -> Term {
        Term::Atom(name.into())
    }

    /// A tuple of the given elements.
    pub fn tuple(items: impl IntoIterator<Item = Term>) -> Term {
        Term::Tuple(items.into_iter().collect())
    }

    /// A list of the given elements.
    pub fn list(items: impl IntoIterator<Item = Term>) -> Term {
        Term::List(items.into_iter().collect())
    }

    /// Whether this is the atom `name`.
    pub fn is_atom(&self, name: &str) -> bool {
        matches!(self, Term::Atom(a) if a == name)
    }

    /// Erlang's term order (`number < atom < pid < tuple < list < binary`; tuples by size
    /// first, then element by element; lists element by element), which decides the order
    /// of what OTP keeps in small maps (a supervisor's stacked shutdown errors, by reason).
    /// `Ord` on `Term` is only a total order for Rust's collections; this one is Erlang's.
    ///
    /// ```
    /// use otpsim::term::Term;
    /// use std::cmp::Ordering;
    /// let (boom, normal) = (Term::atom("boom"), Term::atom("normal"));
    /// let tagged = Term::tuple([Term::atom("shutdown"), Term::atom("x")]);
    /// assert_eq!(boom.erlang_cmp(&normal), Ordering::Less);
    /// assert_eq!(normal.erlang_cmp(&tagged), Ordering::Less); // atoms before tuples
    /// assert_eq!(Term::Int(7).erlang_cmp(&boom), Ordering::Less); // numbers first
    /// // Tuples compare by size first: {b} < {a,b,c}.
    /// let small = Term::tuple([Term::atom("b")]);
    /// let large = Term::tuple([Term::atom("a"), Term::atom("b"), Term::atom("c")]);
    /// assert_eq!(small.erlang_cmp(&large), Ordering::Less);
    /// ```
    pub fn erlang_cmp(&self, other: &Term) -> std::cmp::Ordering {
        fn rank(t: &Term) -> u8 {
            match t {
                Term::Int(_) => 0,
                Term::Atom(_) => 1,
                Term::Pid(_) => 2,
                Term::Tuple(_) => 3,
                Term::List(_) => 4,
                Term::Str(_) => 5,
            }
        }
        let elements = |a: &[Term], b: &[Term]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| x.erlang_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| a.len().cmp(&b.len()))
        };
        match (self, other) {
            (Term::Int(a), Term::Int(b)) => a.cmp(b),
            (Term::Atom(a), Term::Atom(b)) => a.cmp(b),
            (Term::Pid(a), Term::Pid(b)) => a.cmp(b),
            (Term::Str(a), Term::Str(b)) => a.cmp(b),
            (Term::Tuple(a), Term::Tuple(b)) => a.len().cmp(&b.len()).then_with(|| elements(a, b)),
            (Term::List(a), Term::List(b)) => elements(a, b),
            (a, b) => rank(a).cmp(&rank(b)),
        }
    }

    /// Writes the canonical form, naming pids through `names` (a pid without a name prints as
    /// `<0.N>`).
    pub fn write_canonical(
        &self,
        out: &mut impl fmt::Write,
        names: &dyn Fn(Pid) -> Option<String>,
    ) -> fmt::Result {
        match self {
            Term::Atom(a) => write_atom(out, a),
            Term::Int(i) => write!(out, "{i}"),
            Term::Str(s) => write!(out, "{s:?}"),
            Term::Pid(p) => match names(*p) {
                Some(name) => write!(out, "<{name}>"),
                None => write!(out, "{p}"),
            },
            // OTP's internal `#child{}` record (in `start_child` errors) prints as the oracle
            // prints it: only its id.
            Term::Tuple(items) if items.len() >= 8 && items[0].is_atom("child") => {
                out.write_str("#child{id=")?;
                items[2].write_canonical(out, names)?;
                out.write_char('}')
            }
            Term::Tuple(items) => write_seq(out, '{', '}', items, names),
            Term::List(items) => write_seq(out, '[', ']', items, names),
        }
    }

    /// The canonical form with pids resolved through `names`.
    pub fn canonical(&self, names: &dyn Fn(Pid) -> Option<String>) -> String {
        let mut s = String::new();
        self.write_canonical(&mut s, names)
            .expect("writing to a String cannot fail");
        s
    }
}

fn write_seq(
    out: &mut impl fmt::Write,
    open: char,
    close: char,
    items: &[Term],
    names: &dyn Fn(Pid) -> Option<String>,
) -> fmt::Result {
    out.write_char(open)?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        item.write_canonical(out, names)?;
    }
    out.write_char(close)
}

/// Erlang's `io_lib:write_atom/1`: bare when it starts with a lowercase letter and holds only
/// alphanumerics, `_` and `@`; quoted otherwise.
/// Erlang's reserved words, which `io_lib:write_atom` quotes (OTP 25.2.3, measured: `maybe`
/// and `else` are not among them there).
const RESERVED: [&str; 27] = [
    "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case",
    "catch", "cond", "div", "end", "fun", "if", "let", "not", "of", "or", "orelse", "receive",
    "rem", "try", "when", "xor",
];

fn write_atom(out: &mut impl fmt::Write, a: &str) -> fmt::Result {
    let bare = a.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
        && !RESERVED.contains(&a);
    if bare {
        out.write_str(a)
    } else {
        out.write_char('\'')?;
        for c in a.chars() {
            match c {
                '\'' => out.write_str("\\'")?,
                '\\' => out.write_str("\\\\")?,
                c => out.write_char(c)?,
            }
        }
        out.write_char('\'')
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_canonical(f, &|_| None)
    }
}

impl From<&'static str> for Term {
    /// A string literal becomes an atom, as in the oracle's JSON scenarios.
    fn from(s: &'static str) -> Term {
        Term::atom(s)
    }
}

impl From<String> for Term {
    /// A string becomes an atom.
    fn from(s: String) -> Term {
        Term::atom(s)
    }
}

impl From<i64> for Term {
    fn from(i: i64) -> Term {
        Term::Int(i)
    }
}

impl From<Pid> for Term {
    fn from(p: Pid) -> Term {
        Term::Pid(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_the_oracle_printer() {
        let t = Term::list([
            Term::tuple([Term::atom("specs"), Term::Int(3)]),
            Term::tuple([Term::atom("c"), Term::Pid(Pid(7)), Term::atom("worker")]),
        ]);
        let names = |p: Pid| (p == Pid(7)).then(|| "root/c".to_string());
        assert_eq!(t.canonical(&names), "[{specs,3},{c,<root/c>,worker}]");
        assert_eq!(Term::Pid(Pid(9)).to_string(), "<0.9>");
        assert_eq!(Term::Str("a\"b".into()).to_string(), "\"a\\\"b\"");
        assert_eq!(Term::atom("EXIT").to_string(), "'EXIT'");
        assert_eq!(Term::atom("it's").to_string(), "'it\\'s'");
        assert_eq!(Term::atom("a@b_1").to_string(), "a@b_1");
        // io_lib:write_atom quotes reserved words (OTP 25.2.3).
        assert_eq!(Term::atom("end").to_string(), "'end'");
        assert_eq!(Term::atom("receive").to_string(), "'receive'");
        assert_eq!(Term::atom("maybe").to_string(), "maybe");
    }
}
