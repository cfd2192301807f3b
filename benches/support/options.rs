//! Bench options from environment variables (every bench documents its own at the top).

/// `name` parsed as `T` (surrounding blanks and `_` digit separators ignored), or `default`
/// when unset or blank; a value that does not parse is an error naming the variable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={text}: {e}")),
        _ => Ok(default),
    }
}
