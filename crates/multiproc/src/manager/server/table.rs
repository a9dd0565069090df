//! The object table: live objects by id, the references each session holds,
//! loans to proxies in flight, and published names. An object lives while
//! anyone holds a reference to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::manager::error::{ProtocolError, RemoteError, TypeError};
use crate::manager::kind::ObjectKind;
use crate::manager::objects::{AnyObject, Kind};

/// How long a loan outlives its lender's session: a child that returns a
/// proxy and exits must not free the object before the parent claims it.
pub(super) const LOAN_GRACE: Duration = Duration::from_secs(30);

struct Entry {
    obj: Arc<dyn AnyObject>,
    refs: u64,
}

/// A reference lent to a proxy in flight to another process.
struct Loan {
    session: u64,
    id: u64,
    /// When the lender's session ended (the loan then lasts [`LOAN_GRACE`]).
    orphaned: Option<Instant>,
}

/// Objects and who holds them.
#[derive(Default)]
pub(super) struct Table {
    objects: HashMap<u64, Entry>,
    next_id: u64,
    /// References each live session holds: object id -> count.
    sessions: HashMap<u64, HashMap<u64, u64>>,
    /// Loans: token -> loan.
    loans: HashMap<u64, Loan>,
    next_token: u64,
    names: HashMap<String, u64>,
}

impl Table {
    /// The object `id`.
    pub(super) fn object(&self, id: u64) -> Result<Arc<dyn AnyObject>, RemoteError> {
        self.objects
            .get(&id)
            .map(|e| e.obj.clone())
            .ok_or(RemoteError::UnknownObject(id))
    }

    /// Every live object.
    pub(super) fn objects(&self) -> Vec<Arc<dyn AnyObject>> {
        self.objects.values().map(|e| e.obj.clone()).collect()
    }

    /// Live objects, references held in total, live sessions.
    pub(super) fn counts(&self) -> (u64, u64, u64) {
        (
            self.objects.len() as u64,
            self.objects.values().map(|e| e.refs).sum(),
            self.sessions.len() as u64,
        )
    }

    /// A primary connection opens `session`.
    pub(super) fn open_session(&mut self, session: u64) -> Result<(), ProtocolError> {
        if self.sessions.contains_key(&session) {
            return Err(ProtocolError::DuplicatePrimary);
        }
        self.sessions.insert(session, HashMap::new());
        Ok(())
    }

    /// `session`'s primary connection closed: drop its references, and
    /// start the grace period of its loans.
    pub(super) fn end_session(&mut self, session: u64, now: Instant) {
        let refs = self.sessions.remove(&session).unwrap_or_default();
        for (id, n) in refs {
            for _ in 0..n {
                self.drop_ref(id);
            }
        }
        for loan in self.loans.values_mut() {
            if loan.session == session {
                loan.orphaned = Some(now);
            }
        }
        self.sweep_loans(now);
    }

    /// Drop the loans orphaned longer than [`LOAN_GRACE`] ago.
    pub(super) fn sweep_loans(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .loans
            .iter()
            .filter(|(_, l)| {
                l.orphaned
                    .is_some_and(|t| now.duration_since(t) >= LOAN_GRACE)
            })
            .map(|(k, _)| *k)
            .collect();
        for token in expired {
            if let Some(l) = self.loans.remove(&token) {
                self.drop_ref(l.id);
            }
        }
    }

    /// One more reference to `id` for `session`.
    pub(super) fn add_ref(&mut self, session: u64, id: u64) -> Result<(), RemoteError> {
        let entry = self
            .objects
            .get_mut(&id)
            .ok_or(RemoteError::UnknownObject(id))?;
        let refs = self
            .sessions
            .get_mut(&session)
            .ok_or(ProtocolError::NoPrimary)?;
        entry.refs += 1;
        *refs.entry(id).or_insert(0) += 1;
        Ok(())
    }

