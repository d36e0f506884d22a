//! [`LoadError`]: why a loading call returned no value.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Why a loading call ([`try_get_with`](crate::Tenant::try_get_with),
/// [`load`](crate::Tenant::load), [`refresh`](crate::Tenant::refresh))
/// returned no value.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub enum LoadError<E> {
    /// The loader returned `Err` (after every retry). Every caller that
    /// shared the load gets the same `Arc`.
    Failed(Arc<E>),
    /// This caller's deadline passed before a value was available.
    Timeout,
    /// The load this caller waited on panicked (the panic itself went to
    /// the caller whose thread ran the loader).
    Panicked,
    /// The loader asked, on its own thread, for the key it is loading.
    Recursive,
}

impl<E> LoadError<E> {
    /// Whether the loader returned an error.
    pub fn is_failed(&self) -> bool {
        matches!(self, LoadError::Failed(_))
    }

    /// Whether the deadline passed first.
    pub fn is_timeout(&self) -> bool {
        matches!(self, LoadError::Timeout)
    }

    /// Whether the shared load panicked.
    pub fn is_panicked(&self) -> bool {
        matches!(self, LoadError::Panicked)
    }

    /// Whether a loader asked for its own key.
    pub fn is_recursive(&self) -> bool {
        matches!(self, LoadError::Recursive)
    }

    /// The loader's error, if that is why.
    pub fn failure(&self) -> Option<&Arc<E>> {
        match self {
            LoadError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            LoadError::Failed(e) => LoadError::Failed(e.clone()),
            LoadError::Timeout => LoadError::Timeout,
            LoadError::Panicked => LoadError::Panicked,
            LoadError::Recursive => LoadError::Recursive,
        }
    }
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Failed(e) => write!(f, "load failed: {e}"),
            LoadError::Timeout => f.write_str("deadline passed before the load finished"),
            LoadError::Panicked => f.write_str("the shared load panicked"),
            LoadError::Recursive => f.write_str("loader asked for the key it is loading"),
        }
    }
}

impl<E: Error + 'static> Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            LoadError::Failed(e) => Some(&**e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LoadError;
    use std::sync::Arc;

    #[test]
    fn each_kind_answers_only_its_own_question() {
        let kinds = [
            LoadError::Failed(Arc::new("down")),
            LoadError::Timeout,
            LoadError::Panicked,
            LoadError::Recursive,
        ];
        for (i, e) in kinds.iter().enumerate() {
            let answers = [
                e.is_failed(),
                e.is_timeout(),
                e.is_panicked(),
                e.is_recursive(),
            ];
            assert_eq!(answers, [i == 0, i == 1, i == 2, i == 3], "{i}");
            assert_eq!(e.failure().is_some(), i == 0);
        }
    }
}
