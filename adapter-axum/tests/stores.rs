//! The SQL stores against the core's storage contract: the conformance
//! suite and race cases, races with 50 contenders, a differential run
//! against the reference `MemoryStore`, purging, persistence and error
//! mapping. Each test runs on SQLite (a temporary file) and PostgreSQL
//! (`DATABASE_URL`; see `common::database_url` for when it is skipped).

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use adapter_axum::{PgStore, SqliteStore, Store};
use oauth_core::testing::{ConformanceOptions, ConformanceReport, MemoryStore, run_conformance, run_races};
use oauth_core::{BlockingStore, Condition, Driver, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};
use sqlx::Connection as _;
use tokio::sync::Barrier;

fn wall_clock() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}/{}-{nanos}", std::process::id())
}

/// Issue `request` from `contenders` tasks released together, each through
/// its own pooled connection, so the database decides who wins.
async fn fan_out<S: Store>(
    store: &S,
    request: StorageRequest,
    contenders: usize,
) -> Vec<Result<Vec<Reply>, StorageError>> {
    let barrier = Arc::new(Barrier::new(contenders));
    let tasks: Vec<_> = (0..contenders)
        .map(|_| {
            let (store, request, barrier) = (store.clone(), request.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store.execute(request).await
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(contenders);
    for task in tasks {
        replies.push(task.await.expect("contender task"));
    }
    replies
}

async fn conformance_and_races<S: Store + Driver>(store: S, contenders: usize, rounds: usize) -> ConformanceReport {
    let opts = ConformanceOptions::new(unique("conformance"), UnixTime::from_secs(wall_clock()));
    let mut driver = store.clone();
    let mut report = run_conformance(&mut driver, &opts).await;
    for round in 0..rounds {
        let opts = ConformanceOptions::new(unique(&format!("race{round}")), UnixTime::from_secs(wall_clock()));
        report.merge(run_races(&mut driver, &opts, |request| fan_out(&store, request, contenders)).await);
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conformance() {
    let (store, _dir) = common::sqlite_store().await;
    let report = conformance_and_races(store, 16, 1).await;
    report.assert_all_passed();
    assert_eq!(report.not_applicable().count(), 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conformance() {
    let Some(url) = common::database_url("postgres_conformance") else { return };
    let store = common::pg_store(&url, 16).await;
    let report = conformance_and_races(store, 16, 1).await;
    report.assert_all_passed();
    assert_eq!(report.not_applicable().count(), 0, "{report}");
}

/// 50 tasks race one IfAbsent put, one IfRevision swap, one Take (and an
/// IfAbsent over an expired record), each on its own connection, over
/// several rounds: exactly one winner every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_fifty_contenders() {
    let Some(url) = common::database_url("postgres_fifty_contenders") else { return };
    let store = common::pg_store(&url, 50).await;
    // Open all 50 connections first (holding each until all are open), so
    // the races are not serialized by connection setup.
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(store.pool().acquire().await.unwrap());
    }
    drop(held);
    assert_eq!(store.pool().size(), 50);
    let report = conformance_and_races_only(store, 50, 10).await;
    report.assert_all_passed();
    assert_eq!(report.results().len(), 40, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_fifty_contenders() {
    let (store, _dir) = common::sqlite_store().await;
    let report = conformance_and_races_only(store, 50, 3).await;
    report.assert_all_passed();
    assert_eq!(report.results().len(), 12, "{report}");
}

async fn conformance_and_races_only<S: Store + Driver>(
    store: S,
    contenders: usize,
    rounds: usize,
) -> ConformanceReport {
    let mut driver = store.clone();
    let mut report = ConformanceReport::default();
    for round in 0..rounds {
        let opts = ConformanceOptions::new(unique(&format!("race50-{round}")), UnixTime::from_secs(wall_clock()));
        report.merge(run_races(&mut driver, &opts, |request| fan_out(&store, request, contenders)).await);
    }
    report
}

// ---- differential testing against the reference store ------------------------

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Prefixes chosen to stress the prefix range: shared stems (`a`, `a/`,
/// `ab`), multi-byte code points, the last ASCII and the last Unicode code
/// point (whose prefix has no successor), the code point before the
/// surrogate gap, and the empty key.
const PREFIXES: &[&str] = &["", "a", "a/", "a/b", "ab", "é", "é/", "\u{7F}", "\u{D7FF}", "z\u{10FFFF}", "\u{10FFFF}"];
const SUFFIXES: &[&str] = &["", "1", "2", "x", "é", "\u{80}", "\u{10FFFF}"];

fn random_op(g: &mut Gen, now: u64, last_cursor: &Option<String>) -> StorageOp {
    let key = format!("{}{}", g.pick(PREFIXES), g.pick(SUFFIXES));
    let revision = *g.pick(&[0, 1, 2, 3, u64::MAX, 1 << 63]);
    match g.below(10) {
        0 | 1 => StorageOp::Get { key },
        2..=4 => {
            // Around `now`, so later batches see some records alive and
            // some dead (and some alive again when time goes back).
            let expires_at = match g.below(3) {
                0 => None,
                _ => Some(UnixTime::from_secs(now - 20 + g.below(40))),
            };
            let condition = match g.below(3) {
                0 => Condition::Always,
                1 => Condition::IfAbsent,
                _ => Condition::IfRevision(*g.pick(&[0, 1, 2, 3, u64::MAX, 1 << 63])),
            };
            let len = g.below(9) as usize;
            let value = (0..len).map(|_| g.next() as u8).collect();
            StorageOp::Put { key, value, revision, expires_at, condition }
        }
        5 => StorageOp::Take { key },
        6 => StorageOp::Delete { key },
        _ => {
            let prefix = g.pick(PREFIXES).to_string();
            let cursor = match g.below(3) {
                0 => None,
                1 => last_cursor.clone(),
                _ => Some(format!("{}{}", g.pick(PREFIXES), g.pick(SUFFIXES))),
            };
            StorageOp::List { prefix, cursor, limit: 1 + g.below(4) as u32 }
        }
    }
}

/// Random batches applied to the store and to `MemoryStore` must get equal
/// replies. Time wanders back and forth, since the contract judges expiry
/// by each request's `now` alone.
async fn differential<S: Store>(store: S, seed: u64, batches: usize) {
    let mut g = Gen(seed);
    let mut reference = MemoryStore::new();
    let mut last_cursor = None;
    for i in 0..batches {
        let now = 1_000 + g.below(60);
        let ops: Vec<StorageOp> = (0..1 + g.below(3)).map(|_| random_op(&mut g, now, &last_cursor)).collect();
        let request = StorageRequest { now: UnixTime::from_secs(now), ops };
        let want = reference.execute(request.clone()).unwrap();
        let got = store.execute(request.clone()).await.unwrap();
        assert_eq!(got, want, "batch {i} (seed {seed}): {request:?}");
        for reply in &got {
            if let Reply::Listed { cursor: Some(c), .. } = reply {
                last_cursor = Some(c.clone());
            }
        }
    }
}

#[tokio::test]
async fn sqlite_matches_the_reference_store() {
    let (store, _dir) = common::sqlite_store().await;
    differential(store, 0x5EED_0001, 3_000).await;
}

#[tokio::test]
async fn postgres_matches_the_reference_store() {
    let Some(url) = common::database_url("postgres_matches_the_reference_store") else { return };
    differential(common::pg_store(&url, 2).await, 0x5EED_0002, 3_000).await;
}

// ---- purging ---------------------------------------------------------------------

async fn purge_removes_only_dead_rows<S: Store>(
    store: &S,
    purge: impl AsyncFnOnce(UnixTime, u32) -> Result<u64, StorageError>,
) {
    let now = UnixTime::from_secs(10_000);
    let put = |key: String, expires_at: Option<UnixTime>| StorageOp::Put {
        key,
        value: b"v".to_vec(),
        revision: 1,
        expires_at,
        condition: Condition::Always,
    };
    let mut ops = Vec::new();
    for i in 0..23 {
        ops.push(put(format!("dead/{i:02}"), Some(UnixTime::from_secs(9_000 + i))));
    }
    ops.push(put("dead/at-now".into(), Some(now)));
    ops.push(put("live/later".into(), Some(now.plus(1))));
    ops.push(put("live/forever".into(), None));
    store.execute(StorageRequest { now: UnixTime::from_secs(0), ops }).await.unwrap();

    // Batches of 5 over 24 dead rows: several statements, the last one short.
    assert_eq!(purge(now, 5).await.unwrap(), 24);
    assert_eq!(
        store
            .execute(StorageRequest {
                now: UnixTime::from_secs(0),
                ops: vec![StorageOp::List { prefix: String::new(), cursor: None, limit: 100 }],
            })
            .await
            .unwrap(),
        vec![Reply::Listed {
            entries: vec![
                ("live/forever".into(), Entry { value: b"v".to_vec(), revision: 1, expires_at: None }),
                ("live/later".into(), Entry { value: b"v".to_vec(), revision: 1, expires_at: Some(now.plus(1)) }),
            ],
            cursor: None,
        }],
        "only live rows remain, even seen from a time before any expiry"
    );
}

#[tokio::test]
async fn sqlite_purge() {
    let (store, _dir) = common::sqlite_store().await;
    purge_removes_only_dead_rows(&store, async |now, batch| store.purge_expired(now, batch).await).await;
}

#[tokio::test]
async fn postgres_purge() {
    let Some(url) = common::database_url("postgres_purge") else { return };
    let store = common::pg_store(&url, 2).await;
    purge_removes_only_dead_rows(&store, async |now, batch| store.purge_expired(now, batch).await).await;
}

// ---- SQLite specifics ---------------------------------------------------------------

#[tokio::test]
async fn sqlite_data_survives_a_restart_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oauth.db");
    let record = Entry { value: vec![0, 255, 7], revision: u64::MAX, expires_at: Some(UnixTime::from_secs(5_000)) };
    let put = StorageOp::Put {
        key: "client/abc".into(),
        value: record.value.clone(),
        revision: record.revision,
        expires_at: record.expires_at,
        condition: Condition::IfAbsent,
    };
    let store = SqliteStore::open(&path).await.unwrap();
    let now = UnixTime::from_secs(1_000);
    assert_eq!(store.execute(StorageRequest { now, ops: vec![put] }).await.unwrap(), vec![Reply::Written(true)]);
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    store.pool().close().await;
    drop(store);

    // Opening again applies no migration twice and finds the record.
    let store = SqliteStore::open(&path).await.unwrap();
    let get = StorageOp::Get { key: "client/abc".into() };
    assert_eq!(store.execute(StorageRequest { now, ops: vec![get] }).await.unwrap(), vec![Reply::Entry(Some(record))]);
}

#[tokio::test]
async fn a_closed_pool_is_unavailable_not_a_panic() {
    let (store, _dir) = common::sqlite_store().await;
    store.pool().close().await;
    let request = StorageRequest { now: UnixTime::from_secs(1), ops: vec![StorageOp::Get { key: "k".into() }] };
    assert_eq!(store.execute(request).await, Err(StorageError::Unavailable));
}

// ---- PostgreSQL specifics -----------------------------------------------------------

/// A statement stuck behind another session's row lock past
/// `statement_timeout` is reported as a timeout (503 to the client), and
/// the message of other database errors names the SQLSTATE.
#[tokio::test]
async fn postgres_statement_timeout_is_a_timeout() {
    let Some(url) = common::database_url("postgres_statement_timeout_is_a_timeout") else { return };
    let store = common::pg_store(&url, 2).await;
    let put = StorageOp::Put {
        key: "locked".into(),
        value: b"v".to_vec(),
        revision: 1,
        expires_at: None,
        condition: Condition::Always,
    };
    let now = UnixTime::from_secs(1);
    store.execute(StorageRequest { now, ops: vec![put] }).await.unwrap();

    let mut locker = store.pool().acquire().await.unwrap();
    let mut tx = locker.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM oauth_records WHERE key = 'locked' FOR UPDATE").execute(&mut *tx).await.unwrap();

    let mut victim = store.pool().acquire().await.unwrap();
    sqlx::query("SET statement_timeout = 300").execute(&mut *victim).await.unwrap();
    drop(victim); // back to the pool, with the short timeout set
    let swap = StorageOp::Put {
        key: "locked".into(),
        value: b"w".to_vec(),
        revision: 2,
        expires_at: None,
        condition: Condition::IfRevision(1),
    };
    let result = store.execute(StorageRequest { now, ops: vec![swap] }).await;
    tx.rollback().await.unwrap();
    assert_eq!(result, Err(StorageError::Timeout));

    // A NUL byte is not valid in PostgreSQL text: a plain error, with no
    // bound value in the message.
    let bad = StorageRequest { now, ops: vec![StorageOp::Get { key: "nul\0secret".into() }] };
    match store.execute(bad).await {
        Err(StorageError::Other(message)) => {
            assert!(message.starts_with("database error 22021"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        other => panic!("expected Other, got {other:?}"),
    }
}

/// The listing statement is served by a range scan of the primary key,
/// bounded on both sides: it is only possible because the key column
/// compares in the "C" collation.
#[tokio::test]
async fn postgres_listing_is_a_primary_key_range_scan() {
    let Some(url) = common::database_url("postgres_listing_is_a_primary_key_range_scan") else { return };
    let store = common::pg_store(&url, 1).await;
    let mut conn = store.pool().acquire().await.unwrap();
    // On an empty table any plan is as cheap as another; forbid the others
    // to see whether an ordered index scan can serve the query at all (with
    // a large table and a LIMIT it is the planner's own choice).
    sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await.unwrap();
    sqlx::query("SET enable_bitmapscan = off").execute(&mut *conn).await.unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT key, value, revision, expires_at FROM oauth_records WHERE key >= $1 AND key < $4 \
         AND (expires_at IS NULL OR expires_at > $2) ORDER BY key LIMIT $3",
    )
    .bind("token/ab/")
    .bind(1_000_i64)
    .bind(11_i64)
    .bind("token/ab0")
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("Index Scan using oauth_records_pkey"), "{plan}");
    assert!(plan.contains("Index Cond: ((key >= 'token/ab/'::text) AND (key < 'token/ab0'::text))"), "{plan}");
    assert!(!plan.contains("Sort"), "{plan}");
}

#[tokio::test]
async fn postgres_migrations_are_idempotent_and_kept_apart() {
    let Some(url) = common::database_url("postgres_migrations_are_idempotent_and_kept_apart") else { return };
    let store = common::pg_store(&url, 2).await;
    // Applying again (a second replica starting) is a no-op.
    let again = PgStore::from_pool(store.pool().clone()).await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _oauth_core_migrations").fetch_one(again.pool()).await.unwrap();
    assert_eq!(applied, 1);
    let sqlx_default: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text").fetch_one(again.pool()).await.unwrap();
    assert_eq!(sqlx_default, None, "the application's own migrations table is left alone");
}
