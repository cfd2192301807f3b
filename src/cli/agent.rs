//! `timebucket agent` flags and their conversion into an [`AgentConfig`].

use std::path::PathBuf;

use clap::Args;

use super::client::ClientAuthArgs;
use super::FlagError;
use crate::agent::{AgentConfig, MIN_INTERVAL};
use crate::model::{InstanceName, ServiceName};

/// `timebucket agent` flags.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The service this host runs: the service name of its readings.
    #[arg(long, env = "TIMEBUCKET_AGENT_SERVICE", value_parser = ServiceName::parse)]
    pub service: ServiceName,
    /// The instance name of the readings (default: the host name).
    #[arg(long, env = "TIMEBUCKET_AGENT_INSTANCE", value_parser = InstanceName::parse)]
    pub instance: Option<InstanceName>,
    /// The collector to push to: `http://host:port` or `https://host:port` (a timebucket serve).
    #[arg(long, env = "TIMEBUCKET_AGENT_PUSH")]
    pub push: String,
    /// Time between samples (at least 200ms); every sample is also the heartbeat.
    #[arg(long, env = "TIMEBUCKET_AGENT_INTERVAL", default_value_t = AgentConfig::DEFAULT_INTERVAL.into())]
    pub interval: humantime::Duration,
    /// A process to watch: its RSS (heap_bytes), RSS growth and shrinking (allocated_bytes,
    /// freed_bytes), and available = false once it is gone.
    #[arg(long, env = "TIMEBUCKET_AGENT_PID")]
    pub pid: Option<u32>,
    /// A path on the disk to report (the data mount): the mount holding it is measured.
    #[arg(long, env = "TIMEBUCKET_AGENT_DISK", default_value = AgentConfig::DEFAULT_DISK)]
    pub disk: PathBuf,
    /// The token it pushes with, and the CAs of an https:// collector.
    #[command(flatten)]
    pub auth: ClientAuthArgs,
}

impl AgentArgs {
    /// The validated configuration, or the first flag that is wrong.
    pub fn config(&self) -> Result<AgentConfig, FlagError> {
        let interval = std::time::Duration::from(self.interval);
        if interval < MIN_INTERVAL {
            return Err(FlagError::new(
                "--interval",
                format!(
                    "must be at least {}, got {}",
                    humantime::format_duration(MIN_INTERVAL),
                    self.interval
                ),
            ));
        }
        Ok(AgentConfig {
            service: self.service.clone(),
            instance: self.instance.clone(),
            push: self.push.clone(),
            interval,
            pid: self.pid,
            disk: self.disk.clone(),
            auth: self.auth.auth()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn agent(flags: &[&str]) -> AgentArgs {
        let argv = [
            "timebucket",
            "agent",
            "--service",
            "s",
            "--push",
            "http://c:8080",
        ];
        match Cli::try_parse_from(argv.iter().chain(flags))
            .unwrap()
            .command
        {
            Command::Agent(args) => args,
            other => panic!("not agent: {other:?}"),
        }
    }

    #[test]
    fn defaults_come_from_the_agent_module() {
        let config = agent(&[]).config().unwrap();
        assert_eq!(config.interval, AgentConfig::DEFAULT_INTERVAL);
        assert_eq!(config.disk, PathBuf::from(AgentConfig::DEFAULT_DISK));
    }

    #[test]
    fn a_too_short_interval_names_the_flag() {
        let error = agent(&["--interval", "50ms"]).config().unwrap_err();
        assert_eq!(error.flag, "--interval");
    }
}
