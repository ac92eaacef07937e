//! The application's own data: one todo list per user, in the same database
//! as the OAuth records (its own table, created at start-up).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::Row as _;

use crate::db::Db;

/// Longest todo text, in characters: enough for a sentence, small enough
/// that a client cannot fill the database through one call.
pub(crate) const MAX_TEXT_CHARS: usize = 500;
/// Most todos one user may hold.
pub(crate) const MAX_TODOS_PER_USER: i64 = 500;

const CREATE_POSTGRES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS mcp_example_todos (
        id BIGSERIAL PRIMARY KEY,
        user_id TEXT NOT NULL,
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE,
        created_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS mcp_example_todos_user ON mcp_example_todos (user_id, id)",
];

// AUTOINCREMENT so an id is never reused after a delete: a model that
// remembers an old id must not complete someone's newer todo by mistake.
const CREATE_SQLITE: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS mcp_example_todos (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL,
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE,
        created_at INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS mcp_example_todos_user ON mcp_example_todos (user_id, id)",
];

// Every statement is scoped by `user_id`: a todo id from another user's
// list matches nothing.
const COUNT: &str = "SELECT COUNT(*) AS n FROM mcp_example_todos WHERE user_id = $1";
const INSERT: &str = "INSERT INTO mcp_example_todos (user_id, text, done, created_at) VALUES ($1, $2, FALSE, $3) \
                      RETURNING id, text, done, created_at";
const LIST: &str = "SELECT id, text, done, created_at FROM mcp_example_todos WHERE user_id = $1 ORDER BY id";
const COMPLETE: &str = "UPDATE mcp_example_todos SET done = TRUE WHERE user_id = $1 AND id = $2 \
                        RETURNING id, text, done, created_at";
const DELETE: &str =
    "DELETE FROM mcp_example_todos WHERE user_id = $1 AND id = $2 RETURNING id, text, done, created_at";

/// One todo item.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Todo {
    pub(crate) id: i64,
    pub(crate) text: String,
    pub(crate) done: bool,
    /// Unix seconds.
    pub(crate) created_at: i64,
}

/// Why a todo operation failed.
#[derive(Debug)]
pub(crate) enum TodoError {
    /// The caller's fault; the message is for them.
    Invalid(String),
    /// The database failed; logged, and reported without detail.
    Database(sqlx::Error),
}

impl From<sqlx::Error> for TodoError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

/// Runs the same code against whichever pool the database has. sqlx's row
/// and executor types differ per driver, so the body is written once and
/// expanded per driver rather than made generic.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Db::Postgres(store) => {
                let $pool = store.pool();
                $body
            }
            Db::Sqlite(store) => {
                let $pool = store.pool();
                $body
            }
        }
    };
}

macro_rules! todo_from_row {
    ($row:expr) => {{
        let row = $row;
        Todo {
            id: row.try_get("id")?,
            text: row.try_get("text")?,
            done: row.try_get("done")?,
            created_at: row.try_get("created_at")?,
        }
    }};
}

/// Per-user todo lists.
#[derive(Clone, Debug)]
pub(crate) struct TodoStore {
    db: Db,
}

impl TodoStore {
    /// Create the table if it is missing.
    pub(crate) async fn open(db: Db) -> Result<Self, sqlx::Error> {
        let statements = match db {
            Db::Postgres(_) => CREATE_POSTGRES,
            Db::Sqlite(_) => CREATE_SQLITE,
        };
        for sql in statements {
            with_pool!(&db, |pool| {
                sqlx::query(*sql).execute(pool).await?;
            });
        }
        Ok(Self { db })
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
        // Checked before the insert, not atomically with it: two racing calls
        // may go one over the cap, which only bounds storage loosely anyway.
        let count: i64 =
            with_pool!(&self.db, |pool| sqlx::query(COUNT).bind(user).fetch_one(pool).await?.try_get("n")?);
        if count >= MAX_TODOS_PER_USER {
            return Err(TodoError::Invalid(format!(
                "the list already holds {MAX_TODOS_PER_USER} todos; delete some first"
            )));
        }
        let now = unix_now();
        let todo = with_pool!(&self.db, |pool| {
            todo_from_row!(sqlx::query(INSERT).bind(user).bind(text).bind(now).fetch_one(pool).await?)
        });
        Ok(todo)
    }

    /// `user`'s todos, oldest first.
    pub(crate) async fn list(&self, user: &str) -> Result<Vec<Todo>, TodoError> {
        let todos = with_pool!(&self.db, |pool| {
            let rows = sqlx::query(LIST).bind(user).fetch_all(pool).await?;
            let mut todos = Vec::with_capacity(rows.len());
            for row in rows {
                todos.push(todo_from_row!(row));
            }
            todos
        });
        Ok(todos)
    }

    /// Mark one of `user`'s todos done; `None` if they have no todo `id`.
    pub(crate) async fn complete(&self, user: &str, id: i64) -> Result<Option<Todo>, TodoError> {
        let todo = with_pool!(&self.db, |pool| {
            match sqlx::query(COMPLETE).bind(user).bind(id).fetch_optional(pool).await? {
                Some(row) => Some(todo_from_row!(row)),
                None => None,
            }
        });
        Ok(todo)
    }

    /// Delete one of `user`'s todos; `None` if they have no todo `id`.
    pub(crate) async fn delete(&self, user: &str, id: i64) -> Result<Option<Todo>, TodoError> {
        let todo = with_pool!(&self.db, |pool| {
            match sqlx::query(DELETE).bind(user).bind(id).fetch_optional(pool).await? {
                Some(row) => Some(todo_from_row!(row)),
                None => None,
            }
        });
        Ok(todo)
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
