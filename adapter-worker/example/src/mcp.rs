//! The MCP server: the streamable HTTP transport's JSON-RPC surface that
//! MCP clients use, served statelessly with JSON responses, and the todo
//! tools.
//!
//! rmcp, which the axum example uses, needs tokio and does not build for
//! wasm32, so this is the small subset written by hand: `initialize`,
//! `ping`, `tools/list`, `tools/call`, notifications (202), and nothing that
//! needs a session or a server-to-client stream (`GET /mcp` is 405, which
//! clients take as "no stream offered"). Every request is served on its own,
//! so there is no session to lose between isolates, and the caller is
//! whoever this request's token says.
//!
//! The provider has checked the bearer token before this runs; each tool
//! reads the caller from the request's [`AuthContext`].

use oauth_core::{AuthContext, Provider, UnixTime};
use serde_json::{Map, Value, json};

use crate::records::Storage;
use crate::todos::{self, TodoError};

/// Reading the list.
pub(crate) const READ: &str = "todo:read";
/// Changing the list; implies [`READ`] (configured on the provider).
pub(crate) const WRITE: &str = "todo:write";

/// Protocol revisions this server speaks, newest first. `initialize`
/// answers with the client's revision when it is one of these, else the
/// newest (the client then decides whether it can go on).
pub(crate) const PROTOCOL_VERSIONS: &[&str] = &[LATEST_PROTOCOL_VERSION, "2025-06-18", "2025-03-26", "2024-11-05"];
const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

/// What to send back for one POST.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// A JSON body with this status.
    Json(u16, Value),
    /// 202 Accepted, no body: the message was a notification or a response.
    Accepted,
}

/// The authenticated context as JSON: what `whoami` and `/mcp/echo` show.
pub(crate) fn context_json(auth: &AuthContext) -> Value {
    json!({
        "user_id": auth.user_id,
        "client_id": auth.client_id,
        "scope": auth.scope,
        "audience": auth.audience,
        "expires_at": auth.expires_at.as_secs(),
        "props": auth.props,
    })
}

/// The `MCP-Protocol-Version` header check: absent is allowed (the
/// transport spec's default for clients that predate it), an unsupported
/// value is a 400.
pub(crate) fn check_protocol_header(value: Option<&str>) -> Result<(), Reply> {
    match value {
        Some(v) if !PROTOCOL_VERSIONS.contains(&v) => Err(error_reply(
            400,
            Value::Null,
            INVALID_REQUEST,
            &format!("unsupported MCP-Protocol-Version {v:?}; this server speaks {}", PROTOCOL_VERSIONS.join(", ")),
        )),
        _ => Ok(()),
    }
}

fn error_reply(status: u16, id: Value, code: i64, message: &str) -> Reply {
    Reply::Json(status, json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }))
}

/// A JSON-RPC error for a request (HTTP 200: the transport worked).
fn rpc_error(id: Value, code: i64, message: &str) -> Reply {
    error_reply(200, id, code, message)
}

fn rpc_result(id: Value, result: Value) -> Reply {
    Reply::Json(200, json!({ "jsonrpc": "2.0", "id": id, "result": result }))
}

/// Serve one POSTed message for the caller `auth`.
pub(crate) async fn handle<S: Storage>(
    body: &[u8],
    auth: &AuthContext,
    provider: &Provider,
    store: &S,
    now: UnixTime,
) -> Reply {
    let message: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return error_reply(400, Value::Null, PARSE_ERROR, "the body is not JSON"),
    };
    let Value::Object(message) = message else {
        // Batches were dropped from the protocol in 2025-06-18; no client of
        // a later revision sends one.
        return error_reply(400, Value::Null, INVALID_REQUEST, "send one JSON-RPC message per request");
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return error_reply(400, Value::Null, INVALID_REQUEST, "not a JSON-RPC 2.0 message");
    }
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // A response to a server request (this server sends none): accepted.
        return Reply::Accepted;
    };
    let Some(id) = message.get("id").cloned() else {
        // A notification (`notifications/initialized`, cancellations): accepted.
        return Reply::Accepted;
    };
    if !(id.is_string() || id.is_i64() || id.is_u64()) {
        return error_reply(400, Value::Null, INVALID_REQUEST, "the id must be a string or an integer");
    }
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    match method {
        "initialize" => rpc_result(id, initialize(&params)),
        "ping" => rpc_result(id, json!({})),
        "tools/list" => rpc_result(id, json!({ "tools": tools() })),
        "tools/call" => call_tool(id, &params, auth, provider, store, now).await,
        _ => rpc_error(id, METHOD_NOT_FOUND, &format!("method {method:?} is not supported")),
    }
}

fn initialize(params: &Value) -> Value {
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    let version = requested.filter(|v| PROTOCOL_VERSIONS.contains(v)).unwrap_or(LATEST_PROTOCOL_VERSION);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": {
            "name": "oauth-core-todo-worker",
            "title": "Todo list (oauth-core Worker example)",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": "A personal todo list for the signed-in user. list_todos shows the list; add_todo, \
                         complete_todo and delete_todo change it (they need the todo:write scope); whoami tells \
                         who is signed in.",
    })
}

