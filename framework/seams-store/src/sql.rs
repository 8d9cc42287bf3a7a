//! The store's own words for SQL: how a capability sends a statement
//! ([`query`]), binds its values ([`Param`]), runs it inside a transaction
//! or on a reader ([`On`]) and reads what comes back ([`Row`], [`Column`]).
//!
//! Capability code says nothing of the driver underneath, which is one of
//! two behind the store's [`crate::driver::Driver`] trait: SQLite runs
//! inline through rusqlite ([`crate::sqlite`]), PostgreSQL through sqlx's
//! `Any` driver ([`crate::pg`]; bench/driver-cost.sh counts what each costs
//! a statement on SQLite). Values are the store's own ([`Value`]), so
//! either driver takes them as they are; a [`Row`] holds either driver's
//! row and reads both the same way.
//!
//! Placeholders are `$1`…`$n` on both backends. A NULL keeps the type of
//! what it stands for (`Option::<&str>::None` is a text NULL): PostgreSQL
//! types every parameter, and an integer NULL for a text column is refused.

use std::borrow::Cow;
use std::future::Future;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Arguments, Row as _};

use crate::driver::{Driver, Ran, Want};
use crate::readers::ReadConn;
use crate::sqlite::{Owned, Values};
use crate::tx::Tx;

/// What a statement failed with. The driver's error, for now: the
/// classifiers in this crate ([`crate::unique_violation`],
/// [`crate::connection_lost`], …) are the way to tell one apart.
pub type DbError = sqlx::Error;

/// A statement to run with [`Query::execute`] or a `fetch_*`, its values bound
/// in order with [`Query::bind`].
#[must_use = "a query does nothing until it is executed or fetched"]
#[derive(Debug)]
pub struct Query<'q> {
    sql: &'q str,
    values: Vec<Value<'q>>,
}

/// A statement: `query("SELECT name FROM products WHERE sku = $1").bind(sku)`.
pub fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        values: Vec::new(),
    }
}

/// The type of a [`Value`], which a NULL keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A boolean.
    Bool,
    /// A 64-bit integer.
    Integer,
    /// A double.
    Real,
    /// Text.
    Text,
    /// Bytes.
    Blob,
}

/// One bound value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'q> {
    /// NULL of the given type.
    Null(Kind),
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// Text, borrowed or owned.
    Text(Cow<'q, str>),
    /// Bytes, borrowed or owned.
    Blob(Cow<'q, [u8]>),
}

/// What can be bound to a placeholder.
pub trait Param<'q> {
    /// The type of its NULL, for `Option<Self>`.
    const KIND: Kind;
    /// The value to bind.
    fn value(self) -> Value<'q>;
}

impl<'q> Param<'q> for Value<'q> {
    // Only `Option<Value>` asks, and the type of an absent value is unknown:
    // text, which PostgreSQL converts on assignment and SQLite ignores.
    const KIND: Kind = Kind::Text;
    fn value(self) -> Value<'q> {
        self
    }
}

impl Param<'_> for bool {
    const KIND: Kind = Kind::Bool;
    fn value(self) -> Value<'static> {
        Value::Bool(self)
    }
}

impl Param<'_> for i64 {
    const KIND: Kind = Kind::Integer;
    fn value(self) -> Value<'static> {
        Value::Integer(self)
    }
}

impl Param<'_> for f64 {
    const KIND: Kind = Kind::Real;
    fn value(self) -> Value<'static> {
        Value::Real(self)
    }
}

impl<'q> Param<'q> for &'q str {
    const KIND: Kind = Kind::Text;
    fn value(self) -> Value<'q> {
        Value::Text(Cow::Borrowed(self))
    }
}

impl<'q> Param<'q> for &'q String {
    const KIND: Kind = Kind::Text;
    fn value(self) -> Value<'q> {
        Value::Text(Cow::Borrowed(self))
    }
}

impl Param<'_> for String {
    const KIND: Kind = Kind::Text;
    fn value(self) -> Value<'static> {
        Value::Text(Cow::Owned(self))
    }
}

impl<'q> Param<'q> for &'q [u8] {
    const KIND: Kind = Kind::Blob;
    fn value(self) -> Value<'q> {
        Value::Blob(Cow::Borrowed(self))
    }
}

impl Param<'_> for Vec<u8> {
    const KIND: Kind = Kind::Blob;
    fn value(self) -> Value<'static> {
        Value::Blob(Cow::Owned(self))
    }
}

impl<'q, T> Param<'q> for &'q Option<T>
where
    &'q T: Param<'q>,
{
    const KIND: Kind = <&'q T>::KIND;
    fn value(self) -> Value<'q> {
        self.as_ref().value()
    }
}

impl<'q, T: Param<'q>> Param<'q> for Option<T> {
    const KIND: Kind = T::KIND;
    fn value(self) -> Value<'q> {
        match self {
            Some(v) => v.value(),
            None => Value::Null(T::KIND),
        }
    }
}

