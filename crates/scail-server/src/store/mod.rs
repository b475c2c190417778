//! The durable job store: jobs, logs, results, webhook deliveries, file rows. Everything a client
//! can ask for later lives here, so a SIGKILL loses nothing. Two back ends run the same SQL
//! (`$n` parameters, which both accept): the embedded SQLite file in the data directory, and
//! PostgreSQL for a fleet of API nodes and workers.

use sqlx::{PgPool, Row, SqlitePool};

/// Runs `$body` with `$p` bound to the concrete pool: the body is compiled once per back end,
/// so row types and binds resolve to each driver's own.
macro_rules! db {
    ($store:expr, $p:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($p) => $body,
            $crate::store::Db::Pg($p) => $body,
        }
    };
}

#[macro_use]
mod types;
mod files;
mod jobs;
mod listen;
mod retention;
mod schema;
mod webhooks;

pub use listen::Wake;
pub use retention::Swept;
pub use schema::StoreUrl;
pub use types::*;

pub type Result<T> = std::result::Result<T, sqlx::Error>;

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
}

/// Typed column reads shared by both back ends' rows.
pub(crate) trait Cols {
    fn int(&self, c: &str) -> i64;
    fn int_opt(&self, c: &str) -> Option<i64>;
    fn real_opt(&self, c: &str) -> Option<f64>;
    fn text(&self, c: &str) -> String;
    fn text_opt(&self, c: &str) -> Option<String>;
}

macro_rules! impl_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn int(&self, c: &str) -> i64 {
                self.get(c)
            }
            fn int_opt(&self, c: &str) -> Option<i64> {
                self.get(c)
            }
            fn real_opt(&self, c: &str) -> Option<f64> {
                self.get(c)
            }
            fn text(&self, c: &str) -> String {
                self.get(c)
            }
            fn text_opt(&self, c: &str) -> Option<String> {
                self.get(c)
            }
        }
    };
}
impl_cols!(sqlx::sqlite::SqliteRow);
impl_cols!(sqlx::postgres::PgRow);