fn tools() -> Value {
    let none = json!({ "type": "object", "properties": {} });
    let id = json!({
        "type": "object",
        "properties": { "id": { "type": "integer", "description": "The todo's id, as list_todos or add_todo returned it." } },
        "required": ["id"],
    });
    let read_only = json!({ "readOnlyHint": true, "openWorldHint": false });
    json!([
        {
            "name": "whoami",
            "description": "Show who you are signed in as: user id, OAuth client id, granted scopes and token expiry.",
            "inputSchema": none,
            "annotations": read_only,
        },
        {
            "name": "list_todos",
            "description": "List your todos (id, text, done). Needs the todo:read scope.",
            "inputSchema": none,
            "annotations": read_only,
        },
        {
            "name": "add_todo",
            "description": "Add a todo to your list and return it with its id. Needs the todo:write scope.",
            "inputSchema": {
                "type": "object",
                "properties": { "text": { "type": "string", "description": "What needs doing (at most 500 characters)." } },
                "required": ["text"],
            },
            "annotations": { "readOnlyHint": false, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false },
        },
        {
            "name": "complete_todo",
            "description": "Mark one of your todos as done. Needs the todo:write scope.",
            "inputSchema": id,
            "annotations": { "readOnlyHint": false, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false },
        },
        {
            "name": "delete_todo",
            "description": "Delete one of your todos for good. Needs the todo:write scope.",
            "inputSchema": id,
            "annotations": { "readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false },
        },
    ])
}

/// A tool's structured answer: the JSON as text too, for clients that read
/// only `content`.
fn structured(value: Value) -> Value {
    json!({ "content": [{ "type": "text", "text": value.to_string() }], "structuredContent": value })
}

/// A tool-level failure the model can read and relay.
fn tool_error(message: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": message }], "isError": true })
}

async fn call_tool<S: Storage>(
    id: Value,
    params: &Value,
    auth: &AuthContext,
    provider: &Provider,
    store: &S,
    now: UnixTime,
) -> Reply {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return rpc_error(id, INVALID_PARAMS, "tools/call needs a tool name");
    };
    let empty = Map::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(args)) => args,
        Some(_) => return rpc_error(id, INVALID_PARAMS, "the arguments must be an object"),
    };
    let needed = match name {
        "whoami" => None,
        "list_todos" => Some(READ),
        "add_todo" | "complete_todo" | "delete_todo" => Some(WRITE),
        _ => return rpc_error(id, INVALID_PARAMS, &format!("there is no tool {name:?}")),
    };
    if let Some(scope) = needed {
        // `todo:write` implies `todo:read` (configured on the provider).
        if provider.require_scopes(auth, &[scope]).is_some() {
            let granted = if auth.scope.is_empty() { "none".to_owned() } else { auth.scope.join(" ") };
            return rpc_result(
                id,
                tool_error(&format!(
                    "insufficient_scope: this tool needs the `{scope}` scope, and this connection was granted: \
                     {granted}. Reconnect the MCP server and approve `{scope}` on the consent screen."
                )),
            );
        }
    }
    let user = auth.user_id.as_str();
    let outcome = match name {
        "whoami" => Ok(structured(context_json(auth))),
        "list_todos" => todos::list(store, user, now).await.map(|t| structured(json!({ "todos": t }))),
        "add_todo" => match args.get("text").and_then(Value::as_str) {
            Some(text) => todos::add(store, user, text, now).await.map(|t| structured(json!({ "todo": t }))),
            None => return rpc_error(id, INVALID_PARAMS, "add_todo needs a string `text`"),
        },
        _ => {
            let Some(todo_id) = args.get("id").and_then(Value::as_i64) else {
                return rpc_error(id, INVALID_PARAMS, &format!("{name} needs an integer `id`"));
            };
            let (result, key) = if name == "complete_todo" {
                (todos::complete(store, user, todo_id, now).await, "todo")
            } else {
                (todos::delete(store, user, todo_id, now).await, "deleted")
            };
            result.map(|found| match found {
                Some(t) => structured(json!({ key: t })),
                None => tool_error(&format!("there is no todo with id {todo_id} in your list")),
            })
        }
    };
    match outcome {
        Ok(result) => rpc_result(id, result),
        Err(TodoError::Invalid(message)) => rpc_result(id, tool_error(&message)),
        Err(TodoError::Storage(error)) => {
            log_error(&format!("todo storage failed: {error}"));
            rpc_error(id, INTERNAL_ERROR, "the todo store is unavailable; try again")
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn log_error(message: &str) {
    worker::console_error!("{message}");
}

#[cfg(not(target_arch = "wasm32"))]
fn log_error(message: &str) {
    eprintln!("{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_header_check() {
        assert!(check_protocol_header(None).is_ok());
        assert!(check_protocol_header(Some("2025-06-18")).is_ok());
        assert!(matches!(check_protocol_header(Some("1999-01-01")), Err(Reply::Json(400, _))));
    }

    #[test]
    fn initialize_echoes_a_supported_revision_or_offers_the_newest() {
        assert_eq!(initialize(&json!({"protocolVersion": "2025-03-26"}))["protocolVersion"], "2025-03-26");
        assert_eq!(initialize(&json!({"protocolVersion": "2099-01-01"}))["protocolVersion"], LATEST_PROTOCOL_VERSION);
        assert_eq!(initialize(&Value::Null)["capabilities"]["tools"]["listChanged"], false);
    }

    #[test]
    fn every_tool_has_an_object_schema() {
        let tools = tools();
        let names: Vec<&str> = tools.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["whoami", "list_todos", "add_todo", "complete_todo", "delete_todo"]);
        assert!(tools.as_array().unwrap().iter().all(|t| t["inputSchema"]["type"] == "object"));
    }
}
