//! User types served by a manager: the [`ManagedObject`] trait, the factories
//! that make them, and the registry of their names.

use std::collections::HashMap;
use std::fmt;

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
    /// [`RemoteError::UnknownMethod`](crate::manager::RemoteError::UnknownMethod) before [`call`](Self::call) runs.
    fn methods(&self) -> &'static [&'static str];

    /// Run `method` (one of [`methods`](Self::methods)) with `args`.
    fn call(&mut self, method: &str, args: DataValue) -> Result<DataValue, CallError>;
}

/// Makes a user object from the client's creation argument.
pub type Factory = fn(DataValue) -> Result<Box<dyn ManagedObject>, CallError>;

/// The user types a server can create, by name.
#[derive(Clone, Default)]
pub struct TypeRegistry {
    pub(super) types: HashMap<String, Factory>,
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
}
