//! The application's own data: one todo list per user, kept in the OAuth
//! store beside the OAuth records.
//!
//! | key | value |
//! |---|---|
//! | `demo-todo/{b64url(user)}/{id:020}` | one todo |
//! | `demo-todo-seq/{b64url(user)}` | the next id to hand out |
//!
//! Ids are zero-padded in keys so that key order, which listings follow, is
//! id order. They come from a per-user counter advanced by compare-and-swap,
//! so two racing `add_todo` calls never get the same id, and an id is never
//! reused after a delete: a model that remembers an old id must not
//! complete someone's newer todo by mistake.

use std::time::{SystemTime, UNIX_EPOCH};

use oauth_core::Condition;
use serde::{Deserialize, Serialize};

use super::records::{RecordError, Records, Versioned, user_segment};

/// Longest todo text, in characters: enough for a sentence, small enough
/// that a client cannot fill the database through one call.
pub(crate) const MAX_TEXT_CHARS: usize = 500;
/// Most todos one user may hold.
pub(crate) const MAX_TODOS_PER_USER: usize = 500;
/// Compare-and-swap attempts before a write under contention gives up.
const CAS_ATTEMPTS: usize = 8;

/// One todo item.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Todo {
    pub(crate) id: i64,
    pub(crate) text: String,
    pub(crate) done: bool,
    /// Unix seconds.
    pub(crate) created_at: i64,
}

/// The per-user id counter.
#[derive(Debug, Serialize, Deserialize)]
struct Sequence {
    next: i64,
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

/// Per-user todo lists.
#[derive(Clone, Debug)]
pub(crate) struct TodoStore {
    records: Records,
}

fn list_prefix(user: &str) -> String {
    format!("demo-todo/{}/", user_segment(user))
}

fn todo_key(user: &str, id: i64) -> String {
    format!("{}{id:020}", list_prefix(user))
}

fn sequence_key(user: &str) -> String {
    format!("demo-todo-seq/{}", user_segment(user))
}

impl TodoStore {
    pub(crate) fn new(records: Records) -> Self {
        Self { records }
    }

    /// Add a todo to `user`'s list.
    pub(crate) async fn add(&self, user: &str, text: &str) -> Result<Todo, TodoError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TodoError::Invalid("the todo text is empty".into()));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(TodoError::Invalid(format!("the todo text is longer than {MAX_TEXT_CHARS} characters")));
        }
        // Counted before the insert, not atomically with it: two racing
        // calls may go one over the cap, which only bounds storage loosely
        // anyway.
        let held = self.records.list::<Todo>(&list_prefix(user), MAX_TODOS_PER_USER).await?;
        if held.len() >= MAX_TODOS_PER_USER {
            return Err(TodoError::Invalid(format!(
                "the list already holds {MAX_TODOS_PER_USER} todos; delete some first"
            )));
        }
        let id = self.next_id(user).await?;
        let todo = Todo { id, text: text.to_owned(), done: false, created_at: unix_now() };
        // The id is fresh, so nothing can be there; IfAbsent makes sure a
        // bug could never overwrite a todo.
        if !self.records.put(&todo_key(user, id), &todo, 1, None, Condition::IfAbsent).await? {
            return Err(TodoError::Storage(RecordError::Corrupt("a freshly allocated todo id was taken")));
        }
        Ok(todo)
    }

    /// Take the next id from `user`'s counter.
    async fn next_id(&self, user: &str) -> Result<i64, TodoError> {
        let key = sequence_key(user);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.records.get::<Sequence>(&key).await?;
            let (id, condition, revision) = match current {
                Some(Versioned { value, revision }) => {
                    (value.next, Condition::IfRevision(revision), revision.wrapping_add(1))
                }
                None => (1, Condition::IfAbsent, 1),
            };
            let next = Sequence { next: id.saturating_add(1) };
            if self.records.put(&key, &next, revision, None, condition).await? {
                return Ok(id);
            }
        }
        Err(TodoError::Invalid("too many todos are being added at once; try again".into()))
    }

    /// `user`'s todos, oldest first.
    pub(crate) async fn list(&self, user: &str) -> Result<Vec<Todo>, TodoError> {
        let todos = self.records.list::<Todo>(&list_prefix(user), MAX_TODOS_PER_USER).await?;
        Ok(todos.into_iter().map(|(_, t)| t.value).collect())
    }

    /// Mark one of `user`'s todos done; `None` if they have no todo `id`.
    pub(crate) async fn complete(&self, user: &str, id: i64) -> Result<Option<Todo>, TodoError> {
        let key = todo_key(user, id);
        for _ in 0..CAS_ATTEMPTS {
            let Some(Versioned { value: mut todo, revision }) = self.records.get::<Todo>(&key).await? else {
                return Ok(None);
            };
            if todo.done {
                return Ok(Some(todo));
            }
            todo.done = true;
            if self.records.put(&key, &todo, revision.wrapping_add(1), None, Condition::IfRevision(revision)).await? {
                return Ok(Some(todo));
            }
        }
        Err(TodoError::Invalid("this todo is being changed by another call; try again".into()))
    }

    /// Delete one of `user`'s todos; `None` if they have no todo `id`.
    pub(crate) async fn delete(&self, user: &str, id: i64) -> Result<Option<Todo>, TodoError> {
        Ok(self.records.take::<Todo>(&todo_key(user, id)).await?)
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
