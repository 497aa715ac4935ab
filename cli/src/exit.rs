//! How `wharf` ends: one line on stderr and an exit code an operator's script can test.
//!
//! | code | meaning |
//! |---:|---|
//! | 0 | done |
//! | 1 | done in part: some dead letters could not be replayed or removed (each is named) |
//! | 2 | bad usage or configuration (an unknown option, a URL that does not parse, a bad filter; for `status` a bad duration or window, a NATS Core URL) |
//! | 3 | the broker could not be reached, or refused the credentials |
//! | 4 | not found: the dead-letter destination does not exist, no dead letter has that id, or (`status`) the group's queue, topic, stream or durable does not exist |
//! | 5 | cancelled at the confirmation prompt |
//! | 6 | `wharf status --check`: the verdict is not `ok` (printed as usual) |

use std::fmt;
use std::process::ExitCode;

/// Why `wharf` stopped short, with the exit code it maps to. Its text is one line and
/// never holds a URL or a password (wharf's errors never repeat either).
#[derive(Debug)]
pub enum Failure {
    /// Bad usage or configuration (exit code 2).
    Usage(String),
    /// The broker could not be reached or refused us (exit code 3).
    Unreachable(String),
    /// The destination or the dead letter is not there (exit code 4).
    NotFound(String),
    /// Some dead letters failed, the others were handled (exit code 1).
    Partial(String),
    /// The operator answered no at the prompt (exit code 5).
    Cancelled,
    /// `wharf status --check` found a verdict other than `ok` (exit code 6).
    NotOk(String),
}

impl Failure {
    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Partial(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
            Failure::NotFound(_) => 4,
            Failure::Cancelled => 5,
            Failure::NotOk(_) => 6,
        }
    }

    /// The exit code as `main` returns it.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(s)
            | Failure::Unreachable(s)
            | Failure::NotFound(s)
            | Failure::Partial(s)
            | Failure::NotOk(s) => {
                // One line: an error's text may span several.
                f.write_str(&s.replace('\n', " "))
            }
            Failure::Cancelled => f.write_str("cancelled: nothing was changed"),
        }
    }
}

impl From<wharf::Error> for Failure {
    fn from(e: wharf::Error) -> Self {
        let text = e.to_string();
        match e {
            wharf::Error::Config { .. } => Failure::Usage(text),
            wharf::Error::Connection(_) => Failure::Unreachable(text),
            wharf::Error::Subscribe(_) => Failure::NotFound(text),
            _ => Failure::Partial(text),
        }
    }
}
