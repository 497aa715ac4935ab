//! [`Secret`]: a password or token that is never printed.

use std::fmt;

/// A secret value (password, token): `Debug` prints `***` and there is no `Display`, so
/// it cannot reach a log line or an error message by accident.
///
/// ```
/// let password = wharf::adapter::secret::Secret::new("s3cret");
/// assert_eq!(format!("{password:?}"), "***");
/// assert_eq!(password.expose(), "s3cret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for handing to the client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
