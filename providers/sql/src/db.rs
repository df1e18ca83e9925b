//! The provider's side of the `sql` import: statements written once with
//! `?` placeholders (turned into `$1`, `$2`... for PostgreSQL here, the one
//! place the dialects' parameters differ), and typed reads of the rows.

use std::sync::OnceLock;

use crate::bindings::reclaim::recovery::sql::{self, Dialect, Value};

/// The host's dialect, asked once per instance.
pub fn dialect() -> Dialect {
    static DIALECT: OnceLock<Dialect> = OnceLock::new();
    *DIALECT.get_or_init(sql::database_dialect)
}

pub fn is_postgresql() -> bool {
    dialect() == Dialect::Postgresql
}

/// `statement` in the host's dialect. Our statements have no `?` but their
/// placeholders (no literal or operator uses one), so each is numbered in
/// order.
fn in_dialect(statement: &str) -> String {
    if !is_postgresql() {
        return statement.to_string();
    }
    let mut out = String::with_capacity(statement.len() + 8);
    let mut n = 0;
    for c in statement.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs a statement; returns the rows it changed.
pub fn execute(statement: &str, params: &[Value]) -> u64 {
    sql::execute(&in_dialect(statement), params)
}

/// Runs a statement; returns its rows.
pub fn query(statement: &str, params: &[Value]) -> Vec<Row> {
    sql::query(&in_dialect(statement), params)
        .into_iter()
        .map(Row)
        .collect()
}

/// The first row of a statement, if any.
pub fn query_one(statement: &str, params: &[Value]) -> Option<Row> {
    query(statement, params).into_iter().next()
}

/// `?, ?, ...` for `n` values (`IN` lists).
pub fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// SQL NULL, in the `sql` import's encoding of values.
const NULL: &str = "n";

pub fn text(value: &str) -> Value {
    format!("t{value}")
}

pub fn opt_text(value: Option<&str>) -> Value {
    value.map_or_else(|| NULL.to_string(), text)
}

pub fn int(value: i64) -> Value {
    format!("i{value}")
}

/// A timestamp or count: databases keep i64, enough until 2262.
pub fn unsigned(value: u64) -> Value {
    int(i64::try_from(value).unwrap_or(i64::MAX))
}

/// A column as its type and content (`n`, `i…`, `t…`).
enum Column<'a> {
    Null,
    Integer(&'a str),
    Text(&'a str),
}

fn decode(value: &str) -> Column<'_> {
    match value.split_at_checked(1) {
        Some(("i", digits)) => Column::Integer(digits),
        Some(("t", text)) => Column::Text(text),
        Some(("n", "")) => Column::Null,
        _ => panic!("the host sent a value outside the sql import's encoding: {value:?}"),
    }
}

/// One row: its columns in the statement's order. A column of the wrong
/// type is a schema the provider did not make, so it traps.
pub struct Row(Vec<Value>);

impl Row {
    fn column(&self, i: usize) -> Column<'_> {
        decode(
            self.0
                .get(i)
                .unwrap_or_else(|| panic!("the row has no column {i}")),
        )
    }

    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.column(i) {
            Column::Null => None,
            Column::Text(s) | Column::Integer(s) => Some(s.to_string()),
        }
    }

    pub fn text(&self, i: usize) -> String {
        self.opt_text(i)
            .unwrap_or_else(|| panic!("column {i} is NULL"))
    }

    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.column(i) {
            Column::Null => None,
            Column::Integer(s) | Column::Text(s) => Some(
                s.parse()
                    .unwrap_or_else(|_| panic!("column {i} is not an integer")),
            ),
        }
    }

    pub fn int(&self, i: usize) -> i64 {
        self.opt_int(i)
            .unwrap_or_else(|| panic!("column {i} is NULL"))
    }

    pub fn unsigned(&self, i: usize) -> u64 {
        u64::try_from(self.int(i)).unwrap_or(0)
    }
}
