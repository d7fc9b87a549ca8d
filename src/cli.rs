//! Command-line flags. They cover what differs between instances of one deployment (addresses,
//! seeds, threads, verbosity), so a single shared file plus per-instance flags is enough, and a
//! quick local run needs no file at all.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, ConfigError};

/// A Redis Cluster proxy: plain RESP in, Redis Cluster out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Parser)]
#[command(name = "slotgate", version)]
pub struct Cli {
    /// YAML config file; without it every setting starts from its default. SIGHUP reads it
    /// again (and applies the flags again on top).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate FILE, with the other flags on top, as at start-up; print "ok" and exit 0, or
    /// print the reason on stderr and exit 2. Serves nothing.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check_config: Option<PathBuf>,
    /// Address clients connect to, as ip:port [overrides `listen`].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Cluster node to read the slot map from, as host:port; repeat for more. Any --seed
    /// replaces all of the file's seeds [overrides `seeds`].
    #[arg(long = "seed", value_name = "ADDR")]
    pub seeds: Vec<String>,
    /// Address of the metrics and health endpoint, as ip:port [overrides `metrics_listen`].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Worker threads serving clients; 0 means one per core [overrides `workers`].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Log filter such as "info" or "warn,slotgate::route=debug" [overrides `log.level`].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// Builds the effective config: the file (or the defaults), then the flags on top, then one
/// validation of the result. Validating only at the end lets a flag fix what the file alone
/// would fail on, such as a file with no seeds.
pub fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let mut config = match cli.config.as_ref().or(cli.check_config.as_ref()) {
        Some(path) => Config::load_unvalidated(path)?,
        None => Config::default(),
    };
    if let Some(listen) = &cli.listen {
        config.listen.clone_from(listen);
    }
    if !cli.seeds.is_empty() {
        config.seeds.clone_from(&cli.seeds);
    }
    if let Some(addr) = &cli.metrics_listen {
        config.metrics_listen = Some(addr.clone());
    }
    if let Some(workers) = cli.workers {
        config.workers = workers;
    }
    if let Some(level) = &cli.log_level {
        config.log.level.clone_from(level);
    }
    config.validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("slotgate").chain(args.iter().copied())).unwrap()
    }

    /// A config file that lives as long as the test, removed on drop even if the test fails.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("slotgate-cli-{}-{name}.yaml", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
        fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const FILE: &str = r#"
