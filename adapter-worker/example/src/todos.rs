//! The application's data: one todo list per user, in KV beside the OAuth
//! records.
//!
//! | key | value |
//! |---|---|
//! | `app/todos/{b64url(user)}` | the user's whole list and the next id to hand out |
//!
//! One record per user: a list is one read, and the id counter changes in
//! the same write as the list, so an id is never reused after a delete (a
//! model that remembers an old id must not complete someone's newer todo by
//! mistake). Writes are compare-and-swap on the record's revision, retried
//! on conflict. On KV that compare is a read then a write: two calls landing
//! in the same instant may lose one's change (see docs/adapter-worker.md);
//! for a personal todo list that is an acceptable trade for the simplicity.

use oauth_core::{Condition, UnixTime};
use serde::{Deserialize, Serialize};

use crate::records::{self, RecordError, Storage, user_segment};

/// Longest todo text, in characters.
pub(crate) const MAX_TEXT_CHARS: usize = 500;
/// Most todos one user may hold.
pub(crate) const MAX_TODOS_PER_USER: usize = 500;
/// Compare-and-swap attempts before a write under contention gives up.
const CAS_ATTEMPTS: usize = 8;

/// One todo item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Todo {
    pub(crate) id: i64,
    pub(crate) text: String,
    pub(crate) done: bool,
    /// Unix seconds.
    pub(crate) created_at: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TodoList {
    next_id: i64,
    items: Vec<Todo>,
}

/// Why a todo operation failed.
#[derive(Debug)]
pub(crate) enum TodoError {
    /// The caller's fault; the message is for them.
    Invalid(String),
    /// The store failed; logged, and reported without detail.
    Storage(RecordError),
}

impl From<RecordError> for TodoError {
    fn from(e: RecordError) -> Self {
        Self::Storage(e)
    }
}

fn key(user: &str) -> String {
    format!("app/todos/{}", user_segment(user))
}

fn unix(now: UnixTime) -> i64 {
    i64::try_from(now.as_secs()).unwrap_or(i64::MAX)
}

/// `user`'s todos, oldest first.
pub(crate) async fn list<S: Storage>(store: &S, user: &str, now: UnixTime) -> Result<Vec<Todo>, TodoError> {
    let list: Option<records::Versioned<TodoList>> = records::get(store, &key(user), now).await?;
    Ok(list.map(|l| l.value.items).unwrap_or_default())
}

/// Add a todo to `user`'s list.
pub(crate) async fn add<S: Storage>(store: &S, user: &str, text: &str, now: UnixTime) -> Result<Todo, TodoError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TodoError::Invalid("the todo text is empty".into()));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(TodoError::Invalid(format!("the todo text is longer than {MAX_TEXT_CHARS} characters")));
    }
    modify(store, user, now, |list| {
        if list.items.len() >= MAX_TODOS_PER_USER {
            return Err(TodoError::Invalid(format!(
                "the list already holds {MAX_TODOS_PER_USER} todos; delete some first"
            )));
        }
        list.next_id = list.next_id.max(1);
        let todo = Todo { id: list.next_id, text: text.to_owned(), done: false, created_at: unix(now) };
        list.next_id = list.next_id.saturating_add(1);
        list.items.push(todo.clone());
        Ok(Some(todo))
    })
    .await?
    .ok_or_else(|| TodoError::Invalid("the todo could not be added".into()))
}

/// Mark one of `user`'s todos done; `None` if they have no todo `id`.
pub(crate) async fn complete<S: Storage>(
    store: &S,
    user: &str,
    id: i64,
    now: UnixTime,
) -> Result<Option<Todo>, TodoError> {
    modify(store, user, now, |list| {
        Ok(list.items.iter_mut().find(|t| t.id == id).map(|t| {
            t.done = true;
            t.clone()
        }))
    })
    .await
}

/// Delete one of `user`'s todos; `None` if they have no todo `id`.
pub(crate) async fn delete<S: Storage>(
    store: &S,
    user: &str,
    id: i64,
    now: UnixTime,
) -> Result<Option<Todo>, TodoError> {
    modify(store, user, now, |list| {
        let position = list.items.iter().position(|t| t.id == id);
        Ok(position.map(|i| list.items.remove(i)))
    })
    .await
}

/// Read the list, apply `change`, write it back if `change` returned
/// something, retrying from a fresh read when another writer got there
/// first.
async fn modify<S: Storage>(
    store: &S,
    user: &str,
    now: UnixTime,
    mut change: impl FnMut(&mut TodoList) -> Result<Option<Todo>, TodoError>,
) -> Result<Option<Todo>, TodoError> {
    let key = key(user);
    for _ in 0..CAS_ATTEMPTS {
        let current: Option<records::Versioned<TodoList>> = records::get(store, &key, now).await?;
        let (mut list, condition, revision) = match current {
            Some(v) => (v.value, Condition::IfRevision(v.revision), v.revision.wrapping_add(1)),
            None => (TodoList::default(), Condition::IfAbsent, 1),
        };
        let Some(result) = change(&mut list)? else {
            return Ok(None);
        };
        if records::put(store, &key, &list, revision, None, condition, now).await? {
            return Ok(Some(result));
        }
    }
    Err(TodoError::Storage(RecordError::Corrupt("the todo list kept changing under this write")))
}

#[cfg(test)]
mod tests {
    use oauth_core::testing::block_on_ready;

    use super::*;
    use crate::records::memory::Memory;

    const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

    fn run<T>(f: impl Future<Output = T>) -> T {
        block_on_ready(f).expect("the memory store never waits")
    }

    #[test]
    fn ids_grow_and_are_never_reused_and_lists_are_per_user() {
        let store = Memory::default();
        let a = run(add(&store, "alice", " first ", NOW)).unwrap();
        let b = run(add(&store, "alice", "second", NOW)).unwrap();
        assert_eq!((a.id, a.text.as_str(), b.id), (1, "first", 2));
        assert_eq!(run(delete(&store, "alice", 2, NOW)).unwrap().map(|t| t.id), Some(2));
        assert_eq!(run(add(&store, "alice", "third", NOW)).unwrap().id, 3);
        assert_eq!(run(complete(&store, "alice", 1, NOW)).unwrap().map(|t| t.done), Some(true));
        let listed: Vec<(i64, bool)> =
            run(list(&store, "alice", NOW)).unwrap().iter().map(|t| (t.id, t.done)).collect();
        assert_eq!(listed, [(1, true), (3, false)]);
        // Another user's list and ids are their own.
        assert!(run(list(&store, "bob", NOW)).unwrap().is_empty());
        assert_eq!(run(complete(&store, "bob", 1, NOW)).unwrap(), None);
        assert_eq!(run(delete(&store, "bob", 1, NOW)).unwrap(), None);
    }

    #[test]
    fn bad_text_is_the_callers_error() {
        let store = Memory::default();
        assert!(matches!(run(add(&store, "u", "  ", NOW)), Err(TodoError::Invalid(_))));
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert!(matches!(run(add(&store, "u", &long, NOW)), Err(TodoError::Invalid(_))));
        assert!(run(add(&store, "u", &"é".repeat(MAX_TEXT_CHARS), NOW)).is_ok());
    }
}