impl<'q> Value<'q> {
    /// Appends this value to sqlx's argument list, with the type sqlx would
    /// give the Rust value it came from.
    pub(crate) fn add_to(
        self,
        args: &mut AnyArguments<'q>,
    ) -> Result<(), sqlx::error::BoxDynError> {
        match self {
            Value::Null(Kind::Bool) => args.add(None::<bool>),
            Value::Null(Kind::Integer) => args.add(None::<i64>),
            Value::Null(Kind::Real) => args.add(None::<f64>),
            Value::Null(Kind::Text) => args.add(None::<String>),
            Value::Null(Kind::Blob) => args.add(None::<Vec<u8>>),
            Value::Bool(v) => args.add(v),
            Value::Integer(v) => args.add(v),
            Value::Real(v) => args.add(v),
            Value::Text(Cow::Borrowed(v)) => args.add(v),
            Value::Text(Cow::Owned(v)) => args.add(v),
            Value::Blob(Cow::Borrowed(v)) => args.add(v),
            Value::Blob(Cow::Owned(v)) => args.add(v),
        }
    }
}

/// Where a statement runs: a transaction ([`Tx`], which sends its deferred
/// `SAVEPOINT` first) or a reader ([`ReadConn`], committed snapshots).
pub trait On: sealed::Sealed + Send {
    #[doc(hidden)]
    fn target(&mut self) -> impl Future<Output = Result<Target<'_>, DbError>> + Send;
}

/// The connection a statement runs on, whichever database it is
/// ([`crate::driver`]).
#[doc(hidden)]
pub struct Target<'c>(pub(crate) &'c mut dyn Driver);

impl On for Tx {
    async fn target(&mut self) -> Result<Target<'_>, DbError> {
        Tx::target(self).await
    }
}

impl On for ReadConn {
    async fn target(&mut self) -> Result<Target<'_>, DbError> {
        Ok(self.target())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Tx {}
    impl Sealed for crate::ReadConn {}
}

impl<'q> Query<'q> {
    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Param<'q>) -> Self {
        self.values.push(value.value());
        self
    }

    /// Refuses a statement whose placeholders and bound values differ in
    /// number, before anything is sent: SQLite would bind the missing ones
    /// as NULL, and PostgreSQL takes values nothing refers to.
    fn checked(self) -> Result<Self, DbError> {
        let placeholders = crate::placeholders::shape(self.sql)
            .map_err(|e| DbError::Encode(format!("the statement {e}").into()))?
            .placeholders;
        if placeholders != self.values.len() {
            return Err(DbError::Encode(
                format!(
                    "the statement has {placeholders} placeholders and {} values bound",
                    self.values.len()
                )
                .into(),
            ));
        }
        Ok(self)
    }

    /// Runs the statement; returns the number of rows it changed.
    pub async fn execute(self, on: &mut impl On) -> Result<u64, DbError> {
        Ok(self.run(on, Want::Changes).await?.changes)
    }

    /// Its one row; [`DbError::RowNotFound`] if it returned none.
    pub async fn fetch_one(self, on: &mut impl On) -> Result<Row, DbError> {
        self.fetch_optional(on).await?.ok_or(DbError::RowNotFound)
    }

    /// Its first row, if it returned one.
    pub async fn fetch_optional(self, on: &mut impl On) -> Result<Option<Row>, DbError> {
        Ok(self.run(on, Want::First).await?.rows.into_iter().next())
    }

    /// All its rows.
    pub async fn fetch_all(self, on: &mut impl On) -> Result<Vec<Row>, DbError> {
        Ok(self.run(on, Want::All).await?.rows)
    }

    async fn run(self, on: &mut impl On, want: Want) -> Result<Ran, DbError> {
        let query = self.checked()?;
        let Target(driver) = on.target().await?;
        driver.run(query.sql, query.values, want).get().await
    }
}

/// One row a statement returned.
pub struct Row(Inner);

enum Inner {
    Any(AnyRow),
    Sqlite(Values),
}

impl Row {
    pub(crate) fn any(row: AnyRow) -> Row {
        Row(Inner::Any(row))
    }

    pub(crate) fn sqlite(values: Values) -> Row {
        Row(Inner::Sqlite(values))
    }

    /// The values SQLite's driver copied out, for its own tests.
    #[cfg(test)]
    pub(crate) fn sqlite_values(&self) -> &Values {
        match &self.0 {
            Inner::Sqlite(values) => values,
            Inner::Any(_) => panic!("a row of sqlx's, not SQLite's inline driver"),
        }
    }
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row")
            .field("columns", &self.len())
            .finish_non_exhaustive()
    }
}

impl Row {
    fn len(&self) -> usize {
        match &self.0 {
            Inner::Any(row) => row.len(),
            Inner::Sqlite(row) => row.values.len(),
        }
    }

