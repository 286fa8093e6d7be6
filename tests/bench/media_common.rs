//! Shared helpers of the media benchmarks: /proc readings.
#![allow(dead_code)]

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let (user, sys) = cpu_split(pid);
    user + sys
}

/// (utime, stime) of a process, in seconds.
pub fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the command name may hold spaces: fields start after the last ')'
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // after ')': state is field 3, utime field 14, stime field 15 (1-based in proc(5))
    (ticks(11) / clock_ticks(), ticks(12) / clock_ticks())
}

/// Clock ticks per second (USER_HZ), 100 on Linux.
pub fn clock_ticks() -> f64 {
    100.0
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}
