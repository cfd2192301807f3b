//! Shared copies of names that repeat: a service, instance or path appears in thousands of
//! readings, and each reading used to own its own copies. Interned names are `Arc<str>`, so a
//! reading's names cost a reference count instead of an allocation each, on every path that
//! makes readings (request bodies, WAL records, rows read back).
//!
//! The table is per thread (no locking) and bounded in bytes per thread: past the bound it is
//! emptied and starts over. Names handed out stay valid; an unusual flood of distinct names only
//! costs allocations, as before.

use std::cell::RefCell;
use std::sync::Arc;

use hashbrown::HashSet;

/// Bytes of name text one thread keeps interned at most.
const MAX_INTERNED_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Table {
    names: HashSet<Arc<str>>,
    bytes: usize,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

/// The shared copy of `text`, made on first sight.
pub fn intern(text: &str) -> Arc<str> {
    TABLE.with(|table| {
        let mut table = table.borrow_mut();
        if let Some(found) = table.names.get(text) {
            return Arc::clone(found);
        }
        if table.bytes + text.len() > MAX_INTERNED_BYTES {
            table.names.clear();
            table.bytes = 0;
        }
        let shared: Arc<str> = Arc::from(text);
        table.bytes += text.len();
        table.names.insert(Arc::clone(&shared));
        shared
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_gives_the_same_allocation() {
        let a = intern("checkout");
        let b = intern(&String::from("checkout"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*intern("cart"), "cart");
    }

    #[test]
    fn the_table_starts_over_past_its_bound_and_old_names_stay_valid() {
        let first = intern("first-name");
        let long = "x".repeat(1024);
        for i in 0..(MAX_INTERNED_BYTES / 1024 + 2) {
            intern(&format!("{i}{long}"));
        }
        let again = intern("first-name");
        assert_eq!(first, again);
        assert!(!Arc::ptr_eq(&first, &again), "the table was emptied");
        TABLE.with(|t| assert!(t.borrow().bytes <= MAX_INTERNED_BYTES));
    }
}
