//! What the store reads from a statement's text: its placeholders `$1`…`$n`,
//! read once per text and kept.
//!
//! Every statement is checked before it runs: its placeholders must match
//! the values bound (SQLite would bind the missing ones as NULL), and it
//! must be one statement. On SQLite it is also run with each `$k` written
//! `?k`. SQLite reads `$k` as a *named* parameter and numbers names in the
//! order they first appear, so binding `$k` meant asking each parameter's
//! name and parsing it, on every run; `?k` is SQLite's numbered parameter,
//! the `k`-th whatever the order, as `$k` is on PostgreSQL.
//!
//! A statement's text is a constant of the code that runs it, so reading it
//! once is enough. Counted with callgrind, reading the texts again on every
//! run, and asking SQLite for each parameter's name, were about 3 % of what
//! an invoice costs. The kept readings are per thread (no lock; a pure
//! function's results) and bounded: a store whose statements are built at
//! run time (an `IN` list of varying length) starts over when the map is
//! full.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A statement's text, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The highest `$k`: how many values the statement takes.
    pub(crate) placeholders: usize,
    /// Whether each of `$1`…`$k` appears (a value bound to no placeholder
    /// is refused).
    pub(crate) complete: bool,
    /// The text with every placeholder `$k` outside quotes written `?k`.
    pub(crate) numbered: Box<str>,
}

/// Texts kept per thread before the map starts over.
const KEPT: usize = 512;

/// The highest placeholder a statement may have: PostgreSQL's limit (its
/// protocol counts parameters in 16 bits); SQLite's is lower by default.
const HIGHEST: usize = 65_535;

thread_local! {
    static READ: RefCell<HashMap<Box<str>, Rc<Shape>, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
}

/// `sql` read: its placeholders, or why it is refused ([`scan`]). Not to be
/// held across an `.await` (it is the thread's).
pub(crate) fn shape(sql: &str) -> Result<Rc<Shape>, String> {
    if let Some(shape) = READ.with_borrow(|read| read.get(sql).cloned()) {
        return Ok(shape);
    }
    let scanned = scan(sql)?;
    let mut numbered = sql.to_owned().into_bytes();
    for at in scanned.dollars {
        numbered[at] = b'?';
    }
    let numbered = String::from_utf8(numbered)
        .expect("only ASCII `$` became ASCII `?`")
        .into_boxed_str();
    let shape = Rc::new(Shape {
        placeholders: scanned.highest,
        complete: scanned.seen.iter().all(|&seen| seen),
        numbered,
    });
    READ.with_borrow_mut(|read| {
        if read.len() >= KEPT {
            read.clear();
        }
        read.insert(sql.into(), shape.clone());
    });
    Ok(shape)
}

/// What [`scan`] found.
struct Scanned {
    /// The highest `$k`.
    highest: usize,
    /// Which of `$1`…`$highest` appear.
    seen: Vec<bool>,
    /// Where each placeholder's `$` is.
    dollars: Vec<usize>,
}

/// The placeholders of `sql`. Text in quotes is skipped. Refused: a `$`
/// that is no placeholder, `$0`, one above `$65535`, an unclosed quote, and a `;` outside
/// quotes (one statement at a time: SQLite would run the first and drop the
/// rest).
///
/// It finds the next `$`, quote or `;` with `memchr` rather than looking
/// at every character. All four are ASCII, so byte offsets found this way
/// are character boundaries.
fn scan(sql: &str) -> Result<Scanned, String> {
    let bytes = sql.as_bytes();
    let one_statement = |text: &[u8]| match memchr::memchr(b';', text) {
        Some(_) => Err("holds more than one statement".to_owned()),
        None => Ok(()),
    };
    let mut found = Scanned {
        highest: 0,
        seen: Vec::new(),
        dollars: Vec::new(),
    };
    let mut at = 0;
    while let Some(next) = memchr::memchr3(b'$', b'\'', b'"', &bytes[at..]) {
        one_statement(&bytes[at..at + next])?;
        let special = at + next;
        if bytes[special] != b'$' {
            let quote = bytes[special];
            let Some(close) = memchr::memchr(quote, &bytes[special + 1..]) else {
                return Err("has an unclosed quote".into());
            };
            at = special + 1 + close + 1;
            continue;
        }
        let digits = bytes[special + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = special + 1 + digits;
        let k: usize = sql[special + 1..end]
            .parse()
            .map_err(|_| "has a `$` that is not a placeholder `$n`".to_owned())?;
        if k == 0 {
            return Err("has the placeholder $0; they start at $1".into());
        }
        if k > HIGHEST {
            return Err(format!(
                "has the placeholder ${k}; the highest is ${HIGHEST}"
            ));
        }
        found.seen.resize(found.seen.len().max(k), false);
        found.seen[k - 1] = true;
        found.highest = found.highest.max(k);
        found.dollars.push(special);
        at = end;
    }
    one_statement(&bytes[at..])?;
    Ok(found)
}

#[cfg(test)]
mod tests;
