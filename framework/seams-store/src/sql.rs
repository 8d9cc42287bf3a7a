//! The store's own words for SQL: how a capability sends a statement
//! ([`query`]), binds its values ([`Param`]), runs it inside a transaction
//! or on a reader ([`On`]) and reads what comes back ([`Row`], [`Column`]).
//!
//! Capability code says nothing of the driver underneath. Today that is
//! sqlx's `Any` driver for both backends; the SQLite backend is to leave it
//! for a driver called on the writer's own thread (bench/driver-cost.sh
//! counts what each costs), and a capability that wrote through sqlx would
//! then have to be rewritten. Values are the store's own ([`Value`]), so a
//! backend that is not sqlx can take them as they are; rows still wrap
//! sqlx's, read through a trait whose driver side is hidden.
//!
//! Placeholders are `$1`…`$n` on both backends. A NULL keeps the type of
//! what it stands for (`Option::<&str>::None` is a text NULL): PostgreSQL
//! types every parameter, and an integer NULL for a text column is refused.

use std::borrow::Cow;
use std::future::Future;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{AnyConnection, Arguments, Row as _};

use crate::readers::ReadConn;
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
    fn connection(&mut self) -> impl Future<Output = Result<&mut AnyConnection, DbError>> + Send;
}

impl On for Tx {
    fn connection(&mut self) -> impl Future<Output = Result<&mut AnyConnection, DbError>> + Send {
        self.conn()
    }
}

impl On for ReadConn {
    async fn connection(&mut self) -> Result<&mut AnyConnection, DbError> {
        Ok(&mut **self)
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

    fn sqlx(self) -> Result<sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>>, DbError> {
        let mut args = AnyArguments::default();
        args.reserve(self.values.len(), 0);
        for value in self.values {
            value.add_to(&mut args).map_err(DbError::Encode)?;
        }
        Ok(sqlx::query_with(self.sql, args))
    }

    /// Runs the statement; returns the number of rows it changed.
    pub async fn execute(self, on: &mut impl On) -> Result<u64, DbError> {
        let query = self.sqlx()?;
        Ok(query.execute(on.connection().await?).await?.rows_affected())
    }

    /// Its one row; [`DbError::RowNotFound`] if it returned none.
    pub async fn fetch_one(self, on: &mut impl On) -> Result<Row, DbError> {
        let query = self.sqlx()?;
        query.fetch_one(on.connection().await?).await.map(Row)
    }

    /// Its first row, if it returned one.
    pub async fn fetch_optional(self, on: &mut impl On) -> Result<Option<Row>, DbError> {
        let query = self.sqlx()?;
        Ok(query.fetch_optional(on.connection().await?).await?.map(Row))
    }

    /// All its rows.
    pub async fn fetch_all(self, on: &mut impl On) -> Result<Vec<Row>, DbError> {
        let query = self.sqlx()?;
        let rows = query.fetch_all(on.connection().await?).await?;
        Ok(rows.into_iter().map(Row).collect())
    }
}

/// One row a statement returned.
pub struct Row(AnyRow);

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row")
            .field("columns", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// A column of a [`Row`]: its position from 0, or its name.
pub trait At: sealed_at::Sealed {
    #[doc(hidden)]
    fn index(&self, row: &AnyRow) -> Result<usize, DbError>;
}

impl At for usize {
    fn index(&self, row: &AnyRow) -> Result<usize, DbError> {
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
    fn index(&self, row: &AnyRow) -> Result<usize, DbError> {
        row.try_column(*self).map(sqlx::Column::ordinal)
    }
}

mod sealed_at {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for &str {}
}

impl Row {
    /// The value of column `at` as a `T`; an error if there is no such
    /// column or it holds something a `T` cannot be read from (a NULL for a
    /// `T` that is not an `Option`).
    pub fn get<'r, T: Column<'r>>(&'r self, at: impl At) -> Result<T, DbError> {
        T::read(&self.0, at.index(&self.0)?)
    }
}

/// What can be read from a column.
pub trait Column<'r>: Sized {
    #[doc(hidden)]
    fn read(row: &'r AnyRow, index: usize) -> Result<Self, DbError>;
}

/// Reads through sqlx's decoding, which checks the column's type.
macro_rules! column_through_sqlx {
    ($($t:ty),* $(,)?) => {$(
        impl<'r> Column<'r> for $t {
            fn read(row: &'r AnyRow, index: usize) -> Result<Self, DbError> {
                row.try_get(index)
            }
        }
        impl<'r> Column<'r> for Option<$t> {
            fn read(row: &'r AnyRow, index: usize) -> Result<Self, DbError> {
                row.try_get(index)
            }
        }
    )*};
}

column_through_sqlx!(i64, f64, String, &'r str, Vec<u8>, &'r [u8]);

/// SQLite has no boolean type: it stores 0 and 1, and sqlx's `Any` driver
/// reads a bool only from a column declared BOOLEAN, and no NULL from one.
/// So an integer column holding 0 or 1 reads as a bool, on both backends.
impl<'r> Column<'r> for Option<bool> {
    fn read(row: &'r AnyRow, index: usize) -> Result<Self, DbError> {
        if let Ok(v) = row.try_get::<Option<bool>, _>(index) {
            return Ok(v);
        }
        match row.try_get::<Option<i64>, _>(index)? {
            None => Ok(None),
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            Some(other) => Err(DbError::ColumnDecode {
                index: index.to_string(),
                source: format!("{other} is not a boolean (0 or 1)").into(),
            }),
        }
    }
}

impl<'r> Column<'r> for bool {
    fn read(row: &'r AnyRow, index: usize) -> Result<Self, DbError> {
        Option::<bool>::read(row, index)?.ok_or_else(|| DbError::ColumnDecode {
            index: index.to_string(),
            source: "NULL where a boolean was expected".into(),
        })
    }
}
