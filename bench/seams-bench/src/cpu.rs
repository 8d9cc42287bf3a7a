//! Where the machine's CPU went while something was measured: the server
//! under load, the measuring process itself, and everything else.
//!
//! The machine is shared and has two cores, so a figure taken while another
//! tenant compiled is not the figure of a quiet machine. Every result carries
//! how many cores other processes kept busy during its window, read from
//! `/proc` (clock ticks of `USER_HZ`, 100 a second on Linux), so a noisy
//! point can be told from a slow system; and the server's CPU time per
//! operation, which depends much less on the neighbours than throughput does.

use std::time::Duration;

use serde_json::{Value, json};

/// Ticks a second in `/proc/stat` and `/proc/PID/stat` (`USER_HZ`, fixed at 100 on Linux).
pub const USER_HZ: f64 = 100.0;

/// CPU time used so far, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// Ticks every core spent busy (user, nice, system, irq, softirq, steal).
    pub machine_busy: u64,
    /// Ticks of this process (user + system).
    pub own: u64,
    /// Ticks of the server, if its PID was given and it runs.
    pub server: Option<u64>,
}

/// User + system ticks of process `pid` (`"self"` for this one).
pub fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

impl CpuSample {
    /// Now, with the ticks of `server` if given; `None` where `/proc` is missing.
    pub fn now(server: Option<u32>) -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
        let machine_busy = [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| ticks.get(i))
            .sum();
        Some(CpuSample {
            machine_busy,
            own: process_ticks("self")?,
            server: server.and_then(|pid| process_ticks(&pid.to_string())),
        })
    }

    /// Cores used between `before` and this sample, `elapsed` apart, as JSON:
    /// `machine_cores`, `own_cores`, `server_cores` and `other_cores` (busy
    /// with neither this process nor the server).
    pub fn since(&self, before: &CpuSample, elapsed: Duration) -> Value {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let cores = |ticks: u64| ticks as f64 / USER_HZ / secs;
        let machine = self.machine_busy.saturating_sub(before.machine_busy);
        let own = self.own.saturating_sub(before.own);
        let server = match (before.server, self.server) {
            (Some(b), Some(a)) => a.saturating_sub(b),
            _ => 0,
        };
        json!({
            "machine_cores": cores(machine),
            "own_cores": cores(own),
            "server_cores": self.server.map(|_| cores(server)),
            "other_cores": cores(machine.saturating_sub(own + server)),
        })
    }
}
