//! The pages' form posts and query strings.

/// A parsed `application/x-www-form-urlencoded` body or query string.
///
/// ```
/// let form = demo_ui::Form::parse(b"scope=a&csrf=x%20y&scope=b");
/// assert_eq!(form.get("csrf"), Some("x y"));
/// assert_eq!(form.all("scope").collect::<Vec<_>>(), ["a", "b"]);
/// ```
#[derive(Debug)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parse `bytes`; malformed escapes are kept as they are, as browsers do.
    pub fn parse(bytes: &[u8]) -> Self {
        Self(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (ticked checkboxes).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}
