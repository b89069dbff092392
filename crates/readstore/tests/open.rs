//! Opening the embedded read store: several processes (here, several pools) opening a new
//! file at the same moment all get a migrated store.

use clientlog_readstore::{ReadStore, StoreConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_opens_of_a_new_sqlite_store_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = StoreConfig::Sqlite {
            path: dir.path().join("readstore.db"),
        };
        let opens = (0..4).map(|_| ReadStore::open(&config));
        for (i, opened) in futures::future::join_all(opens)
            .await
            .into_iter()
            .enumerate()
        {
            let store = opened.unwrap_or_else(|e| panic!("round {round}, open {i}: {e}"));
            assert!(store.live_version().await.expect("query").is_none());
            store.close().await;
        }
    }
}
