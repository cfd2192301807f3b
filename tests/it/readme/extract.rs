//! Finds the `timebucket` command lines of a Markdown file: in code blocks (shell, console with
//! `$ ` prompts, indented) and in inline code spans (prose and table cells).
//!
//! A command is `timebucket ARGS` or `cargo run --release -- ARGS`; a line may chain several
//! with `&&`, `;` or `|` (other programs in the chain are left out), continue on the next line
//! with a trailing `\`, and end with a `# comment`. A table cell may list alternatives with `|`
//! (`query readings|series`), and any command may show an optional part in brackets
//! (`[--instance checkout-1]`): each is expanded into every variant. In a console block, output
//! that starts with `error:` right under a command is the error that command must give.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// The info strings of the fenced blocks that hold shell commands (`toml`, `rust`, `sql`, `text`
/// blocks hold none).
const SHELL_BLOCKS: [&str; 5] = ["", "sh", "bash", "shell", "console"];

/// One command line shown in a document, as a user would type it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocCommand {
    /// The document, relative to the repository.
    pub file: &'static str,
    /// The line it is shown on (1-based).
    pub line: usize,
    /// The command as written (one variant of it).
    pub text: String,
    /// The words after `timebucket` (or after `cargo run --release --`).
    pub args: Vec<String>,
    /// Shown in an inline code span: it may only name a command (`timebucket migrate`) or sum
    /// it up (`timebucket agent --service S --push URL`); a code block shows whole commands.
    pub inline: bool,
    /// The `error: ...` line the document shows under it, when it shows the command failing.
    pub expected_error: Option<String>,
}

impl DocCommand {
    /// `README.md:123: timebucket ...`, for failure messages.
    pub fn at(&self) -> String {
        format!("{}:{}: `{}`", self.file, self.line, self.text)
    }

    /// The subcommand: the first word that is neither a flag nor a flag's value (`serve`,
    /// `migrate`, `query`, `agent`, ...).
    pub fn subcommand(&self) -> Option<&str> {
        let mut words = self.args.iter();
        while let Some(word) = words.next() {
            if !word.starts_with('-') {
                return Some(word);
            }
            // Only `--config FILE` and `--log-format F` come before a subcommand.
            if !word.contains('=') {
                words.next();
            }
        }
        None
    }
}

/// The files a document shows whole, for its commands to use: a fenced block whose info string
/// names one (```` ```yaml file=scrape.yml ````), as `(name, content)`.
pub fn files(markdown: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut open: Option<(String, String)> = None;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                open = info
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("file="))
                    .map(|name| (name.to_owned(), String::new()));
            }
            Event::Text(text) => {
                if let Some((_, body)) = open.as_mut() {
                    body.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => found.extend(open.take()),
            _ => {}
        }
    }
    found
}

/// Every command of `markdown` (the text of `file`), variants expanded, in document order.
pub fn commands(file: &'static str, markdown: &str) -> Vec<DocCommand> {
    let line_of = |offset: usize| markdown[..offset].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut in_table_cell = false;
    let mut block: Option<(bool, usize, String)> = None; // (console, first line, text)
    for (event, range) in Parser::new_ext(markdown, Options::ENABLE_TABLES).into_offset_iter() {
        match event {
            Event::Start(Tag::TableCell) => in_table_cell = true,
            Event::End(TagEnd::TableCell) => in_table_cell = false,
            Event::Start(Tag::CodeBlock(kind)) => {
                block = match &kind {
                    CodeBlockKind::Fenced(info) if SHELL_BLOCKS.contains(&language(info)) => {
                        Some((
                            language(info) == "console",
                            line_of(range.start) + 1,
                            String::new(),
                        ))
                    }
                    CodeBlockKind::Fenced(_) => None,
                    CodeBlockKind::Indented => Some((false, line_of(range.start), String::new())),
                };
            }
            Event::Text(text) => {
                if let Some((_, _, body)) = block.as_mut() {
                    body.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((console, first_line, body)) = block.take() {
                    found.extend(block_commands(file, first_line, console, &body));
                }
            }
            Event::Code(code) => {
                // In a table cell `|` separates alternatives; elsewhere it is a shell pipe.
                let alternatives = in_table_cell;
                for text in command_texts(&code, !alternatives) {
                    found.extend(
                        variants(&text, alternatives)
                            .into_iter()
                            .map(|text| command(file, line_of(range.start), text, true, None)),
                    );
                }
            }
            _ => {}
        }
    }
    found.into_iter().flatten().collect()
}

/// The language of a fenced block: the first word of its info string.
fn language(info: &str) -> &str {
    info.split_whitespace().next().unwrap_or("")
}

/// The commands of one code block whose first line is `first_line`.
fn block_commands(
    file: &'static str,
    first_line: usize,
    console: bool,
    body: &str,
) -> Vec<Option<DocCommand>> {
    let lines: Vec<&str> = body.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = first_line + i;
        let mut line = lines[i].trim_start().to_owned();
        i += 1;
        if console {
            match line.strip_prefix("$ ") {
                Some(command) => line = command.to_owned(),
                None => continue, // output
            }
        }
        while line.ends_with('\\') && i < lines.len() {
            line.pop();
            line.push_str(lines[i].trim_start());
            i += 1;
        }
        let expected_error = if console {
            lines
                .get(i)
                .filter(|next| next.starts_with("error:"))
                .map(|next| next.to_string())
        } else {
            None
        };
        for text in command_texts(&line, true) {
            for variant in variants(&text, false) {
                found.push(command(
                    file,
                    line_no,
                    variant,
                    false,
                    expected_error.clone(),
                ));
            }
        }
    }
    found
}

