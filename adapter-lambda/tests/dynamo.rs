//! The DynamoDB store against the core's storage contract, on a DynamoDB
//! endpoint (moto_server locally: `scripts/test.d/60-lambda.sh` starts one
//! and sets `AWS_ENDPOINT_URL_DYNAMODB`): the conformance suite and race
//! cases with 50 contenders, a differential run against the reference
//! `MemoryStore` over keys and prefixes of every depth, the table helper,
//! expiry ahead of DynamoDB's TTL deletion, and error mapping.
//!
//! Without `AWS_ENDPOINT_URL_DYNAMODB` the tests say so loudly and return;
//! under `CI=true` they fail instead, so CI cannot pass without them.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adapter_lambda::{ATTR_EXPIRES, ATTR_PK, ATTR_SK, ATTR_TTL, DynamoConfig, DynamoStore, Store, TTL_SLACK_SECS};
use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use oauth_core::testing::{ConformanceOptions, ConformanceReport, MemoryStore, run_conformance, run_races};
use oauth_core::{BlockingStore, Condition, Reply, StorageError, StorageOp, StorageRequest, UnixTime};
use tokio::sync::Barrier;

/// Contenders per race: the "50 simultaneous redemptions".
const CONTENDERS: usize = 50;

fn wall_clock() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// The endpoint's settings with test credentials, or `None` (after saying
/// so past the test harness's capture) when there is no endpoint.
fn config(test: &str) -> Option<DynamoConfig> {
    let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok().filter(|e| !e.is_empty()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "AWS_ENDPOINT_URL_DYNAMODB is unset under CI=true: the DynamoDB tests must run in CI \
             (scripts/test.d/60-lambda.sh starts moto_server)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED {test}: set AWS_ENDPOINT_URL_DYNAMODB (scripts/test.d/60-lambda.sh starts moto_server) ***\n"
        );
        return None;
    };
    let vars: HashMap<&str, String> = HashMap::from([
        ("OAUTH_DYNAMODB_TABLE", unique("oauth-test")),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ]);
    Some(DynamoConfig::from_vars(|name| vars.get(name).cloned()).unwrap())
}

/// A fresh table of its own for one test.
async fn fresh_store(test: &str) -> Option<DynamoStore> {
    let store = config(test)?.store();
    store.create_table().await.unwrap();
    Some(store)
}

/// Issue `request` from `contenders` tasks released together. Each request
/// is its own HTTP request to DynamoDB, so the service decides who wins.
async fn fan_out(
    store: &DynamoStore,
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

async fn races(store: &DynamoStore, rounds: usize) -> ConformanceReport {
    let mut driver = store.clone();
    let mut report = ConformanceReport::default();
    for round in 0..rounds {
        let opts = ConformanceOptions::new(unique(&format!("race{round}")), UnixTime::from_secs(wall_clock()));
        report.merge(run_races(&mut driver, &opts, |request| fan_out(store, request, CONTENDERS)).await);
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let Some(store) = fresh_store("conformance_suite").await else { return };
    // A one-segment namespace: the suite's keys are `{ns}/s/{check}/…`, so
    // each run lists within the partition `{ns}/s`.
    let opts = ConformanceOptions::new(unique("conformance"), UnixTime::from_secs(wall_clock()));
    let mut driver = store.clone();
    let report = run_conformance(&mut driver, &opts).await;
    report.assert_all_passed();
    assert_eq!(report.not_applicable().count(), 0, "{report}");
}

/// With an empty namespace the suite's own bookkeeping lists `s/`, a
/// prefix spanning partitions: the scan path, on a table of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_across_partitions() {
    let Some(store) = fresh_store("conformance_suite_across_partitions").await else { return };
    let opts = ConformanceOptions::new("", UnixTime::from_secs(wall_clock()));
    let mut driver = store.clone();
    let report = run_conformance(&mut driver, &opts).await;
    report.assert_all_passed();
    assert_eq!(report.not_applicable().count(), 0, "{report}");
}

/// 50 tasks race one IfAbsent put, one IfRevision swap, one Take and one
/// IfAbsent over an expired record, over several rounds: exactly one winner
/// every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_contenders() {
    let Some(store) = fresh_store("fifty_contenders").await else { return };
    let report = races(&store, 5).await;
    report.assert_all_passed();
    assert_eq!(report.results().len(), 20, "{report}");
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

/// Keys of every depth (so items land in many partitions and in shared
/// ones), sharing stems across the `/` boundaries the partitioning cuts at,
/// with multi-byte and extreme code points. All non-empty: DynamoDB has no
/// empty key, and the core writes none.
const STEMS: &[&str] = &["a", "a/", "a/b", "a/b/", "a/bc", "ab", "ab/c/", "é", "é/ü/", "\u{7F}/", "z\u{10FFFF}"];
const TAILS: &[&str] = &["", "1", "2", "/", "x", "/y", "é", "\u{80}", "\u{10FFFF}"];
/// Listing prefixes: spanning partitions (fewer than two `/`), fixing one,
/// and the empty prefix.
const PREFIXES: &[&str] = &["", "a", "a/", "a/b", "a/b/", "a/bc", "ab/", "ab/c/", "é/", "é/ü/", "\u{7F}/", "z"];

fn random_op(g: &mut Gen, now: u64, last_cursor: &Option<String>) -> StorageOp {
    let key = format!("{}{}", g.pick(STEMS), g.pick(TAILS));
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
                _ => Some(format!("{}{}", g.pick(STEMS), g.pick(TAILS))),
            };
            StorageOp::List { prefix, cursor, limit: 1 + g.below(4) as u32 }
        }
    }
}

