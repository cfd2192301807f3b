//! Sortable, paged tables: the sort and the page are URL parameters (`sort`, `dir`, `page`), so
//! a sorted page is a link like any other and a table of 1,000 rows sends 50 of them.

use std::cmp::Ordering;

use maud::{html, Markup};

use super::format;
use super::params::{href, Params};

/// Rows per table page: a screenful or two, and a page of 50 renders in microseconds.
pub const PER_PAGE: usize = 50;

/// A table's sort: one of its column keys, and the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// The column key.
    pub key: &'static str,
    /// Largest (or last) first.
    pub descending: bool,
}

/// A sortable column: its key, and whether it sorts largest first by default (numbers do).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The URL key.
    pub key: &'static str,
    /// The header text.
    pub label: &'static str,
    /// Right-aligned numbers, sorted descending by default.
    pub numeric: bool,
}

impl Sort {
    /// The sort `params` ask for among `columns`; `default` otherwise.
    pub fn from_params(params: &Params, columns: &[Column], default: Sort) -> Sort {
        let Some(column) = params
            .get("sort")
            .and_then(|key| columns.iter().find(|c| c.key == key))
        else {
            return default;
        };
        let descending = match params.get("dir") {
            Some("asc") => false,
            Some("desc") => true,
            _ => column.numeric,
        };
        Sort {
            key: column.key,
            descending,
        }
    }

    /// `ordering` in this sort's direction.
    pub fn apply(self, ordering: Ordering) -> Ordering {
        if self.descending {
            ordering.reverse()
        } else {
            ordering
        }
    }

    fn params(self) -> [(&'static str, String); 2] {
        [
            ("sort", self.key.to_owned()),
            (
                "dir",
                if self.descending { "desc" } else { "asc" }.to_owned(),
            ),
        ]
    }
}

/// Which rows of a table a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based page number, within the pages there are.
    pub page: usize,
    /// Rows in the whole table.
    pub total: usize,
}

impl Paging {
    /// The page `params` ask for (`page`), clamped to the pages there are.
    pub fn from_params(params: &Params, total: usize) -> Self {
        let pages = total.div_ceil(PER_PAGE).max(1);
        let page = params
            .get("page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .clamp(1, pages);
        Self { page, total }
    }

    /// The rows of this page, as a range of indices.
    pub fn rows(&self) -> std::ops::Range<usize> {
        let start = (self.page - 1) * PER_PAGE;
        start..(start + PER_PAGE).min(self.total)
    }

    fn pages(&self) -> usize {
        self.total.div_ceil(PER_PAGE).max(1)
    }
}

/// How a table links to its own other views: the page path and the parameters to keep (range,
/// filters), to which sort and page are added.
#[derive(Debug, Clone)]
pub struct Links<'a> {
    /// The page's path.
    pub path: &'a str,
    /// Parameters kept in every link.
    pub keep: Vec<(&'static str, String)>,
    /// The current sort.
    pub sort: Sort,
}

impl Links<'_> {
    fn to(&self, sort: Sort, page: usize) -> String {
        let mut params = self.keep.clone();
        params.extend(sort.params());
        if page > 1 {
            params.push(("page", page.to_string()));
        }
        href(self.path, &params)
    }

    /// The parameters of the current sort, for forms that keep it.
    pub fn sort_params(&self) -> [(&'static str, String); 2] {
        self.sort.params()
    }

    /// A column header: a link that sorts by it (or flips the direction when it already does).
    pub fn header(&self, column: &Column) -> Markup {
        let current = self.sort.key == column.key;
        let next = Sort {
            key: column.key,
            descending: if current {
                !self.sort.descending
            } else {
                column.numeric
            },
        };
        let aria_sort = current.then_some(if self.sort.descending {
            "descending"
        } else {
            "ascending"
        });
        html! {
            th scope="col" class=[column.numeric.then_some("num")] aria-sort=[aria_sort] {
                a href=(self.to(next, 1)) { (column.label) }
            }
        }
    }

    /// "Rows 51–100 of 1,000" with previous / next links.
    pub fn pager(&self, paging: &Paging, noun: &str) -> Markup {
        let rows = paging.rows();
        html! {
            nav.pager aria-label={ "Pages of " (noun) } {
                @if paging.total == 0 {
                    span { "No " (noun) }
                } @else {
                    span {
                        (noun) " " (format::count(rows.start as u64 + 1)) "–"
                        (format::count(rows.end as u64)) " of " (format::count(paging.total as u64))
                    }
                }
                span.spacer {}
                @if paging.page > 1 {
                    a.button.quiet rel="prev" href=(self.to(self.sort, paging.page - 1)) { "← Previous" }
                }
                @if paging.pages() > 1 {
                    span { "Page " (paging.page) " of " (paging.pages()) }
                }
                @if paging.page < paging.pages() {
                    a.button.quiet rel="next" href=(self.to(self.sort, paging.page + 1)) { "Next →" }
                }
            }
        }
    }
}

/// Orders optional numbers with `None` always last, whatever the direction.
pub fn by_option(a: Option<f64>, b: Option<f64>, sort: Sort) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => sort.apply(a.total_cmp(&b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [Column; 2] = [
        Column {
            key: "name",
            label: "Name",
            numeric: false,
        },
        Column {
            key: "rate",
            label: "Rate",
            numeric: true,
        },
    ];
    const DEFAULT: Sort = Sort {
        key: "name",
        descending: false,
    };

    fn params(list: &[(&str, &str)]) -> Params {
        Params::new(
            list.iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    #[test]
    fn sorts_come_from_the_url_and_numbers_default_to_largest_first() {
        let sort = |list| Sort::from_params(&params(list), &COLUMNS, DEFAULT);
        assert_eq!(sort(&[]), DEFAULT);
        assert_eq!(sort(&[("sort", "nope")]), DEFAULT);
        assert!(sort(&[("sort", "rate")]).descending);
        assert!(!sort(&[("sort", "rate"), ("dir", "asc")]).descending);
        let by_rate = sort(&[("sort", "rate")]);
        assert_eq!(
            by_option(Some(1.0), None, by_rate),
            Ordering::Less,
            "gaps last"
        );
        assert_eq!(by_option(Some(1.0), Some(2.0), by_rate), Ordering::Greater);
    }

    #[test]
    fn pages_are_clamped_to_the_rows_there_are() {
        let paging = |page: &str, total| Paging::from_params(&params(&[("page", page)]), total);
        assert_eq!(paging("1", 0).rows(), 0..0);
        assert_eq!(paging("3", 120).rows(), 100..120);
        assert_eq!(paging("9", 120).page, 3);
        assert_eq!(paging("x", 120).page, 1);
        let links = Links {
            path: "/",
            keep: vec![("range", "1h".into())],
            sort: DEFAULT,
        };
        assert_eq!(links.to(DEFAULT, 2), "/?range=1h&sort=name&dir=asc&page=2");
    }
}
