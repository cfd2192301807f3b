//! The frame every page shares: head, header (brand, sections, range picker), breadcrumbs and
//! footer.
//!
//! Only [`maud`] writes markup, and every `(value)` it splices is escaped; the page's own text
//! and the links built in [`params`](super::params) are the only things that reach the
//! document, so a service or path called `<script>` shows as text.

use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::format;
use super::params::href;
use super::range::{PageRange, Preset, Window, REFRESH_CHOICES};

/// The console's top-level sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The overview and everything under a service.
    Services,
    /// The alerts page.
    Alerts,
}

/// The range picker of a page: a GET form back to the same page.
#[derive(Debug, Clone)]
pub struct Picker<'a> {
    /// The page's path (the form's action).
    pub action: String,
    /// The range shown.
    pub range: &'a PageRange,
    /// The page's own parameters (sort, filters), kept when the range changes.
    pub keep: Vec<(&'static str, String)>,
}

/// What a page tells the frame.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    /// The page title (plain text).
    pub title: String,
    /// Which section is current.
    pub section: Section,
    /// Breadcrumbs before the title: `(text, link)`.
    pub crumbs: Vec<(String, String)>,
    /// The range picker, on pages with a range.
    pub picker: Option<Picker<'a>>,
}

const LOGO: &str = "M3 11h2V7H3zm4 0h2V4H7zm4 0h2V8h-2z";

fn picker_form(picker: &Picker) -> Markup {
    let range = picker.range;
    let custom = range.window == Window::Custom;
    let permalink = match range.window {
        Window::Last(_) => {
            let mut params = picker.keep.clone();
            params.extend(range.frozen_bounds());
            Some(href(&picker.action, &params))
        }
        Window::Custom => None,
    };
    html! {
        form.picker method="get" action=(picker.action) data-picker {
            @for (name, value) in &picker.keep {
                input type="hidden" name=(name) value=(value);
            }
            label {
                "Range"
                select name="range" {
                    @for preset in Preset::ALL {
                        option value=(preset.key()) selected[range.window == Window::Last(preset)] {
                            (preset.title())
                        }
                    }
                    option value="custom" selected[custom] { "Custom…" }
                }
            }
            span.custom hidden[!custom] {
                label {
                    "From (UTC)"
                    input type="datetime-local" name="from" value=(format::datetime_local(range.from));
                }
                label {
                    "To (UTC)"
                    input type="datetime-local" name="to" value=(format::datetime_local(range.to));
                }
            }
            label {
                "Refresh"
                select name="refresh" data-autosubmit {
                    @for (seconds, key) in REFRESH_CHOICES {
                        option value=(key) selected[range.refresh == seconds] { (key) }
                    }
                }
            }
            button type="submit" { "Apply" }
            @if let Some(link) = permalink {
                a.permalink href=(link) title="A link to exactly this time range, for sharing" {
                    "Link to this range"
                }
            }
        }
    }
}

/// The whole document around `body`.
pub fn page(frame: &Frame, body: Markup) -> Markup {
    let range = frame.picker.as_ref().map(|p| p.range);
    let refresh = range.and_then(|r| r.refresh);
    let services_href = match range {
        Some(range) => href("/", &range.params()),
        None => "/".to_owned(),
    };
    let current = |section| (frame.section == section).then_some("true");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (frame.title) " · timebucket" }
                link rel="icon" href=(assets::FAVICON);
                link rel="stylesheet" href=(assets::css_href());
                script src=(assets::js_href()) defer {}
                @if let Some(seconds) = refresh {
                    noscript { meta http-equiv="refresh" content=(seconds); }
                }
            }
            body data-refresh=[refresh] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" {
                        svg viewBox="0 0 16 16" aria-hidden="true" {
                            rect width="16" height="16" rx="3" fill="var(--accent)" {}
                            path d=(LOGO) fill="var(--panel)" {}
                        }
                        "timebucket"
                    }
                    nav.sections aria-label="Sections" {
                        a href=(services_href) aria-current=[current(Section::Services)] { "Services" }
                        a href="/alerts" aria-current=[current(Section::Alerts)] { "Alerts" }
                    }
                    @if let Some(picker) = &frame.picker {
                        (picker_form(picker))
                    }
                }
                main #main {
                    @if !frame.crumbs.is_empty() {
                        nav.crumbs aria-label="Breadcrumb" {
                            ol {
                                @for (text, link) in &frame.crumbs {
                                    li { a href=(link) { (text) } }
                                }
                            }
                        }
                    }
                    (body)
                }
                footer {
                    @if let Some(range) = range {
                        "Showing " (format::instant(range.from)) " – " (format::instant(range.to))
                        ". "
                    }
                    "All times UTC."
                }
            }
        }
    }
}
