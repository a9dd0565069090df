//! The iterators of [`Pool::imap`](super::Pool::imap) and
//! [`Pool::imap_unordered`](super::Pool::imap_unordered).

use std::sync::mpsc::Receiver;

use serde::de::DeserializeOwned;

use super::error::TaskError;
use super::task::Task;

/// The results of [`Pool::imap`](super::Pool::imap), in the order of the
/// arguments, each as soon as it and those before it are done.
#[derive(Debug)]
pub struct Imap<R> {
    pub(super) tasks: std::vec::IntoIter<Task<R>>,
}

impl<R> Imap<R> {
    /// The results of `tasks`, in order.
    #[cfg(feature = "redis")]
    pub(crate) fn of(tasks: Vec<Task<R>>) -> Self {
        Imap {
            tasks: tasks.into_iter(),
        }
    }
}

impl<R: DeserializeOwned> Iterator for Imap<R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.tasks.next().map(|t| t.get())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.tasks.size_hint()
    }
}

/// The results of [`Pool::imap_unordered`](super::Pool::imap_unordered),
/// in the order the tasks finish.
#[derive(Debug)]
pub struct ImapUnordered<R> {
    pub(super) tasks: Vec<Task<R>>,
    /// The index of each task as it finishes (every task's outcome is set
    /// once, also when the pool breaks or is terminated).
    pub(super) done: Receiver<usize>,
    pub(super) left: usize,
}

impl<R> ImapUnordered<R> {
    /// The results of `tasks` as `done` names them (each task's cell sends
    /// its index there when set).
    #[cfg(feature = "redis")]
    pub(crate) fn of(tasks: Vec<Task<R>>, done: Receiver<usize>) -> Self {
        ImapUnordered {
            left: tasks.len(),
            tasks,
            done,
        }
    }
}

impl<R: DeserializeOwned> Iterator for ImapUnordered<R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let i = self.done.recv().ok()?;
        self.left -= 1;
        Some(self.tasks[i].get())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}