/// The `timebucket` commands of one shell line, each as its own text; `pipes`: `|` chains
/// commands (it does, except in a table cell).
fn command_texts(line: &str, pipes: bool) -> Vec<String> {
    let mut texts = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut flush = |current: &mut Vec<&str>| {
        let text = current.join(" ");
        if text.starts_with("timebucket ") || text.starts_with("cargo run --release -- ") {
            texts.push(text);
        }
        current.clear();
    };
    // Split at the shell's operators, outside quotes.
    let mut quote: Option<char> = None;
    let mut start = 0;
    let bytes: Vec<(usize, char)> = line.char_indices().collect();
    let mut k = 0;
    while k < bytes.len() {
        let (at, c) = bytes[k];
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if at == 0 || line[..at].ends_with(' ') => {
                current.push(line[start..at].trim());
                start = line.len();
                break;
            }
            (None, '&' | ';') | (None, '|') if c != '|' || pipes => {
                current.push(line[start..at].trim());
                flush(&mut current);
                while k + 1 < bytes.len() && matches!(bytes[k + 1].1, '&' | '|') {
                    k += 1;
                }
                start = bytes.get(k + 1).map_or(line.len(), |&(at, _)| at);
            }
            _ => {}
        }
        k += 1;
    }
    current.push(line[start.min(line.len())..].trim());
    current.retain(|part| !part.is_empty());
    flush(&mut current);
    texts
}

/// `text` with its optional `[--flag value]` parts left out and put in, and (in a table cell)
/// each `a|b` alternative on its own.
fn variants(text: &str, alternatives: bool) -> Vec<String> {
    if alternatives && text.contains('|') {
        // `timebucket query readings|series|stats`: the alternatives are one word's.
        let words: Vec<&str> = text.split(' ').collect();
        if let Some(at) = words.iter().position(|w| w.contains('|')) {
            return words[at]
                .split('|')
                .flat_map(|choice| {
                    let mut words = words.clone();
                    words[at] = choice;
                    variants(&words.join(" "), alternatives)
                })
                .collect();
        }
    }
    if let Some(open) = text.find("[--") {
        if let Some(close) = text[open..].find(']').map(|c| open + c) {
            let without = format!("{}{}", &text[..open], &text[close + 1..]);
            let with = format!(
                "{}{}{}",
                &text[..open],
                &text[open + 1..close],
                &text[close + 1..]
            );
            let mut all = variants(without.trim_end(), alternatives);
            all.extend(variants(&with, alternatives));
            return all;
        }
    }
    vec![text.split_whitespace().collect::<Vec<_>>().join(" ")]
}

fn command(
    file: &'static str,
    line: usize,
    text: String,
    inline: bool,
    expected_error: Option<String>,
) -> Option<DocCommand> {
    let words = shlex::split(&text)?;
    let args = match words.first().map(String::as_str) {
        Some("timebucket") => words[1..].to_vec(),
        Some("cargo") => words[4..].to_vec(),
        _ => return None,
    };
    Some(DocCommand {
        file,
        line,
        text,
        args,
        inline,
        expected_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(markdown: &str) -> Vec<(usize, String, bool, Option<String>)> {
        commands("doc.md", markdown)
            .into_iter()
            .map(|c| (c.line, c.args.join(" "), c.inline, c.expected_error))
            .collect()
    }

    #[test]
    fn blocks_prompts_continuations_comments_and_chains() {
        let doc = "```toml\ntimebucket = { version = \"0.1\" }\n```\n\n`timebucket` alone.\n\nintro\n\n```sh\n# a comment\ntimebucket serve --listen 127.0.0.1:8080 \\\n  --data-dir ./data   # the collector\ncurl -s x | jq .\n```\n\n```console\n$ timebucket query stats --step 1x\nerror: bad step\n  step: ...\n$ timebucket query latest # tables\nTIME X\n```\n\n    cargo run --release -- serve\n";
        assert_eq!(
            texts(doc),
            [
                (
                    11,
                    "serve --listen 127.0.0.1:8080 --data-dir ./data".to_owned(),
                    false,
                    None
                ),
                (
                    17,
                    "query stats --step 1x".to_owned(),
                    false,
                    Some("error: bad step".to_owned())
                ),
                (20, "query latest".to_owned(), false, None),
                (24, "serve".to_owned(), false, None),
            ]
        );
    }

    #[test]
    fn inline_spans_tables_alternatives_and_options() {
        let doc = "Run `scripts/cassandra start && cargo run --release -- migrate up --cql-nodes\nHOST:9042` then `timebucket_settings`.\n\n| command | what |\n| --- | --- |\n| `timebucket query readings\\|series` | asks |\n\n```console\n$ timebucket query host-stats --service s [--instance i-1]\n```\n";
        assert_eq!(
            texts(doc),
            [
                (1, "migrate up --cql-nodes HOST:9042".to_owned(), true, None),
                (6, "query readings".to_owned(), true, None),
                (6, "query series".to_owned(), true, None),
                (9, "query host-stats --service s".to_owned(), false, None),
                (
                    9,
                    "query host-stats --service s --instance i-1".to_owned(),
                    false,
                    None
                ),
            ]
        );
    }

    #[test]
    fn the_subcommand_skips_global_flags() {
        let found = commands(
            "doc.md",
            "`timebucket --config x.toml --log-format=json serve`",
        );
        assert_eq!(found[0].subcommand(), Some("serve"));
    }
}
