//! The DynamoDB store: every storage operation as one DynamoDB request.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use adapter_axum::Store;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue, ScalarAttributeType,
    TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use futures_util::future::join_all;
use oauth_core::{Condition, Driver, Entry, Reply, StorageError, StorageOp, StorageRequest, UnixTime};

use crate::config::{ConfigError, DynamoConfig};
use crate::error::classify;
use crate::keys::{partition_of, partition_of_prefix};

/// The partition key attribute: the key's first two segments.
pub const ATTR_PK: &str = "pk";
/// The sort key attribute: the whole key.
pub const ATTR_SK: &str = "sk";
/// The record's value (binary): the core's encoded record.
pub const ATTR_VALUE: &str = "v";
/// The record's revision (number, a `u64`).
pub const ATTR_REVISION: &str = "rev";
/// When the record stops being visible (number, Unix seconds); absent for
/// records that never expire. Every read judges expiry by this attribute
/// and the request's time.
pub const ATTR_EXPIRES: &str = "exp";
/// DynamoDB's TTL attribute (number, Unix seconds): [`ATTR_EXPIRES`] plus
/// [`TTL_SLACK_SECS`]. Only for DynamoDB's background deletion, which
/// reclaims space; nothing reads it.
pub const ATTR_TTL: &str = "ttl";

/// How long after a record's expiry DynamoDB may delete it. Reads already
/// ignore it from its expiry on; the slack only keeps the physical deletion,
/// judged by DynamoDB's clock, from ever overtaking the logical expiry,
/// judged by the request's (Lambda's) clock, even with some skew between
/// the two.
pub const TTL_SLACK_SECS: u64 = 3600;

/// The most items one `Query` page of a listing reads: enough for every
/// listing the core makes in one page, small enough to bound one read.
const QUERY_PAGE: i32 = 100;

/// oauth-core records in one DynamoDB table.
///
/// The single-table design (partition key `pk`, sort key `sk`, both
/// strings), the request each storage operation becomes and why each is
/// atomic are described in `docs/adapter-lambda.md`. In short:
///
/// | operation | DynamoDB |
/// |---|---|
/// | `Get` | `GetItem`, strongly consistent, ignoring an expired item |
/// | `Put Always` | `PutItem` |
/// | `Put IfAbsent` | `PutItem` if `attribute_not_exists(pk) OR exp <= :now` |
/// | `Put IfRevision(r)` | `PutItem` if `rev = :r AND (attribute_not_exists(exp) OR exp > :now)` |
/// | `Take` | `DeleteItem` returning `ALL_OLD`; the old item counts if it was live |
/// | `Delete` | `DeleteItem` |
/// | `List` | `Query pk = :pk AND begins_with(sk, :prefix)`, strongly consistent, or a `Scan` for prefixes that span partitions |
///
/// The operations of a batch are independent (the core's contract), so they
/// are sent concurrently: a bearer check's two reads cost one round trip's
/// latency. Cloning is cheap and shares the client's connection pool.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
}

