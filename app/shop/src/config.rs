//! The system's configuration: where it listens, where it keeps data, how
//! notifications leave, and whether delivery is made deliberately unreliable.
//!
//! Every value can come from a flag or an environment variable (`SHOP_*`);
//! flags win. Validation happens before anything starts and names the key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Configuration of `shop up`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address of the public API.
    #[arg(long, env = "SHOP_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Directory of the per-capability SQLite files and the Maildir.
    #[arg(long = "data", env = "SHOP_DATA", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Inject duplicate deliveries and random delays into event delivery.
    #[arg(long, env = "SHOP_CHAOS")]
    pub chaos: bool,
    /// With --chaos: shortest delay before each delivery, in ms (slows every consumer down).
    #[arg(long, env = "SHOP_CHAOS_MIN_DELAY_MS", default_value_t = 0)]
    pub chaos_min_delay_ms: u64,
    /// With --chaos: longest delay before each delivery, in ms.
    #[arg(long, env = "SHOP_CHAOS_MAX_DELAY_MS", default_value_t = 50)]
    pub chaos_max_delay_ms: u64,
    /// Send notifications over SMTP to this host instead of the Maildir.
    #[arg(long, env = "SHOP_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port.
    #[arg(long, env = "SHOP_SMTP_PORT", default_value_t = 25)]
    pub smtp_port: u16,
    /// Sender address of notifications.
    #[arg(
        long,
        env = "SHOP_MAIL_FROM",
        default_value = "Seams Shop <shop@localhost>"
    )]
    pub mail_from: String,
    /// Commit durability: `full` (survives power loss) or `normal` (survives a crash).
    #[arg(long, env = "SHOP_DURABILITY", default_value = "full", value_parser = ["full", "normal"])]
    pub durability: String,
}

impl Config {
    /// The default configuration with data under `data_dir`, listening on `addr`.
    pub fn new(addr: SocketAddr, data_dir: PathBuf) -> Config {
        Config {
            addr,
            data_dir,
            chaos: false,
            chaos_min_delay_ms: 0,
            chaos_max_delay_ms: 50,
            smtp_host: None,
            smtp_port: 25,
            mail_from: "Seams Shop <shop@localhost>".into(),
            durability: "full".into(),
        }
    }

    /// The faults injected into delivery, if any.
    pub fn chaos(&self) -> Option<seams_runtime::Chaos> {
        self.chaos.then(|| seams_runtime::Chaos {
            min_delay: Duration::from_millis(self.chaos_min_delay_ms),
            max_delay: Duration::from_millis(self.chaos_max_delay_ms.max(self.chaos_min_delay_ms)),
            ..seams_runtime::Chaos::DEFAULT
        })
    }

    /// Commit durability.
    pub fn durability(&self) -> seams_sqlite::Durability {
        match self.durability.as_str() {
            "normal" => seams_sqlite::Durability::Normal,
            _ => seams_sqlite::Durability::Full,
        }
    }

    /// How notifications leave.
    pub fn channel(&self) -> notification::ChannelOptions {
        match &self.smtp_host {
            Some(host) => notification::ChannelOptions::Smtp(notification::channel::SmtpOptions {
                host: host.clone(),
                port: self.smtp_port,
                from: self.mail_from.clone(),
                timeout: Duration::from_secs(10),
            }),
            None => notification::ChannelOptions::Maildir {
                dir: self.data_dir.join("mail"),
            },
        }
    }
}
