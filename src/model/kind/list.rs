//! The one list of kinds: what every kind has alike ([`Common`], written by `common!`), a
//! value per kind typed by the kind ([`PerKind`]), and the visitors generic code iterates the
//! kinds with. Adding a kind adds one line to each list here (and a variant to [`Reading`]).

use std::fmt;

use super::{KindInfo, ReadingKind};
use crate::model::{ApiReading, HostReading, Reading, ReadingId, ServiceName, TimestampMs};

/// What every kind has alike, written once by `common!` for each: its [`Head`] fields (every
/// kind's struct has `id`, `service` and `timestamp`), and its place in the lists of this file
/// (its [`PerKind`] entry and its [`Reading`] variant).
pub trait Common: Sized {
    /// The id fixed at acceptance.
    fn id(&self) -> ReadingId;

    /// The service.
    fn service(&self) -> &ServiceName;

    /// The reading's time.
    fn timestamp(&self) -> TimestampMs;

    /// This kind's entry of `all`.
    fn pick<F: Family>(all: &PerKind<F>) -> &F::Of<Self>
    where
        Self: ReadingKind;

    /// This kind's entry of `all`, to change.
    fn pick_mut<F: Family>(all: &mut PerKind<F>) -> &mut F::Of<Self>
    where
        Self: ReadingKind;

    /// As the enum the WAL stores.
    fn into_reading(self) -> Reading;
}

/// [`Common`] for kind `$kind`, listed as field `$entry` of [`PerKind`] and variant `$variant`
/// of [`Reading`].
macro_rules! common {
    ($kind:ty, $entry:ident, $variant:ident) => {
        impl Common for $kind {
            fn id(&self) -> ReadingId {
                self.id
            }

            fn service(&self) -> &ServiceName {
                &self.service
            }

            fn timestamp(&self) -> TimestampMs {
                self.timestamp
            }

            fn pick<F: Family>(all: &PerKind<F>) -> &F::Of<Self> {
                &all.$entry
            }

            fn pick_mut<F: Family>(all: &mut PerKind<F>) -> &mut F::Of<Self> {
                &mut all.$entry
            }

            fn into_reading(self) -> Reading {
                Reading::$variant(self)
            }
        }
    };
}

common!(ApiReading, api, Api);
common!(HostReading, host, Host);

/// A type per kind: `Of<K>` is what a [`PerKind`] holds for kind `K`.
pub trait Family {
    /// The value for kind `K`.
    type Of<K: ReadingKind>;
}

/// One value per kind, typed by the kind: the one list of kinds that generic code iterates.
pub struct PerKind<F: Family> {
    /// For API readings.
    pub api: F::Of<ApiReading>,
    /// For host readings.
    pub host: F::Of<HostReading>,
}

/// Nothing per kind: [`KINDS`] visits the kinds themselves.
#[derive(Debug)]
pub enum Kinds {}

impl Family for Kinds {
    type Of<K: ReadingKind> = ();
}

/// Every kind, as types: `KINDS.each(&mut work)` runs `work` once per kind.
pub const KINDS: PerKind<Kinds> = PerKind { api: (), host: () };

/// Work done for every kind's entry of a [`PerKind`], in turn.
pub trait EachKind<'a, F: Family> {
    /// Called with kind `K`'s entry.
    fn each<K: ReadingKind>(&mut self, entry: &'a F::Of<K>);
}

/// Work done for every kind's entry of a [`PerKind`], which it may change.
pub trait EachKindMut<F: Family> {
    /// Called with kind `K`'s entry.
    fn each<K: ReadingKind>(&mut self, entry: &mut F::Of<K>);
}

impl<F: Family> PerKind<F> {
    /// Kind `K`'s entry.
    pub fn get<K: ReadingKind>(&self) -> &F::Of<K> {
        K::pick(self)
    }

    /// Kind `K`'s entry, to change.
    pub fn get_mut<K: ReadingKind>(&mut self) -> &mut F::Of<K> {
        K::pick_mut(self)
    }

    /// Runs `work` on every kind's entry.
    pub fn each<'a>(&'a self, work: &mut impl EachKind<'a, F>) {
        work.each::<ApiReading>(&self.api);
        work.each::<HostReading>(&self.host);
    }

    /// Runs `work` on every kind's entry, which it may change.
    pub fn each_mut(&mut self, work: &mut impl EachKindMut<F>) {
        work.each::<ApiReading>(&mut self.api);
        work.each::<HostReading>(&mut self.host);
    }
}

impl<F: Family> Default for PerKind<F>
where
    F::Of<ApiReading>: Default,
    F::Of<HostReading>: Default,
{
    fn default() -> Self {
        Self {
            api: Default::default(),
            host: Default::default(),
        }
    }
}

impl<F: Family> fmt::Debug for PerKind<F>
where
    F::Of<ApiReading>: fmt::Debug,
    F::Of<HostReading>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerKind")
            .field("api", &self.api)
            .field("host", &self.host)
            .finish()
    }
}

/// Receives a reading as its own kind (see [`Reading::into_kind`]).
pub trait TakeKind {
    /// Called with the reading.
    fn take<K: ReadingKind>(&mut self, reading: K);
}

/// Looks at a reading as its own kind (see [`Reading::see`]).
pub trait SeeKind {
    /// Called with the reading.
    fn see<K: ReadingKind>(&mut self, reading: &K);
}

impl Reading {
    /// Shows the reading to `viewer` as its own kind.
    pub fn see(&self, viewer: &mut impl SeeKind) {
        match self {
            Reading::Api(r) => viewer.see(r),
            Reading::Host(r) => viewer.see(r),
        }
    }

    /// Hands the reading to `sink` as its own kind.
    pub fn into_kind(self, sink: &mut impl TakeKind) {
        match self {
            Reading::Api(r) => sink.take(r),
            Reading::Host(r) => sink.take(r),
        }
    }

    /// The service of the reading.
    pub fn service(&self) -> &ServiceName {
        match self {
            Reading::Api(r) => r.service(),
            Reading::Host(r) => r.service(),
        }
    }

    /// The declaration of the reading's kind.
    pub fn kind(&self) -> &'static KindInfo {
        match self {
            Reading::Api(_) => ApiReading::INFO,
            Reading::Host(_) => HostReading::INFO,
        }
    }
}