impl DynamoStore {
    /// Records in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: Arc::from(table.into()) }
    }

    /// The store [`DynamoConfig::from_env`] describes.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(DynamoConfig::from_env()?.store())
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Create the table if it does not exist, wait until it is active, and
    /// switch on DynamoDB's TTL on [`ATTR_TTL`]. Safe to call from several
    /// processes at once (instances starting together). For development and
    /// tests; a deployment creates its table with its infrastructure code
    /// (see `docs/adapter-lambda.md` for the definition), and its function
    /// then needs no permission to create tables.
    pub async fn create_table(&self) -> Result<(), TableError> {
        let created = self
            .client
            .create_table()
            .table_name(self.table())
            .attribute_definitions(attribute(ATTR_PK)?)
            .attribute_definitions(attribute(ATTR_SK)?)
            .key_schema(key_element(ATTR_PK, KeyType::Hash)?)
            .key_schema(key_element(ATTR_SK, KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        if let Err(error) = created {
            let exists = error.as_service_error().is_some_and(|e| e.is_resource_in_use_exception());
            if !exists {
                return Err(TableError::new("CreateTable", &aws_sdk_dynamodb::Error::from(error)));
            }
        }
        // A new table is CREATING for a moment (on DynamoDB; local
        // emulators are immediate).
        let mut active = false;
        for _ in 0..120 {
            let described = self.client.describe_table().table_name(self.table()).send().await;
            let described = described.map_err(|e| TableError::new("DescribeTable", &e.into()))?;
            if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                active = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !active {
            return Err(TableError(format!("table {} did not become active within a minute", self.table())));
        }
        if self.ttl_enabled().await? {
            return Ok(());
        }
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(ATTR_TTL)
            .enabled(true)
            .build()
            .map_err(|e| TableError(format!("TimeToLiveSpecification: {e}")))?;
        let updated =
            self.client.update_time_to_live().table_name(self.table()).time_to_live_specification(spec).send().await;
        match updated {
            Ok(_) => Ok(()),
            // Several instances starting at once race to switch it on;
            // DynamoDB refuses all but the first.
            Err(_) if self.ttl_enabled().await? => Ok(()),
            Err(e) => Err(TableError::new("UpdateTimeToLive", &e.into())),
        }
    }

    /// Whether DynamoDB's TTL is on (or being switched on) for the table.
    async fn ttl_enabled(&self) -> Result<bool, TableError> {
        let ttl = self.client.describe_time_to_live().table_name(self.table()).send().await;
        let ttl = ttl.map_err(|e| TableError::new("DescribeTimeToLive", &e.into()))?;
        let status = ttl.time_to_live_description().and_then(|d| d.time_to_live_status());
        Ok(matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)))
    }

    /// Perform one batch: its operations concurrently, the replies in order.
    /// The first failure (in operation order) fails the batch.
    pub async fn run(&self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        let now = request.now;
        let replies = join_all(request.ops.into_iter().map(|op| self.run_op(op, now))).await;
        replies.into_iter().collect()
    }

    async fn run_op(&self, op: StorageOp, now: UnixTime) -> Result<Reply, StorageError> {
        match op {
            StorageOp::Get { key } => self.get(&key, now).await.map(Reply::Entry),
            StorageOp::Put { key, value, revision, expires_at, condition } => {
                self.put(&key, value, revision, expires_at, condition, now).await.map(Reply::Written)
            }
            StorageOp::Take { key } => self.take(&key, now).await.map(Reply::Entry),
            StorageOp::Delete { key } => self.delete(&key).await.map(|()| Reply::Done),
            StorageOp::List { prefix, cursor, limit } => self.list(&prefix, cursor, limit, now).await,
            // An operation this adapter does not know must fail loudly, not
            // be skipped.
            other => Err(StorageError::Other(format!("unsupported storage operation on {:?}", other.key()))),
        }
    }

    async fn get(&self, key: &str, now: UnixTime) -> Result<Option<Entry>, StorageError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(item_key(key)))
            // Read-your-writes: a code redeemed a moment ago must read as
            // redeemed, on whichever instance the next request lands.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        match output.item() {
            Some(item) => live_entry(item, now),
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        revision: u64,
        expires_at: Option<UnixTime>,
        condition: Condition,
        now: UnixTime,
    ) -> Result<bool, StorageError> {
        let mut item = item_key(key);
        item.insert(ATTR_VALUE.to_owned(), AttributeValue::B(Blob::new(value)));
        item.insert(ATTR_REVISION.to_owned(), number(revision));
        if let Some(t) = expires_at {
            item.insert(ATTR_EXPIRES.to_owned(), number(t.as_secs()));
            item.insert(ATTR_TTL.to_owned(), number(t.as_secs().saturating_add(TTL_SLACK_SECS)));
        }
        let request = self.client.put_item().table_name(self.table()).set_item(Some(item));
        let request = match condition {
            Condition::Always => request,
            // Absent, or only a dead record there. DynamoDB evaluates the
            // condition and writes as one atomic step per item, so of
            // concurrent writers exactly one finds the key free.
            Condition::IfAbsent => request
                .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_names("#exp", ATTR_EXPIRES)
                .expression_attribute_values(":now", number(now.as_secs())),
            // The compare-and-swap code redemption and refresh rotation rest
            // on: a live record at exactly this revision.
            Condition::IfRevision(expected) => request
                .condition_expression("#rev = :rev AND (attribute_not_exists(#exp) OR #exp > :now)")
                .expression_attribute_names("#rev", ATTR_REVISION)
                .expression_attribute_names("#exp", ATTR_EXPIRES)
                .expression_attribute_values(":rev", number(expected))
                .expression_attribute_values(":now", number(now.as_secs())),
            // A condition this adapter does not know must not silently
            // become an unconditional write.
            other => return Err(StorageError::Other(format!("unsupported put condition {other:?}"))),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(PutItemError::is_conditional_check_failed_exception) => {
                Ok(false)
            }
            Err(e) => Err(classify("PutItem", e)),
        }
    }

    async fn take(&self, key: &str, now: UnixTime) -> Result<Option<Entry>, StorageError> {
        // DynamoDB serializes writes to one item: of concurrent deletes,
        // exactly one gets the old item back. A dead item is deleted on the
        // way (it is garbage) and reported as absent.
        let output = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(item_key(key)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify("DeleteItem", e))?;
        match output.attributes() {
            Some(item) if !item.is_empty() => live_entry(item, now),
            _ => Ok(None),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(item_key(key)))
            .send()
            .await
            .map_err(|e| classify("DeleteItem", e))?;
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<String>,
        limit: u32,
        now: UnixTime,
    ) -> Result<Reply, StorageError> {
        let wanted = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
        // A cursor before the prefix (or from another listing) cannot skip
        // keys of this prefix; start at the prefix then, as the reference
        // store does. A cursor past every key of the prefix ends the listing.
        let after = match cursor {
            Some(c) if c.as_str() < prefix => None,
            Some(c) if !c.starts_with(prefix) => return Ok(Reply::Listed { entries: Vec::new(), cursor: None }),
            other => other,
        };
        // One more than asked, to learn whether a cursor is needed.
        let mut rows = match partition_of_prefix(prefix) {
            Some(pk) => self.query(pk, prefix, after.as_deref(), wanted.saturating_add(1), now).await?,
            None => self.scan(prefix, after.as_deref(), wanted.saturating_add(1), now).await?,
        };
        let more = rows.len() > wanted;
        rows.truncate(wanted);
        let cursor = if more { rows.last().map(|(k, _)| k.clone()) } else { None };
        Ok(Reply::Listed { entries: rows, cursor })
    }

    /// Up to `want` live records of partition `pk` whose keys start with
    /// `prefix`, after `after`, in key order.
    async fn query(
        &self,
        pk: &str,
        prefix: &str,
        after: Option<&str>,
        want: usize,
        now: UnixTime,
    ) -> Result<Vec<(String, Entry)>, StorageError> {
        let mut rows = Vec::new();
        // DynamoDB resumes after this key, whether or not an item still
        // holds it (the core deletes what it listed before asking for the
        // next page).
        let mut start = after.map(item_key);
        // Read no more than asked for (a page of one costs one item's read);
        // expired items skipped below only cost another page.
        let page = i32::try_from(want).unwrap_or(QUERY_PAGE).clamp(1, QUERY_PAGE);
        loop {
            let output = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", ATTR_PK)
                .expression_attribute_names("#sk", ATTR_SK)
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
                .consistent_read(true)
                .limit(page)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            // Expired items are read and skipped here rather than by a
            // filter expression: a filter costs the same read capacity and
            // would hide how far the page got.
            for item in output.items() {
                if let Some(entry) = live_entry(item, now)? {
                    rows.push((sort_key(item)?, entry));
                    if rows.len() >= want {
                        return Ok(rows);
                    }
                }
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(rows),
            }
        }
    }

    /// A listing whose prefix spans partitions (`client/`, `user/`: the
    /// admin API's listings of everything): the whole table is scanned,
    /// strongly consistent, and the live matches sorted, since a scan
    /// returns items in no useful order. Its cost grows with the table;
    /// nothing on the request path lists this way.
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        want: usize,
        now: UnixTime,
    ) -> Result<Vec<(String, Entry)>, StorageError> {
        let mut rows = Vec::new();
        let mut start = None;
        loop {
            let mut request = self.client.scan().table_name(self.table()).consistent_read(true);
            // DynamoDB refuses an empty string in an expression; the empty
            // prefix matches everything anyway.
            if !prefix.is_empty() {
                request = request
                    .filter_expression("begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", ATTR_SK)
                    .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()));
            }
            let output = request.set_exclusive_start_key(start.take()).send().await.map_err(|e| classify("Scan", e))?;
            for item in output.items() {
                let key = sort_key(item)?;
                if after.is_some_and(|a| key.as_str() <= a) {
                    continue;
                }
                if let Some(entry) = live_entry(item, now)? {
                    rows.push((key, entry));
                }
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.truncate(want);
        Ok(rows)
    }
}

