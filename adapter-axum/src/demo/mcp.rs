//! The MCP server: a per-user todo list and `whoami`, built with rmcp.
//!
//! The OAuth layer in front of `/mcp` has already checked the bearer token
//! and put the caller's [`AuthContext`] in the request's extensions; rmcp
//! hands each tool the HTTP request parts, so every tool reads who is
//! calling from the request it is serving, never from session state.

use axum::http::request::Parts;
use oauth_core::{AuthContext, Provider};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::todos::{TodoError, TodoStore};

/// Reading the list.
pub(crate) const READ: &str = "todo:read";
/// Changing the list; implies [`READ`] (configured on the provider).
pub(crate) const WRITE: &str = "todo:write";

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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct AddTodo {
    /// What needs doing (at most 500 characters).
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct TodoId {
    /// The todo's id, as `list_todos` or `add_todo` returned it.
    id: i64,
}

/// One MCP server instance. The streamable HTTP transport runs statelessly
/// and builds one per request; everything in it is a cheap handle.
#[derive(Clone)]
pub(crate) struct TodoServer {
    todos: TodoStore,
    provider: Provider,
    tool_router: ToolRouter<Self>,
}

impl TodoServer {
    pub(crate) fn new(todos: TodoStore, provider: Provider) -> Self {
        Self { todos, provider, tool_router: Self::tool_router() }
    }

    /// The caller, if their token carries `scope` (directly or by an
    /// implication such as `todo:write` ⇒ `todo:read`). A token without it
    /// gets a tool error the model can relay: the user must reconnect and
    /// grant the scope.
    fn caller<'p>(
        &self,
        parts: &'p Parts,
        scope: Option<&str>,
    ) -> Result<&'p AuthContext, Result<CallToolResult, ErrorData>> {
        // Absent only if /mcp were mounted outside the OAuth layer: a server
        // bug, so a protocol error rather than a tool result.
        let Some(auth) = parts.extensions.get::<AuthContext>() else {
            tracing::error!("MCP request without an OAuth context: is /mcp behind the OAuth layer?");
            return Err(Err(ErrorData::internal_error("request is not authenticated", None)));
        };
        if let Some(scope) = scope {
            let required = [scope.to_owned()];
            if !oauth_core::scope::satisfies(&auth.scope, &required, &self.provider.config().scope_implies) {
                let granted = if auth.scope.is_empty() { "none".to_owned() } else { auth.scope.join(" ") };
                return Err(Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "insufficient_scope: this tool needs the `{scope}` scope, and this connection was granted: \
                     {granted}. Reconnect the MCP server and approve `{scope}` on the consent screen."
                ))])));
            }
        }
        Ok(auth)
    }
}

/// A todo failure as the tool's answer: the caller's mistakes as tool
/// errors, storage trouble as a logged internal error without detail.
fn todo_failure(e: TodoError) -> Result<CallToolResult, ErrorData> {
    match e {
        TodoError::Invalid(message) => Ok(CallToolResult::error(vec![ContentBlock::text(message)])),
        TodoError::Storage(error) => {
            tracing::error!(%error, "todo storage failed");
            Err(ErrorData::internal_error("the todo store is unavailable; try again", None))
        }
    }
}

fn not_found(id: i64) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::error(vec![ContentBlock::text(format!("there is no todo with id {id} in your list"))]))
}

#[tool_router]
impl TodoServer {
    #[tool(
        description = "Show who you are signed in as: user id, OAuth client id, granted scopes and token expiry.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn whoami(&self, Extension(parts): Extension<Parts>) -> Result<CallToolResult, ErrorData> {
        let auth = match self.caller(&parts, None) {
            Ok(auth) => auth,
            Err(answer) => return answer,
        };
        Ok(CallToolResult::structured(context_json(auth)))
    }

    #[tool(
        description = "List your todos (id, text, done). Needs the todo:read scope.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_todos(&self, Extension(parts): Extension<Parts>) -> Result<CallToolResult, ErrorData> {
        let auth = match self.caller(&parts, Some(READ)) {
            Ok(auth) => auth,
            Err(answer) => return answer,
        };
        match self.todos.list(&auth.user_id).await {
            Ok(todos) => Ok(CallToolResult::structured(json!({ "todos": todos }))),
            Err(e) => todo_failure(e),
        }
    }

    #[tool(
        description = "Add a todo to your list and return it with its id. Needs the todo:write scope.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn add_todo(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(AddTodo { text }): Parameters<AddTodo>,
    ) -> Result<CallToolResult, ErrorData> {
        let auth = match self.caller(&parts, Some(WRITE)) {
            Ok(auth) => auth,
            Err(answer) => return answer,
        };
        match self.todos.add(&auth.user_id, &text).await {
            Ok(todo) => Ok(CallToolResult::structured(json!({ "todo": todo }))),
            Err(e) => todo_failure(e),
        }
    }

    #[tool(
        description = "Mark one of your todos as done. Needs the todo:write scope.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn complete_todo(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(TodoId { id }): Parameters<TodoId>,
    ) -> Result<CallToolResult, ErrorData> {
        let auth = match self.caller(&parts, Some(WRITE)) {
            Ok(auth) => auth,
            Err(answer) => return answer,
        };
        match self.todos.complete(&auth.user_id, id).await {
            Ok(Some(todo)) => Ok(CallToolResult::structured(json!({ "todo": todo }))),
            Ok(None) => not_found(id),
            Err(e) => todo_failure(e),
        }
    }

    #[tool(
        description = "Delete one of your todos for good. Needs the todo:write scope.",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_todo(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(TodoId { id }): Parameters<TodoId>,
    ) -> Result<CallToolResult, ErrorData> {
        let auth = match self.caller(&parts, Some(WRITE)) {
            Ok(auth) => auth,
            Err(answer) => return answer,
        };
        match self.todos.delete(&auth.user_id, id).await {
            Ok(Some(todo)) => Ok(CallToolResult::structured(json!({ "deleted": todo }))),
            Ok(None) => not_found(id),
            Err(e) => todo_failure(e),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TodoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("oauth-core-todo-example", env!("CARGO_PKG_VERSION"))
                    .with_title("Todo list (oauth-core example)"),
            )
            .with_instructions(
                "A personal todo list for the signed-in user. list_todos shows the list; add_todo, \
                 complete_todo and delete_todo change it (they need the todo:write scope); whoami tells \
                 who is signed in.",
            )
    }
}
