//! The read store's one error type.

/// Opening, migrating, reading or writing the read store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("read store database error while {context}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A statement run through rusqlite failed: a scan on the SQLite file's own read
    /// connection, or a batch's write.
    #[error("read store database error while {context}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("applying the read store migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the read store at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A dead letter that does not exist or is already resolved.
    #[error("dead letter {0} does not exist")]
    NoSuchDeadLetter(i64),
    /// The store is in a state this build cannot work with.
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { context, source }
}

pub(crate) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { context, source }
}