/// Random batches applied to DynamoDB and to `MemoryStore` get equal replies,
/// reply for reply. Operations in a batch are on distinct keys (as the
/// core's are), since this store runs a batch's operations concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn matches_the_reference_store() {
    let Some(store) = fresh_store("matches_the_reference_store").await else { return };
    let mut reference = MemoryStore::new();
    let mut g = Gen(0x00C0_FFEE);
    let base = wall_clock();
    let mut last_cursor = None;
    for batch in 0..400 {
        // Time mostly moves forward, sometimes back.
        let now = base + 30 + g.below(60);
        let mut ops = Vec::new();
        let mut keys = std::collections::HashSet::new();
        for _ in 0..1 + g.below(4) {
            let op = random_op(&mut g, now, &last_cursor);
            if !matches!(op, StorageOp::List { .. }) && !keys.insert(op.key().to_owned()) {
                continue;
            }
            ops.push(op);
        }
        // A listing next to a write under its prefix would race it.
        let writes: Vec<String> = ops.iter().filter(|o| o.is_write()).map(|o| o.key().to_owned()).collect();
        ops.retain(
            |o| !matches!(o, StorageOp::List { prefix, .. } if writes.iter().any(|k| k.starts_with(prefix.as_str()))),
        );
        if ops.is_empty() {
            continue;
        }
        let request = StorageRequest { now: UnixTime::from_secs(now), ops };
        let want = reference.execute(request.clone());
        let got = store.execute(request.clone()).await;
        assert_eq!(got, want, "batch {batch}: {request:?}");
        if let Ok(replies) = &got {
            for reply in replies {
                if let Reply::Listed { cursor: Some(c), .. } = reply {
                    last_cursor = Some(c.clone());
                }
            }
        }
    }
}

// ---- the table, expiry and errors -----------------------------------------------

/// Function instances starting together all call `create_table`: every
/// call succeeds, and the table ends up with TTL on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_table_is_idempotent_and_enables_ttl() {
    let Some(config) = config("create_table_is_idempotent_and_enables_ttl") else { return };
    let store = config.store();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_table().await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    store.create_table().await.unwrap();
    let ttl = store.client().describe_time_to_live().table_name(store.table()).send().await.unwrap();
    let description = ttl.time_to_live_description().unwrap();
    assert_eq!(description.attribute_name(), Some(ATTR_TTL));
    assert!(matches!(description.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)));
}

/// An expired record is invisible at once, though DynamoDB deletes it only
/// later (and its TTL attribute is set past the expiry, with slack).
#[tokio::test]
async fn expired_items_are_ignored_before_dynamodb_deletes_them() {
    let Some(store) = fresh_store("expired_items_are_ignored_before_dynamodb_deletes_them").await else { return };
    let t = wall_clock();
    let key = "token/00ff/expired";
    let put = StorageOp::Put {
        key: key.to_owned(),
        value: b"v".to_vec(),
        revision: 1,
        expires_at: Some(UnixTime::from_secs(t + 60)),
        condition: Condition::Always,
    };
    let replies = store.execute(StorageRequest { now: UnixTime::from_secs(t), ops: vec![put] }).await.unwrap();
    assert_eq!(replies, vec![Reply::Written(true)]);

    let later = UnixTime::from_secs(t + 60);
    let ops = vec![
        StorageOp::Get { key: key.to_owned() },
        StorageOp::List { prefix: "token/00ff/".to_owned(), cursor: None, limit: 10 },
    ];
    let replies = store.execute(StorageRequest { now: later, ops }).await.unwrap();
    assert_eq!(replies, vec![Reply::Entry(None), Reply::Listed { entries: vec![], cursor: None }]);

    // Still physically there, with the layout the docs describe.
    let item = store
        .client()
        .get_item()
        .table_name(store.table())
        .key(ATTR_PK, AttributeValue::S("token/00ff".to_owned()))
        .key(ATTR_SK, AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = item.item().expect("the expired item is still stored");
    assert_eq!(item.get(ATTR_EXPIRES), Some(&AttributeValue::N((t + 60).to_string())));
    assert_eq!(item.get(ATTR_TTL), Some(&AttributeValue::N((t + 60 + TTL_SLACK_SECS).to_string())));
}

#[tokio::test]
async fn errors_map_to_the_core_vocabulary() {
    let Some(mut config) = config("errors_map_to_the_core_vocabulary") else { return };
    let request =
        StorageRequest { now: UnixTime::from_secs(wall_clock()), ops: vec![StorageOp::Get { key: "a/b".into() }] };

    // A table that does not exist: a configuration error, not retryable.
    let missing = config.store().execute(request.clone()).await;
    assert!(matches!(&missing, Err(StorageError::Other(m)) if m.contains("ResourceNotFound")), "{missing:?}");

    // Nothing listening: unavailable (retryable), after the SDK's retries.
    config.endpoint_url = Some("http://127.0.0.1:9".to_owned());
    config.max_attempts = 1;
    let refused = config.store().execute(request.clone()).await;
    assert_eq!(refused, Err(StorageError::Unavailable));

    // A listener that never answers: a timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.endpoint_url = Some(format!("http://{}", silent.local_addr().unwrap()));
    config.attempt_timeout = Duration::from_millis(300);
    config.operation_timeout = Duration::from_millis(600);
    let hung = config.store().execute(request).await;
    assert_eq!(hung, Err(StorageError::Timeout));
}