listen: "127.0.0.1:6400"
seeds: ["10.0.0.1:7000", "10.0.0.2:7000"]
metrics_listen: "127.0.0.1:9200"
workers: 4
log: {level: debug}
backend: {op_timeout_ms: 750}
"#;

    #[test]
    fn flags_alone_need_no_file() {
        let cli = parse(&[
            "--listen",
            "127.0.0.1:6380",
            "--seed",
            "127.0.0.1:7000",
            "--metrics-listen",
            "127.0.0.1:8379",
        ]);
        let config = load_config(&cli).unwrap();
        assert_eq!(config.seeds, ["127.0.0.1:7000"]);
        assert_eq!(
            config,
            Config {
                seeds: vec!["127.0.0.1:7000".to_owned()],
                ..Config::default()
            }
        );
    }

    #[test]
    fn no_file_and_no_seed_fails_naming_seeds() {
        let err = load_config(&parse(&[])).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { key: "seeds", .. }),
            "{err}"
        );
    }

    #[test]
    fn file_values_apply_without_flags() {
        let file = TempFile::new("file-only", FILE);
        let config = load_config(&parse(&["--config", file.arg()])).unwrap();
        assert_eq!(config.listen, "127.0.0.1:6400");
        assert_eq!(config.seeds, ["10.0.0.1:7000", "10.0.0.2:7000"]);
        assert_eq!(config.metrics_listen.as_deref(), Some("127.0.0.1:9200"));
        assert_eq!(config.workers, 4);
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.backend.op_timeout_ms, 750);
    }

    #[test]
    fn flags_override_the_file() {
        let file = TempFile::new("override", FILE);
        let cli = parse(&[
            "--config",
            file.arg(),
            "--listen",
            "0.0.0.0:6380",
            "--metrics-listen",
            "0.0.0.0:8379",
            "--workers",
            "2",
            "--log-level",
            "warn,slotgate=trace",
        ]);
        let config = load_config(&cli).unwrap();
        assert_eq!(config.listen, "0.0.0.0:6380");
        assert_eq!(config.metrics_listen.as_deref(), Some("0.0.0.0:8379"));
        assert_eq!(config.workers, 2);
        assert_eq!(config.log.level, "warn,slotgate=trace");
        // Not given as flags: still from the file.
        assert_eq!(config.seeds, ["10.0.0.1:7000", "10.0.0.2:7000"]);
        assert_eq!(config.backend.op_timeout_ms, 750);
    }

    #[test]
    fn any_seed_flag_replaces_all_file_seeds() {
        let file = TempFile::new("seeds", FILE);
        let cli = parse(&[
            "--config",
            file.arg(),
            "--seed",
            "redis-a:7000",
            "--seed",
            "redis-b:7001",
        ]);
        assert_eq!(
            load_config(&cli).unwrap().seeds,
            ["redis-a:7000", "redis-b:7001"]
        );
    }

    #[test]
    fn a_flag_can_fix_what_the_file_lacks() {
        let file = TempFile::new("no-seeds", "workers: 1\n");
        let cli = parse(&["--config", file.arg(), "--seed", "127.0.0.1:7000"]);
        let config = load_config(&cli).unwrap();
        assert_eq!((config.workers, config.seeds.len()), (1, 1));
    }

    #[test]
    fn invalid_flag_value_is_named_by_its_config_key() {
        let cli = parse(&["--seed", "127.0.0.1:7000", "--listen", "nowhere"]);
        let err = load_config(&cli).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { key: "listen", .. }),
            "{err}"
        );
        let cli = parse(&["--seed", "127.0.0.1:7000", "--log-level", "chatty"]);
        let err = load_config(&cli).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "log.level",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn file_errors_are_reported_before_flags_apply() {
        let file = TempFile::new("bad", "seeds: [\"127.0.0.1:7000\"]\nlisten_port: 1\n");
        let cli = parse(&["--config", file.arg(), "--listen", "127.0.0.1:6380"]);
        let err = load_config(&cli).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    #[test]
    fn missing_config_file_is_an_io_error() {
        let cli = parse(&["--config", "/nonexistent/slotgate.yaml", "--seed", "h:1"]);
        assert!(matches!(load_config(&cli), Err(ConfigError::Io { .. })));
    }

    #[test]
    fn check_config_reads_its_file_then_the_flags() {
        let file = TempFile::new("check", FILE);
        let cli = parse(&["--check-config", file.arg(), "--workers", "2"]);
        let config = load_config(&cli).unwrap();
        assert_eq!(
            (config.workers, config.listen.as_str()),
            (2, "127.0.0.1:6400")
        );
        let cli = parse(&["--check-config", file.arg(), "--listen", "nowhere"]);
        let err = load_config(&cli).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { key: "listen", .. }),
            "{err}"
        );
    }

    #[test]
    fn check_config_and_config_do_not_go_together() {
        let res = Cli::try_parse_from(["slotgate", "--config", "a", "--check-config", "b"]);
        assert!(res.is_err());
    }

    #[test]
    fn workers_must_be_a_number() {
        let res = Cli::try_parse_from(["slotgate", "--workers", "many"]);
        assert!(res.is_err());
    }

    #[test]
    fn unknown_flag_is_rejected() {
        let res = Cli::try_parse_from(["slotgate", "--seeds", "127.0.0.1:7000"]);
        assert!(res.is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
