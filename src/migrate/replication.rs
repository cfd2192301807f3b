//! The keyspace replication option, parsed from `--replication`.
//!
//! Forms: `SimpleStrategy:RF` (development, one data center) and
//! `NetworkTopologyStrategy:dc1=3,dc2=3` (production). Parsed into a typed value first, then
//! rendered, so nothing the user typed reaches CQL unchecked.

use std::fmt;
use std::str::FromStr;

/// A validated replication strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy` with one replication factor.
    Simple(u8),
    /// `NetworkTopologyStrategy` with a factor per data center.
    NetworkTopology(Vec<(String, u8)>),
}

impl Default for Replication {
    fn default() -> Self {
        Replication::Simple(1)
    }
}

impl Replication {
    /// The CQL map literal for `CREATE KEYSPACE ... WITH replication = <this>`.
    pub fn to_cql(&self) -> String {
        match self {
            Replication::Simple(rf) => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}")
            }
            Replication::NetworkTopology(dcs) => {
                let factors: Vec<String> =
                    dcs.iter().map(|(dc, rf)| format!("'{dc}': {rf}")).collect();
                format!(
                    "{{'class': 'NetworkTopologyStrategy', {}}}",
                    factors.join(", ")
                )
            }
        }
    }
}

const FORMS: &str = "expected SimpleStrategy:RF or NetworkTopologyStrategy:DC=RF[,DC=RF...]";

fn factor(text: &str) -> Result<u8, String> {
    match text.trim().parse::<u8>() {
        Ok(rf) if (1..=15).contains(&rf) => Ok(rf),
        _ => Err(format!(
            "replication factor '{text}' must be a number from 1 to 15"
        )),
    }
}

fn data_center(text: &str) -> Result<String, String> {
    let name = text.trim();
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "data center name '{name}' may hold only letters, digits, '_' and '-'"
        ))
    }
}

impl FromStr for Replication {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (class, args) = text
            .split_once(':')
            .ok_or_else(|| format!("bad replication '{text}': {FORMS}"))?;
        match class.trim() {
            "SimpleStrategy" => Ok(Replication::Simple(factor(args)?)),
            "NetworkTopologyStrategy" => {
                let dcs = args
                    .split(',')
                    .map(|pair| {
                        let (dc, rf) = pair
                            .split_once('=')
                            .ok_or_else(|| format!("bad data center '{pair}': {FORMS}"))?;
                        Ok((data_center(dc)?, factor(rf)?))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok(Replication::NetworkTopology(dcs))
            }
            other => Err(format!("unknown replication class '{other}': {FORMS}")),
        }
    }
}

impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replication::Simple(rf) => write!(f, "SimpleStrategy:{rf}"),
            Replication::NetworkTopology(dcs) => {
                let factors: Vec<String> =
                    dcs.iter().map(|(dc, rf)| format!("{dc}={rf}")).collect();
                write!(f, "NetworkTopologyStrategy:{}", factors.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_strategies() {
        assert_eq!("SimpleStrategy:3".parse(), Ok(Replication::Simple(3)));
        let nts: Replication = "NetworkTopologyStrategy:dc1=3,eu-west=2".parse().unwrap();
        assert_eq!(
            nts.to_cql(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'eu-west': 2}"
        );
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "SimpleStrategy",
            "SimpleStrategy:0",
            "SimpleStrategy:x",
            "EverywhereStrategy:1",
            "NetworkTopologyStrategy:dc1",
            "NetworkTopologyStrategy:dc'1=3",
        ] {
            assert!(bad.parse::<Replication>().is_err(), "{bad}");
        }
    }
}
