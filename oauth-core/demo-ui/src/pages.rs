//! The pages both examples serve, as HTML strings: the runtime wraps each in
//! its own response (status code and security headers).

use oauth_core::AuthorizationRequest;

use crate::html::{escape, page};

/// Human descriptions of the examples' scopes for the consent screen.
pub fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "todo:read" => "Read your todo list.",
        "todo:write" => "Add, complete and delete your todos (includes reading them).",
        "offline_access" => "Stay connected between sessions (this server allows it for every connection).",
        _ => "A permission this server does not describe.",
    }
}

/// The client as the pages name it: its self-chosen name, else its id.
pub fn client_label(request: &AuthorizationRequest) -> String {
    match request.client_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => request.client_id.clone(),
    }
}

fn hidden_fields(id: &str, csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"request\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(id),
        escape(csrf)
    )
}

/// A page that explains why the flow cannot go on (`heading` and `detail`
/// are plain text).
pub fn error_page(heading: &str, detail: &str) -> String {
    let body = format!(
        "<h1>{}</h1><p>{}</p><p class=\"muted\">Return to the application you came from and start the \
         connection again.</p>",
        escape(heading),
        escape(detail)
    );
    page(heading, &body)
}

/// The sign-in page for the pending authorization `id` (with its CSRF
/// token), posting to `action`.
///
/// `error` (plain text) is shown above the form after a failed attempt, and
/// `username` is filled in again. `demo_account`, when the built-in
/// `demo:demo` account is active, is HTML telling how to replace it; it
/// follows the notice naming the account. Serve the page with 401 when
/// `error` is given, 200 otherwise.
pub fn login_page(
    request: &AuthorizationRequest,
    action: &str,
    id: &str,
    csrf: &str,
    error: Option<&str>,
    username: &str,
    demo_account: Option<&str>,
) -> String {
    let client = escape(&client_label(request));
    let demo = demo_account
        .map(|replace| {
            format!(
                "<div class=\"warn\"><b>Development server.</b> Built-in account: username <code>demo</code>, \
                 password <code>demo</code>. {replace}</div>"
            )
        })
        .unwrap_or_default();
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    // Sign in comes first in the markup because Enter submits a form with
    // its first button; CSS shows it on the right.
    let autofocus_user = if username.is_empty() { " autofocus" } else { "" };
    let autofocus_password = if username.is_empty() { "" } else { " autofocus" };
    let body = format!(
        "<h1>Sign in</h1>\
         <p class=\"muted\">to let <b>{client}</b> use your todo list</p>\
         {demo}{error}\
         <form method=\"post\" action=\"{action}\">{hidden}\
         <label for=\"username\">Username</label>\
         <input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" \
         spellcheck=\"false\" required value=\"{username}\"{autofocus_user}>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" \
         required{autofocus_password}>\
         <div class=\"actions reverse\">\
         <button class=\"primary\" type=\"submit\" name=\"action\" value=\"login\">Sign in</button>\
         <button type=\"submit\" name=\"action\" value=\"cancel\" formnovalidate>Cancel</button>\
         </div></form>",
        action = escape(action),
        hidden = hidden_fields(id, csrf),
        username = escape(username),
    );
    page("Sign in", &body)
}

/// The consent page for the pending authorization `id` (with its CSRF
/// token), shown to `user` and posting to `action`.
pub fn consent_page(request: &AuthorizationRequest, user: &str, action: &str, id: &str, csrf: &str) -> String {
    let client = escape(&client_label(request));
    let scopes = if request.scope.is_empty() {
        "<p>It asks for no permissions: it will only be able to see who you are.</p>".to_owned()
    } else {
        let items: String = request
            .scope
            .iter()
            .map(|s| {
                format!(
                    "<li><label><input type=\"checkbox\" name=\"scope\" value=\"{s}\" checked>\
                     <span><code>{s}</code><br><span class=\"muted\">{d}</span></span></label></li>",
                    s = escape(s),
                    d = escape(describe_scope(s)),
                )
            })
            .collect();
        format!("<p>It asks to:</p><ul class=\"scopes\">{items}</ul>")
    };
    let host = request.redirect_host().unwrap_or_else(|| request.redirect_uri.clone());
    let name_note = if request.client_name.is_some() {
        "<p class=\"muted\">Applications choose their own names. Approve only if you started this connection \
         and recognise where you will be sent.</p>"
    } else {
        ""
    };
    // Deny comes first in the markup, so a stray Enter denies.
    let body = format!(
        "<h1>Authorize {client}</h1>\
         <p class=\"muted\">Signed in as <b>{user}</b></p>\
         <form method=\"post\" action=\"{action}\">{hidden}\
         <p><b>{client}</b> wants to use your todo list on this server.</p>\
         {scopes}\
         <p>Afterwards you will be sent to <span class=\"host\">{host}</span>.</p>\
         {name_note}\
         <p class=\"muted\">Client ID: <code>{client_id}</code></p>\
         <div class=\"actions\">\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
         </div></form>",
        user = escape(user),
        action = escape(action),
        hidden = hidden_fields(id, csrf),
        host = escape(&host),
        client_id = escape(&request.client_id),
    );
    page(&format!("Authorize {}", client_label(request)), &body)
}

/// `GET /`: where to point an MCP client. `stack` (plain text) names what
/// the server runs on, `mcp_url` is its MCP endpoint.
pub fn home_page(stack: &str, mcp_url: &str) -> String {
    let url = escape(mcp_url);
    let body = format!(
        "<h1>Todo MCP server</h1>\
         <p>An MCP server protected by OAuth 2.1 ({stack}). Connect an MCP client to:</p>\
         <pre>{url}</pre>\
         <p><b>MCP Inspector:</b> run <code>npx @modelcontextprotocol/inspector</code>, choose transport \
         <i>Streamable HTTP</i>, enter the URL above and connect.</p>\
         <p><b>Claude Code:</b></p><pre>claude mcp add --transport http demo {url}</pre>\
         <p class=\"muted\">The client registers itself, sends you to this server's sign-in page, and gets a \
         token for your todo list.</p>",
        stack = escape(stack),
    );
    page("Todo MCP server", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_and_home_pages_escape_their_text() {
        let html = error_page("<h>", "a & b");
        assert!(html.contains("<h1>&lt;h&gt;</h1><p>a &amp; b</p>"), "{html}");
        assert!(html.contains("<title>&lt;h&gt;</title>"), "{html}");
        let html = home_page("oauth-core", "https://x.test/mcp?a=1&b=2");
        assert!(html.contains("OAuth 2.1 (oauth-core). Connect an MCP client to:"), "{html}");
        assert!(html.contains("<pre>https://x.test/mcp?a=1&amp;b=2</pre>"), "{html}");
    }

    #[test]
    fn scopes_have_descriptions() {
        assert_eq!(describe_scope("todo:read"), "Read your todo list.");
        assert_eq!(describe_scope("other"), "A permission this server does not describe.");
    }
}