    /// The value of column `at` as a `T`; an error if there is no such
    /// column or it holds something a `T` cannot be read from (a NULL for a
    /// `T` that is not an `Option`).
    pub fn get<'r, T: Column<'r>>(&'r self, at: impl At) -> Result<T, DbError> {
        let index = at.index(self)?;
        match &self.0 {
            Inner::Any(row) => T::from_sqlx(row, index),
            Inner::Sqlite(row) => {
                T::from_value(&row.values[index]).map_err(|source| DbError::ColumnDecode {
                    index: format!("{:?}", row.columns[index]),
                    source: source.into(),
                })
            }
        }
    }
}

/// A column of a [`Row`]: its position from 0, or its name.
pub trait At: sealed_at::Sealed {
    #[doc(hidden)]
    fn index(&self, row: &Row) -> Result<usize, DbError>;
}

impl At for usize {
    fn index(&self, row: &Row) -> Result<usize, DbError> {
        if *self < row.len() {
            Ok(*self)
        } else {
            Err(DbError::ColumnIndexOutOfBounds {
                index: *self,
                len: row.len(),
            })
        }
    }
}

impl At for &str {
    fn index(&self, row: &Row) -> Result<usize, DbError> {
        match &row.0 {
            Inner::Any(row) => row.try_column(*self).map(sqlx::Column::ordinal),
            Inner::Sqlite(row) => row
                .columns
                .iter()
                .position(|c| c == self)
                .ok_or_else(|| DbError::ColumnNotFound((*self).to_owned())),
        }
    }
}

mod sealed_at {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for &str {}
}

/// What can be read from a column.
pub trait Column<'r>: Sized {
    #[doc(hidden)]
    fn from_sqlx(row: &'r AnyRow, index: usize) -> Result<Self, DbError>;
    #[doc(hidden)]
    fn from_value(value: &'r Owned) -> Result<Self, String>;
}

fn mismatch(want: &str, got: &Owned) -> String {
    let got = match got {
        Owned::Null => "NULL",
        Owned::Integer(_) => "an integer",
        Owned::Real(_) => "a real",
        Owned::Text(_) => "text",
        Owned::Blob(_) => "a blob",
    };
    format!("{got} where {want} was expected")
}

/// Reads through sqlx's decoding on sqlx's rows, which checks the
/// column's type, and by the value's storage class on SQLite's.
macro_rules! column {
    ($($t:ty => $want:literal, $pat:pat => $v:expr;)*) => {$(
        impl<'r> Column<'r> for $t {
            fn from_sqlx(row: &'r AnyRow, index: usize) -> Result<Self, DbError> {
                row.try_get(index)
            }
            fn from_value(value: &'r Owned) -> Result<Self, String> {
                match value {
                    $pat => Ok($v),
                    other => Err(mismatch($want, other)),
                }
            }
        }
        impl<'r> Column<'r> for Option<$t> {
            fn from_sqlx(row: &'r AnyRow, index: usize) -> Result<Self, DbError> {
                row.try_get(index)
            }
            fn from_value(value: &'r Owned) -> Result<Self, String> {
                match value {
                    Owned::Null => Ok(None),
                    other => <$t>::from_value(other).map(Some),
                }
            }
        }
    )*};
}

column! {
    i64 => "an integer", Owned::Integer(v) => *v;
    f64 => "a real", Owned::Real(v) => *v;
    String => "text", Owned::Text(v) => v.clone();
    &'r str => "text", Owned::Text(v) => v.as_str();
    Vec<u8> => "a blob", Owned::Blob(v) => v.clone();
    &'r [u8] => "a blob", Owned::Blob(v) => v.as_slice();
}

/// SQLite has no boolean type: it stores 0 and 1, and sqlx's `Any` driver
/// reads a bool only from a column declared BOOLEAN, and no NULL from one.
/// So an integer column holding 0 or 1 reads as a bool, on both backends.
impl<'r> Column<'r> for Option<bool> {
    fn from_sqlx(row: &'r AnyRow, index: usize) -> Result<Self, DbError> {
        if let Ok(v) = row.try_get::<Option<bool>, _>(index) {
            return Ok(v);
        }
        match row.try_get::<Option<i64>, _>(index)? {
            None => Ok(None),
            Some(v) => boolean(v)
                .map(Some)
                .map_err(|source| DbError::ColumnDecode {
                    index: index.to_string(),
                    source: source.into(),
                }),
        }
    }

    fn from_value(value: &'r Owned) -> Result<Self, String> {
        match value {
            Owned::Null => Ok(None),
            Owned::Integer(v) => boolean(*v).map(Some),
            other => Err(mismatch("a boolean", other)),
        }
    }
}

fn boolean(v: i64) -> Result<bool, String> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(format!("{other} is not a boolean (0 or 1)")),
    }
}

impl<'r> Column<'r> for bool {
    fn from_sqlx(row: &'r AnyRow, index: usize) -> Result<Self, DbError> {
        Option::<bool>::from_sqlx(row, index)?.ok_or_else(|| DbError::ColumnDecode {
            index: index.to_string(),
            source: "NULL where a boolean was expected".into(),
        })
    }

    fn from_value(value: &'r Owned) -> Result<Self, String> {
        Option::<bool>::from_value(value)?.ok_or_else(|| mismatch("a boolean", value))
    }
}
