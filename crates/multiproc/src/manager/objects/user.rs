//! User types: the [`ManagedObject`] trait they implement (a name-based
//! surface: allow-listed method names, one serde argument), the
//! [`TypeRegistry`] that names them, and [`User`], the adapter that serves
//! them through [`ServerObject`] like the built-in kinds.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::{Args, Cell, Ctx, ServerObject};
use crate::manager::error::{RemoteError, TypeError};
use crate::manager::value::DataValue;

/// Why a user type's method failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The arguments do not fit the method.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The method ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// A user type served by a manager: Python's `BaseManager.register`, with
/// the code compiled into the server and reached only by allow-listed
/// method names.
///
/// ```
/// use multiproc::manager::{CallError, DataValue, ManagedObject, from_value, to_value};
///
/// struct Accumulator(i64);
///
/// impl ManagedObject for Accumulator {
///     fn methods(&self) -> &'static [&'static str] {
///         &["add", "total"]
///     }
///     fn call(&mut self, method: &str, args: DataValue) -> Result<DataValue, CallError> {
///         match method {
///             "add" => {
///                 let n: i64 = from_value(args).map_err(|e| CallError::BadArguments(e.to_string()))?;
///                 self.0 += n;
///                 Ok(DataValue::Int(self.0))
///             }
///             "total" => Ok(DataValue::Int(self.0)),
///             _ => unreachable!("only allow-listed names are dispatched"),
///         }
///     }
/// }
/// ```
pub trait ManagedObject: Send + 'static {
    /// The methods clients may call; any other name is refused with
    /// [`RemoteError::UnknownMethod`] before [`call`](Self::call) runs.
    fn methods(&self) -> &'static [&'static str];

    /// Run `method` (one of [`methods`](Self::methods)) with `args`.
    fn call(&mut self, method: &str, args: DataValue) -> Result<DataValue, CallError>;
}

/// Makes a user object from the client's creation argument.
pub type Factory = fn(DataValue) -> Result<Box<dyn ManagedObject>, CallError>;

/// The user types a server can create, by name.
#[derive(Clone, Default)]
pub struct TypeRegistry {
    types: HashMap<String, Factory>,
}

impl fmt::Debug for TypeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.types.keys().collect();
        names.sort();
        f.debug_struct("TypeRegistry")
            .field("types", &names)
            .finish()
    }
}

impl TypeRegistry {
    /// An empty registry.
    pub fn new() -> TypeRegistry {
        TypeRegistry::default()
    }

    /// Serve type `name`, made by `factory`.
    pub fn register(&mut self, name: &str, factory: Factory) -> &mut Self {
        self.types.insert(name.to_owned(), factory);
        self
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }

    /// The factory of `name`.
    pub(crate) fn factory(&self, name: &str) -> Option<Factory> {
        self.types.get(name).copied()
    }
}

/// A user object, served like a built-in one.
pub(crate) struct User {
    inner: Box<dyn ManagedObject>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("methods", &self.inner.methods())
            .finish_non_exhaustive()
    }
}

impl User {
    /// Serve `inner`.
    pub(crate) fn new(inner: Box<dyn ManagedObject>) -> User {
        User { inner }
    }
}

/// A call of a user type's method: an allow-listed name, and the first
/// argument (null if there is none).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserCall {
    /// One of the type's [`ManagedObject::methods`].
    pub(crate) method: String,
    /// The argument.
    pub(crate) args: DataValue,
}

impl ServerObject for User {
    type Op = UserCall;

    fn parse(
        &self,
        method: &str,
        mut a: Args,
        _timeout: Option<Duration>,
    ) -> Result<Option<UserCall>, RemoteError> {
        Ok(self.inner.methods().contains(&method).then(|| UserCall {
            method: method.to_owned(),
            args: a.value_or_null(),
        }))
    }

    fn apply(cell: &Cell<Self>, op: UserCall, _cx: &mut Ctx<'_>) -> Result<DataValue, RemoteError> {
        cell.lock()
            .inner
            .call(&op.method, op.args)
            .map_err(|e| match e {
                CallError::BadArguments(m) => RemoteError::Type(TypeError::BadArguments(m)),
                CallError::Failed(m) => RemoteError::User(m),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::testing::{parse, run};

    struct Counter(i64);

    impl ManagedObject for Counter {
        fn methods(&self) -> &'static [&'static str] {
            &["add", "fail"]
        }

        fn call(&mut self, method: &str, args: DataValue) -> Result<DataValue, CallError> {
            match method {
                "add" => {
                    let n = args
                        .as_i64()
                        .ok_or_else(|| CallError::BadArguments("an integer".into()))?;
                    self.0 += n;
                    Ok(DataValue::Int(self.0))
                }
                _ => Err(CallError::Failed(format!("{method} failed"))),
            }
        }
    }

    fn call(method: &str, args: DataValue) -> UserCall {
        UserCall {
            method: method.into(),
            args,
        }
    }

    #[test]
    fn only_allow_listed_names_parse() {
        let u = User::new(Box::new(Counter(0)));
        assert_eq!(
            parse(&u, "add", vec![DataValue::Int(1), DataValue::Int(2)]),
            Ok(Some(call("add", DataValue::Int(1))))
        );
        assert_eq!(
            parse(&u, "fail", vec![]),
            Ok(Some(call("fail", DataValue::Null)))
        );
        assert_eq!(parse(&u, "drop", vec![]), Ok(None));
        assert_eq!(parse(&u, "__class__", vec![]), Ok(None));
    }

    #[test]
    fn the_methods_own_errors_come_back_typed() {
        let cell = Cell::new(User::new(Box::new(Counter(10))));
        assert_eq!(
            run(&cell, call("add", DataValue::Int(5))),
            Ok(DataValue::Int(15))
        );
        assert_eq!(
            run(&cell, call("add", DataValue::Str("x".into()))),
            Err(TypeError::BadArguments("an integer".into()).into())
        );
        assert_eq!(
            run(&cell, call("fail", DataValue::Null)),
            Err(RemoteError::User("fail failed".into()))
        );
    }

    #[test]
    fn the_registry_names_factories() {
        fn make(args: DataValue) -> Result<Box<dyn ManagedObject>, CallError> {
            Ok(Box::new(Counter(args.as_i64().unwrap_or(0))))
        }
        let mut r = TypeRegistry::new();
        r.register("Counter", make);
        assert!(r.contains("Counter") && !r.contains("Shell"));
        assert!(r.factory("Counter").is_some() && r.factory("Shell").is_none());
        assert_eq!(format!("{r:?}"), "TypeRegistry { types: [\"Counter\"] }");
    }
}
