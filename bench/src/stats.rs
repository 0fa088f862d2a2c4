//! Latency samples and percentiles (nearest-rank on a sorted copy: exact, no histogram error).

use std::time::Duration;

/// Latency samples in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    us: Vec<u64>,
}

/// The percentiles every scenario reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// p50, p95, p99 and max, formatted, for the columns of `report::LATENCY_HEADERS`.
    pub fn latency_cells(&self) -> [String; 4] {
        [ms(self.p50), ms(self.p95), ms(self.p99), ms(self.max)]
    }
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.us.push(d.as_micros().min(u64::MAX as u128) as u64);
    }

    pub fn len(&self) -> usize {
        self.us.len()
    }

    pub fn extend(&mut self, other: &Samples) {
        self.us.extend_from_slice(&other.us);
    }

    pub fn summary(&self) -> Summary {
        let mut v = self.us.clone();
        v.sort_unstable();
        let at = |q: f64| Duration::from_micros(percentile(&v, q));
        Summary {
            count: v.len(),
            p50: at(50.0),
            p95: at(95.0),
            p99: at(99.0),
            max: Duration::from_micros(v.last().copied().unwrap_or(0)),
        }
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `q` % of the values at or
/// below it. 0 for no values.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with a precision that suits the magnitude.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Milliseconds as a number, for metrics.
pub fn ms_f64(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn bytes(n: u64) -> String {
    if n >= 10 * 1024 * 1024 {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    } else if n >= 10 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// The generator's own CPU time (user + system) so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time of each server process so far.
pub fn server_cpu(pids: &[u32]) -> Vec<Option<Duration>> {
    pids.iter().map(|&p| process_cpu(p)).collect()
}

/// Per process, what it used between two readings of [`server_cpu`].
pub fn cpu_used(before: &[Option<Duration>], after: &[Option<Duration>]) -> Vec<Option<Duration>> {
    before.iter().zip(after).map(|(a, b)| a.zip(*b).map(|(a, b)| b.saturating_sub(a))).collect()
}

/// CPU time (user + system) a process has used so far, from `/proc/{pid}/stat`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// Raises this process's open-file soft limit to the hard limit; returns the new soft limit.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                return lim.rlim_max as u64;
            }
        }
        lim.rlim_cur as u64
    }
}

/// The memory a process holds of its own, in bytes: its resident set without file mappings
/// (`RssAnon` + `RssShmem` in `/proc/{pid}/status`). Pages of a mapped file (the executable, a
/// SQLite database read through `mmap`) are the kernel's page cache, there with or without the
/// mapping, and counted once per mapping in `VmRSS`: eight connections mapping one database file
/// would count it eight times.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("RssAnon:")? + field("RssShmem:").unwrap_or(0)) * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
    }

    #[test]
    fn reads_its_own_cpu_time_from_proc() {
        // Burn at least 100 ms of CPU (the kernel counts in 10 ms ticks), whatever the optimiser does.
        let start = cpu_time();
        let mut x = 0u64;
        while cpu_time() < start + Duration::from_millis(100) {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        let cpu = process_cpu(std::process::id()).expect("/proc/self/stat");
        assert!(cpu >= Duration::from_millis(80), "{cpu:?}");
        assert!(cpu <= cpu_time() + Duration::from_millis(20), "{cpu:?}");
    }

    #[test]
    fn summary_of_unsorted_samples() {
        let mut s = Samples::default();
        for ms in [5u64, 1, 4, 2, 3] {
            s.push(Duration::from_millis(ms));
        }
        let sum = s.summary();
        assert_eq!(sum.count, 5);
        assert_eq!(sum.p50, Duration::from_millis(3));
        assert_eq!(sum.p99, Duration::from_millis(5));
        assert_eq!(sum.max, Duration::from_millis(5));
        assert_eq!(Samples::default().summary(), Summary::default());
    }
}

/// One second of a run, by when its samples started: how many, how many over a threshold, the slowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Second {
    pub at: u64,
    pub count: usize,
    pub over: usize,
    pub max: Duration,
}

/// The seconds (counted from the run's start) holding samples over `threshold`, the worst first
/// (most such samples, then the slowest), at most `keep` of them: whether a tail is one stall or
/// spread over the whole run. `samples` are (started after the run's start, latency).
pub fn slow_seconds(samples: &[(Duration, Duration)], threshold: Duration, keep: usize) -> Vec<Second> {
    let mut by_second: std::collections::BTreeMap<u64, Second> = std::collections::BTreeMap::new();
    for (start, latency) in samples {
        let at = start.as_secs();
        let s = by_second.entry(at).or_insert(Second { at, count: 0, over: 0, max: Duration::ZERO });
        s.count += 1;
        if *latency > threshold {
            s.over += 1;
        }
        s.max = s.max.max(*latency);
    }
    let mut slow: Vec<Second> = by_second.into_values().filter(|s| s.over > 0).collect();
    slow.sort_by(|a, b| b.over.cmp(&a.over).then(b.max.cmp(&a.max)).then(a.at.cmp(&b.at)));
    slow.truncate(keep);
    slow
}

#[cfg(test)]
mod slow_seconds_tests {
    use super::*;

    #[test]
    fn finds_the_second_where_the_tail_is() {
        let ms = Duration::from_millis;
        let samples = [
            (ms(100), ms(1)),
            (ms(1_200), ms(40)),
            (ms(1_300), ms(30)),
            (ms(1_900), ms(2)),
            (ms(2_500), ms(15)),
            (ms(3_000), ms(3)),
        ];
        let slow = slow_seconds(&samples, ms(10), 5);
        assert_eq!(
            slow,
            vec![Second { at: 1, count: 3, over: 2, max: ms(40) }, Second { at: 2, count: 1, over: 1, max: ms(15) },]
        );
        assert_eq!(slow_seconds(&samples, ms(10), 1).len(), 1);
        assert!(slow_seconds(&samples, ms(50), 5).is_empty());
    }
}
