//! Where the store lives (`--store sqlite://…` or `postgres://…`), connecting to it, and its
//! schema migrations (sqlx's migrator, one folder per back end, embedded in the binary).

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlSafeStr;

use super::{Db, Store};

/// A parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl StoreUrl {
    pub fn parse(s: &str) -> Result<StoreUrl, String> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(format!("--store {s}: the sqlite:// URL names no file"));
            }
            return Ok(StoreUrl::Sqlite(path.into()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(s.to_string()));
        }
        Err(format!(
            "--store {s}: expected postgres://user@host/db or sqlite://path"
        ))
    }

    /// The URL with any password replaced, for messages.
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            StoreUrl::Postgres(u) => redact_password(u),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) if auth.contains(':') => {
            let user = auth.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

macro_rules! migrations {
    ($dir:literal: $($v:literal $name:literal),*) => {
        vec![$(Migration::new(
            $v,
            Cow::Borrowed($name),
            MigrationType::Simple,
            include_str!(concat!("../../migrations/", $dir, "/", $name, ".sql")).into_sql_str(),
            false,
        )),*]
    };
}

fn migrator(migrations: Vec<Migration>) -> Migrator {
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

impl Store {
    /// Connects and brings the schema up to date. An unreachable server fails within seconds
    /// with the reason, not after a long hang.
    pub async fn connect(url: &StoreUrl) -> anyhow::Result<Store> {
        use anyhow::Context;
        let what = url.redacted();
        match url {
            StoreUrl::Sqlite(path) => Store::open(path)
                .await
                .with_context(|| format!("opening the job store {what}")),
            StoreUrl::Postgres(u) => {
                let connect = || {
                    PgPoolOptions::new()
                        .max_connections(16)
                        .acquire_timeout(Duration::from_secs(5))
                        .connect(u)
                };
                let pool = match connect().await {
                    // A server without the database yet: make it (as `createdb` would), once.
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
                        use sqlx::migrate::MigrateDatabase;
                        // Another node starting beside this one may win the race: connecting
                        // again is what tells.
                        match sqlx::Postgres::create_database(u).await {
                            Ok(()) => tracing::info!("created the database of {what}"),
                            Err(e) => tracing::warn!("creating the database of {what}: {e}"),
                        }
                        connect().await
                    }
                    r => r,
                }
                .with_context(|| format!("connecting to the job store {what}"))?;
                migrator(migrations!("postgres": 1 "0001_base", 2 "0002_fleet"))
                    .run(&pool)
                    .await
                    .with_context(|| format!("migrating the job store {what}"))?;
                Ok(Store { db: Db::Pg(pool) })
            }
        }
    }

    /// Opens (or creates) the embedded SQLite store at `path`.
    pub async fn open(path: &std::path::Path) -> super::Result<Store> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives a process kill (only power loss can drop the last
            // transactions), and is several times faster than FULL.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        // Freed pages go back to the file system as expired jobs are swept; a database made
        // before this setting is converted once (VACUUM is what applies it).
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&pool)
            .await?;
        if mode != 2 {
            sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
                .execute(&pool)
                .await?;
            sqlx::query("VACUUM").execute(&pool).await?;
        }
        migrator(migrations!("sqlite": 1 "0001_base", 2 "0002_fleet"))
            .run(&pool)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        let store = Store {
            db: Db::Sqlite(pool),
        };
        store.migrate_retention().await?;
        store.migrate_inputs().await?;
        Ok(store)
    }

    /// Whether this is the embedded store (one host: nothing else runs its jobs).
    pub fn is_embedded(&self) -> bool {
        matches!(self.db, Db::Sqlite(_))
    }

    /// A secret every node of a fleet must share (upload signing, the webhook key): made by
    /// the first node that asks, read by the rest.
    pub async fn shared_secret(&self, name: &str, fresh: &str) -> super::Result<String> {
        db!(self, p => {
            sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(fresh)
                .execute(p)
                .await?;
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_one(p)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_or_say_why_not() {
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            StoreUrl::parse("postgresql://u@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        let e = StoreUrl::parse("mysql://h/db").unwrap_err();
        assert!(e.contains("expected postgres://"), "{e}");
        assert!(StoreUrl::parse("sqlite://").is_err());
        let u = StoreUrl::parse("postgres://bob:hunter2@db:5432/scail").unwrap();
        assert_eq!(u.redacted(), "postgres://bob:***@db:5432/scail");
    }
}
