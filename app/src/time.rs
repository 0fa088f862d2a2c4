//! How times read on screen. The server renders UTC; once hydrated, the browser switches to its
//! own time zone (a `LocalClock` flips in an effect), so hydration never sees a mismatch.

use chrono::{DateTime, Datelike, Duration, Local, NaiveDate, NaiveDateTime, Timelike, Utc};
use leptos::prelude::*;

/// True once the component that made it has hydrated (or mounted) in a browser and may use the
/// visitor's time zone and clock. Each part of the page that hydrates in one go (a conversation's
/// messages, the contact list) makes its own and hands it to its rows: a flag shared across the page
/// could flip before a later Suspense boundary hydrates, and that boundary would then render
/// something other than what the server sent.
#[derive(Clone, Copy)]
pub struct LocalClock {
    local: RwSignal<bool>,
    minute: Trigger,
}

impl LocalClock {
    /// For times that do not age on screen (a message's "14:05").
    pub fn new() -> Self {
        Self::make(false)
    }

    /// For times that do ("now", "5m"): what reads [`now`](Self::now) is drawn again every minute.
    pub fn ticking() -> Self {
        Self::make(true)
    }

    fn make(ticking: bool) -> Self {
        let clock = Self { local: RwSignal::new(false), minute: Trigger::new() };
        // Effects run only in the browser, after this component's own hydration.
        Effect::new(move |_| {
            clock.local.set(true);
            let minute = std::time::Duration::from_secs(60);
            if let Some(every) =
                ticking.then(|| set_interval_with_handle(move || clock.minute.notify(), minute).ok()).flatten()
            {
                on_cleanup(move || every.clear());
            }
        });
        clock
    }

    pub fn is_local(&self) -> bool {
        self.local.get()
    }

    /// The time now; a ticking clock's readers read it again every minute.
    pub fn now(&self) -> DateTime<Utc> {
        self.minute.track();
        Utc::now()
    }
}

impl Default for LocalClock {
    fn default() -> Self {
        Self::new()
    }
}

fn naive(at: DateTime<Utc>, local: bool) -> NaiveDateTime {
    if local { at.with_timezone(&Local).naive_local() } else { at.naive_utc() }
}

// Names spelt out here rather than through chrono's `format`: its strftime parser and formatter
// are code every browser would download for five patterns (bench `bundle`).
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn weekday(day: NaiveDate) -> &'static str {
    WEEKDAYS[day.weekday().num_days_from_monday() as usize]
}

fn month(day: NaiveDate) -> &'static str {
    MONTHS[day.month0() as usize]
}

/// "3 Nov": a day of the year in short.
pub fn day_month(day: NaiveDate) -> String {
    format!("{} {}", day.day(), &month(day)[..3])
}

/// "14:05" (and " UTC" before hydration, so nobody mistakes it for their own time).
pub fn clock(at: DateTime<Utc>, local: bool) -> String {
    let at = naive(at, local);
    let time = format!("{:02}:{:02}", at.hour(), at.minute());
    if local { time } else { format!("{time} UTC") }
}

/// The calendar day a message belongs to, in the zone being shown.
pub fn day(at: DateTime<Utc>, local: bool) -> NaiveDate {
    naive(at, local).date()
}

/// "Today", "Yesterday", or "Monday 3 November 2026".
pub fn day_label(day: NaiveDate, today: NaiveDate) -> String {
    if day == today {
        "Today".to_owned()
    } else if Some(day) == today.pred_opt() {
        "Yesterday".to_owned()
    } else {
        format!("{} {} {} {}", weekday(day), day.day(), month(day), day.year())
    }
}

/// Short time for the contact list: "now", "5m", "3h", "Mon", "3 Nov", "3 Nov 2025".
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>, local: bool) -> String {
    let age = now - at;
    if age < Duration::minutes(1) {
        "now".to_owned()
    } else if age < Duration::hours(1) {
        format!("{}m", age.num_minutes())
    } else if age < Duration::hours(24) {
        format!("{}h", age.num_hours())
    } else {
        let on = day(at, local);
        if age < Duration::days(7) {
            weekday(on)[..3].to_owned()
        } else if on.year() == day(now, local).year() {
            day_month(on)
        } else {
            format!("{} {}", day_month(on), on.year())
        }
    }
}

/// "Read at 14:05" for a read receipt's tooltip.
pub fn read_at(at: DateTime<Utc>, local: bool) -> String {
    format!("Read at {}", clock(at, local))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn server_side_rendering_is_utc_and_says_so() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 9, 5, 0).unwrap();
        assert_eq!(clock(at, false), "09:05 UTC");
        assert_eq!(clock(Utc.with_ymd_and_hms(2026, 1, 2, 23, 59, 0).unwrap(), false), "23:59 UTC");
        assert_eq!(day(at, false), NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
    }

    #[test]
    fn day_labels() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(day_label(today, today), "Today");
        assert_eq!(day_label(today.pred_opt().unwrap(), today), "Yesterday");
        assert_eq!(day_label(NaiveDate::from_ymd_opt(2026, 11, 3).unwrap(), today), "Tuesday 3 November 2026");
        assert_eq!(day_label(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(), today), "Sunday 22 November 2026");
        assert_eq!(day_label(NaiveDate::from_ymd_opt(2025, 5, 12).unwrap(), today), "Monday 12 May 2025");
    }

    #[test]
    fn relative_times() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        assert_eq!(relative(now - Duration::seconds(20), now, false), "now");
        assert_eq!(relative(now - Duration::minutes(5), now, false), "5m");
        assert_eq!(relative(now - Duration::hours(3), now, false), "3h");
        assert_eq!(relative(now - Duration::days(2), now, false), "Tue");
        assert_eq!(relative(now - Duration::days(30), now, false), "27 Oct");
        assert_eq!(relative(now - Duration::days(400), now, false), "22 Oct 2025");
        assert_eq!(relative(now - Duration::days(6), now, false), "Fri");
        assert_eq!(day_month(NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()), "1 Sep");
    }
}
