//! Tenant identifiers: owned ([`TenantId`]) and borrowed for lookups
//! ([`TenantKey`]), hashed identically so `cache.tenant("acme")` finds an
//! existing tenant without allocating.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The identity of a tenant: a number or a name.
///
/// `TenantId::from(7u64)` and `TenantId::from("7")` are different tenants.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TenantId(Repr);

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Repr {
    Num(u64),
    Name(Arc<str>),
}

/// A borrowed view used for hashing and comparing both forms alike.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IdRef<'a> {
    Num(u64),
    Name(&'a str),
}

impl TenantId {
    /// The name, if this id was made from a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Repr::Name(s) => Some(s),
            Repr::Num(_) => None,
        }
    }

    /// The number, if this id was made from a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            Repr::Num(n) => Some(n),
            Repr::Name(_) => None,
        }
    }

    pub(crate) fn as_ref(&self) -> IdRef<'_> {
        match &self.0 {
            Repr::Num(n) => IdRef::Num(*n),
            Repr::Name(s) => IdRef::Name(s),
        }
    }

    fn from_ref(r: IdRef<'_>) -> Self {
        match r {
            IdRef::Num(n) => TenantId(Repr::Num(n)),
            IdRef::Name(s) => TenantId(Repr::Name(Arc::from(s))),
        }
    }
}

impl Hash for TenantId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Num(n) => write!(f, "TenantId({n})"),
            Repr::Name(s) => write!(f, "TenantId({s:?})"),
        }
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Num(n) => write!(f, "{n}"),
            Repr::Name(s) => f.write_str(s),
        }
    }
}

impl From<u64> for TenantId {
    fn from(n: u64) -> Self {
        TenantId(Repr::Num(n))
    }
}

impl From<&str> for TenantId {
    fn from(s: &str) -> Self {
        TenantId(Repr::Name(Arc::from(s)))
    }
}

impl From<String> for TenantId {
    fn from(s: String) -> Self {
        TenantId(Repr::Name(Arc::from(s)))
    }
}

impl From<&TenantId> for TenantId {
    fn from(id: &TenantId) -> Self {
        id.clone()
    }
}

/// Anything [`Cache::tenant`](crate::Cache::tenant) accepts: `&str`,
/// `String`, `&String`, `u64` or a [`TenantId`].
///
/// Looking up an existing tenant through a borrowed form allocates nothing.
#[derive(Debug, Clone)]
pub struct TenantKey<'a>(KeyRepr<'a>);

#[derive(Debug, Clone)]
enum KeyRepr<'a> {
    Borrowed(IdRef<'a>),
    Owned(TenantId),
}

impl fmt::Debug for IdRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdRef::Num(n) => write!(f, "{n}"),
            IdRef::Name(s) => write!(f, "{s:?}"),
        }
    }
}

impl<'a> TenantKey<'a> {
    pub(crate) fn as_ref(&self) -> IdRef<'_> {
        match &self.0 {
            KeyRepr::Borrowed(r) => *r,
            KeyRepr::Owned(id) => id.as_ref(),
        }
    }

    pub(crate) fn into_owned(self) -> TenantId {
        match self.0 {
            KeyRepr::Borrowed(r) => TenantId::from_ref(r),
            KeyRepr::Owned(id) => id,
        }
    }
}

impl<'a> From<&'a str> for TenantKey<'a> {
    fn from(s: &'a str) -> Self {
        TenantKey(KeyRepr::Borrowed(IdRef::Name(s)))
    }
}

impl<'a> From<&'a String> for TenantKey<'a> {
    fn from(s: &'a String) -> Self {
        TenantKey(KeyRepr::Borrowed(IdRef::Name(s)))
    }
}

impl From<String> for TenantKey<'_> {
    fn from(s: String) -> Self {
        TenantKey(KeyRepr::Owned(TenantId::from(s)))
    }
}

impl From<u64> for TenantKey<'_> {
    fn from(n: u64) -> Self {
        TenantKey(KeyRepr::Borrowed(IdRef::Num(n)))
    }
}

impl From<TenantId> for TenantKey<'_> {
    fn from(id: TenantId) -> Self {
        TenantKey(KeyRepr::Owned(id))
    }
}

impl<'a> From<&'a TenantId> for TenantKey<'a> {
    fn from(id: &'a TenantId) -> Self {
        TenantKey(KeyRepr::Borrowed(id.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_are_distinct_tenants() {
        assert_ne!(TenantId::from(7), TenantId::from("7"));
        assert_eq!(TenantId::from("a"), TenantId::from(String::from("a")));
        assert_eq!(TenantId::from(7).to_string(), "7");
        assert_eq!(TenantId::from("acme").as_str(), Some("acme"));
        assert_eq!(TenantId::from(9).as_u64(), Some(9));
    }

    #[test]
    fn borrowed_and_owned_keys_agree() {
        let id = TenantId::from("acme");
        assert!(TenantKey::from("acme").as_ref() == id.as_ref());
        assert_eq!(TenantKey::from(String::from("acme")).into_owned(), id);
        assert_eq!(TenantKey::from(&id).into_owned(), id);
    }
}