impl Store for DynamoStore {
    fn execute(&self, request: StorageRequest) -> impl Future<Output = Result<Vec<Reply>, StorageError>> + Send {
        self.run(request)
    }
}

impl Driver for DynamoStore {
    async fn storage(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        self.run(request).await
    }
}

/// [`DynamoStore::create_table`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableError(String);

impl TableError {
    fn new(operation: &str, error: &aws_sdk_dynamodb::Error) -> Self {
        Self(format!("{operation}: {error}"))
    }
}

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TableError {}

fn attribute(name: &str) -> Result<AttributeDefinition, TableError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| TableError(format!("AttributeDefinition: {e}")))
}

fn key_element(name: &str, kind: KeyType) -> Result<KeySchemaElement, TableError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| TableError(format!("KeySchemaElement: {e}")))
}

/// The primary key of `key`'s item.
fn item_key(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (ATTR_PK.to_owned(), AttributeValue::S(partition_of(key).to_owned())),
        (ATTR_SK.to_owned(), AttributeValue::S(key.to_owned())),
    ])
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn sort_key(item: &HashMap<String, AttributeValue>) -> Result<String, StorageError> {
    match item.get(ATTR_SK) {
        Some(AttributeValue::S(key)) => Ok(key.clone()),
        _ => Err(malformed("sort key")),
    }
}

/// The item as an entry, if it is alive at `now`.
fn live_entry(item: &HashMap<String, AttributeValue>, now: UnixTime) -> Result<Option<Entry>, StorageError> {
    let expires_at = match item.get(ATTR_EXPIRES) {
        None => None,
        Some(AttributeValue::N(n)) => Some(UnixTime::from_secs(n.parse().map_err(|_| malformed("expiry"))?)),
        Some(_) => return Err(malformed("expiry")),
    };
    // The same rule as everywhere: dead from its expiry second on.
    if expires_at.is_some_and(|t| now.has_reached(t)) {
        return Ok(None);
    }
    let value = match item.get(ATTR_VALUE) {
        Some(AttributeValue::B(blob)) => blob.as_ref().to_vec(),
        _ => return Err(malformed("value")),
    };
    let revision = match item.get(ATTR_REVISION) {
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| malformed("revision"))?,
        _ => return Err(malformed("revision")),
    };
    Ok(Some(Entry { value, revision, expires_at }))
}

fn malformed(what: &str) -> StorageError {
    StorageError::Other(format!("a stored item has a missing or malformed {what}"))
}