    /// Drop one reference (already removed from its holder's books).
    fn drop_ref(&mut self, id: u64) {
        if let Some(e) = self.objects.get_mut(&id) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                if let Some(e) = self.objects.remove(&id) {
                    e.obj.wake();
                }
            }
        }
    }

    /// Add `obj`, with one reference for `session`; its id.
    pub(super) fn insert(
        &mut self,
        session: u64,
        obj: Arc<dyn AnyObject>,
    ) -> Result<u64, RemoteError> {
        if !self.sessions.contains_key(&session) {
            return Err(ProtocolError::NoPrimary.into());
        }
        self.next_id += 1;
        let id = self.next_id;
        self.objects.insert(id, Entry { obj, refs: 0 });
        self.add_ref(session, id)?;
        Ok(id)
    }

    /// The object published as `name` (made by `make` and published if
    /// there is none), with one reference for `session`; its id. The name
    /// keeps a reference of its own, for as long as the server runs.
    pub(super) fn named(
        &mut self,
        session: u64,
        name: String,
        kind: ObjectKind,
        make: impl FnOnce() -> Result<Arc<dyn AnyObject>, RemoteError>,
    ) -> Result<u64, RemoteError> {
        if let Some(id) = self.names.get(&name).copied() {
            let e = self
                .objects
                .get(&id)
                .ok_or(RemoteError::UnknownObject(id))?;
            if *e.obj.kind() != Kind::Builtin(kind) {
                return Err(TypeError::NamedKind {
                    kind: e.obj.kind().name().to_owned(),
                    name,
                }
                .into());
            }
            self.add_ref(session, id)?;
            return Ok(id);
        }
        let id = self.insert(session, make()?)?;
        self.names.insert(name, id);
        if let Some(e) = self.objects.get_mut(&id) {
            e.refs += 1;
        }
        Ok(id)
    }

    /// Drop one of `session`'s references to `id`.
    pub(super) fn dec_ref(&mut self, session: u64, id: u64) -> Result<(), RemoteError> {
        let held = self.sessions.get_mut(&session).and_then(|r| {
            let n = r.get_mut(&id)?;
            *n -= 1;
            if *n == 0 {
                r.remove(&id);
            }
            Some(())
        });
        match held {
            Some(()) => {
                self.drop_ref(id);
                Ok(())
            }
            None => Err(RemoteError::UnknownObject(id)),
        }
    }

    /// Lend a reference to `id` from `session`; the loan's token.
    pub(super) fn lend(&mut self, session: u64, id: u64) -> Result<u64, RemoteError> {
        if !self.sessions.contains_key(&session) {
            return Err(ProtocolError::NoPrimary.into());
        }
        let e = self
            .objects
            .get_mut(&id)
            .ok_or(RemoteError::UnknownObject(id))?;
        e.refs += 1;
        self.next_token += 1;
        let token = self.next_token;
        self.loans.insert(
            token,
            Loan {
                session,
                id,
                orphaned: None,
            },
        );
        Ok(token)
    }

    /// Move the loan `token` of `id` to `session` (or, with no such loan,
    /// take a new reference).
    pub(super) fn claim(&mut self, session: u64, id: u64, token: u64) -> Result<(), RemoteError> {
        match self.loans.get(&token).map(|l| l.id) {
            Some(lent) if lent == id => {
                let refs = self
                    .sessions
                    .get_mut(&session)
                    .ok_or(ProtocolError::NoPrimary)?;
                *refs.entry(id).or_insert(0) += 1;
                self.loans.remove(&token);
                Ok(())
            }
            _ => self.add_ref(session, id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects;
    use crate::manager::value::DataValue;

    fn dict() -> Arc<dyn AnyObject> {
        objects::new_builtin(ObjectKind::Dict, DataValue::Null).unwrap()
    }

    #[test]
    fn objects_live_while_referenced() {
        let mut t = Table::default();
        assert!(matches!(
            t.insert(1, dict()),
            Err(RemoteError::Protocol(ProtocolError::NoPrimary))
        ));
        t.open_session(1).unwrap();
        assert_eq!(t.open_session(1), Err(ProtocolError::DuplicatePrimary));
        t.open_session(2).unwrap();
        let id = t.insert(1, dict()).unwrap();
        t.add_ref(2, id).unwrap();
        assert_eq!(t.counts(), (1, 2, 2));
        t.dec_ref(1, id).unwrap();
        assert_eq!(t.dec_ref(1, id), Err(RemoteError::UnknownObject(id)));
        assert!(t.object(id).is_ok());
        t.end_session(2, Instant::now());
        assert_eq!(t.object(id).err(), Some(RemoteError::UnknownObject(id)));
        assert_eq!(t.counts(), (0, 0, 1));
        assert_eq!(t.add_ref(1, 99), Err(RemoteError::UnknownObject(99)));
    }

    #[test]
    fn loans_outlive_their_lender_for_the_grace_period() {
        let mut t = Table::default();
        t.open_session(1).unwrap();
        let id = t.insert(1, dict()).unwrap();
        let token = t.lend(1, id).unwrap();
        let unclaimed = t.lend(1, id).unwrap();
        let now = Instant::now();
        t.end_session(1, now);
        assert!(t.object(id).is_ok(), "the loans hold it");
        t.open_session(2).unwrap();
        t.claim(2, id, token).unwrap();
        // The other loan expires; the claimed reference holds the object.
        t.sweep_loans(now + LOAN_GRACE);
        assert_eq!(t.counts(), (1, 1, 1));
        t.dec_ref(2, id).unwrap();
        assert_eq!(t.counts(), (0, 0, 1));
        // A token that is not a loan of this object takes a new reference.
        assert_eq!(
            t.claim(2, id, unclaimed),
            Err(RemoteError::UnknownObject(id))
        );
        assert_eq!(t.lend(3, 1), Err(ProtocolError::NoPrimary.into()));
    }

    #[test]
    fn names_publish_one_object_of_one_kind() {
        let mut t = Table::default();
        t.open_session(1).unwrap();
        let a = t
            .named(1, "jobs".into(), ObjectKind::Dict, || Ok(dict()))
            .unwrap();
        let b = t
            .named(1, "jobs".into(), ObjectKind::Dict, || {
                panic!("not made twice")
            })
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            t.named(1, "jobs".into(), ObjectKind::Queue, || panic!("not made")),
            Err(TypeError::NamedKind {
                name: "jobs".into(),
                kind: "dict".into()
            }
            .into())
        );
        // The name's own reference keeps it after its sessions end.
        t.end_session(1, Instant::now());
        assert_eq!(t.counts(), (1, 1, 0));
    }
}
