//! Escaping and the one layout every page uses.
//!
//! Pages are assembled with `format!`, so every value that did not come from
//! this crate goes through [`escape`] first: client names, redirect hosts and
//! usernames are chosen by whoever registers a client or types in a form.

/// Escape text for an HTML text node or a double- or single-quoted attribute.
///
/// ```
/// assert_eq!(demo_ui::escape(r#"<b a='1'>"&"#), "&lt;b a=&#39;1&#39;&gt;&quot;&amp;");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Inline so the page needs no other request and works offline; the
/// examples' CSP allows inline styles and nothing else.
const CSS: &str = r#"
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --bg: #f6f8fa; --card: #fff;
  --border: #d0d7de; --accent: #0969da; --accent-fg: #fff; --danger: #cf222e; --warn-bg: #fff8c5;
  --warn-border: #d4a72c; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #8d96a0; --bg: #0d1117; --card: #161b22;
  --border: #30363d; --accent: #2f81f7; --warn-bg: #3b2e00; --warn-border: #9e6a03; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); display: flex; justify-content: center; padding: 48px 16px; }
main { width: 100%; max-width: 440px; background: var(--card); border: 1px solid var(--border); border-radius: 12px;
  padding: 28px 28px 24px; box-shadow: 0 1px 3px rgba(0,0,0,.06); }
h1 { font-size: 20px; margin: 0 0 4px; }
p { margin: 8px 0; }
.muted { color: var(--muted); font-size: 13px; }
label { display: block; font-weight: 600; margin: 14px 0 4px; }
input[type=text], input[type=password] { width: 100%; padding: 8px 10px; font: inherit; color: inherit;
  background: var(--bg); border: 1px solid var(--border); border-radius: 6px; }
input:focus { outline: 2px solid var(--accent); outline-offset: 0; }
.actions { display: flex; gap: 10px; margin-top: 22px; }
.actions.reverse { flex-direction: row-reverse; }
button { flex: 1; padding: 9px 14px; font: inherit; font-weight: 600; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--border); background: var(--bg); color: var(--fg); }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-fg); }
.error { color: var(--danger); font-weight: 600; }
.warn { background: var(--warn-bg); border: 1px solid var(--warn-border); border-radius: 6px; padding: 8px 10px;
  font-size: 13px; margin: 12px 0; }
.scopes { list-style: none; padding: 0; margin: 12px 0; border: 1px solid var(--border); border-radius: 8px; }
.scopes li { padding: 10px 12px; border-top: 1px solid var(--border); }
.scopes li:first-child { border-top: 0; }
.scopes label { display: flex; gap: 10px; margin: 0; font-weight: normal; align-items: flex-start; }
.scopes code { font-weight: 600; }
.scopes input { margin-top: 4px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
pre { white-space: pre-wrap; word-break: break-all; background: var(--bg); border: 1px solid var(--border);
  border-radius: 6px; padding: 8px 10px; }
.host { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-weight: 600; }
"#;

/// A whole page titled `title` (plain text, escaped here) around `body`
/// (which must already be escaped HTML).
pub fn page(title: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{CSS}</style></head>\
         <body><main>{body}</main></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_both_quotes() {
        assert_eq!(escape(r#"<b a='1'>"&"#), "&lt;b a=&#39;1&#39;&gt;&quot;&amp;");
        assert!(page("<t>", "x").contains("<title>&lt;t&gt;</title>"));
    }
}
