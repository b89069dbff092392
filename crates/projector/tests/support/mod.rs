//! Shared by the projector's integration tests.

/// One `#[tokio::test]` per backend for each named `async fn NAME(test: &str, backend:
/// Backend)` of the calling file: `sqlite::NAME` and `postgres::NAME` (skipped without
/// PostgreSQL unless services are required).
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(stringify!($name), super::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(concat!("postgres::", stringify!($name)), super::Backend::Postgres).await;
            })*
        }
    };
}
