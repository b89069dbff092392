//! Days and months as plain integers, so the fold never parses or allocates a date.
//!
//! A `Day` counts UTC days since 1970-01-01; a `Month` counts months since year 0
//! (`year × 12 + month − 1`). Conversions use Howard Hinnant's civil-date algorithms.

use time::{Date, OffsetDateTime};

pub type Day = i32;
pub type Month = i32;

pub const SECONDS_PER_DAY: i64 = 86_400;

pub fn day_of(unix_seconds: i64) -> Day {
    unix_seconds.div_euclid(SECONDS_PER_DAY) as Day
}

pub fn day_of_time(time: OffsetDateTime) -> Day {
    day_of(time.unix_timestamp())
}

/// Days since 1970-01-01 of a calendar date.
pub fn day_of_date(date: Date) -> Day {
    date.to_julian_day() - 2_440_588
}

pub fn date_of_day(day: Day) -> Date {
    // Every i32 day of a real event is far inside time's supported range.
    Date::from_julian_day(day + 2_440_588).unwrap_or(Date::MIN)
}

/// The day as an ISO-8601 date, `YYYY-MM-DD`.
pub fn iso_date(day: Day) -> String {
    crate::event::iso_date::format(&date_of_day(day))
}

/// The (year, month 1–12, day 1–31) of a day number.
fn civil_from_days(day: Day) -> (i32, u32, u32) {
    let z = day as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

fn days_from_civil(year: i32, month: u32, day: u32) -> Day {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as Day
}

pub fn month_of_day(day: Day) -> Month {
    let (y, m, _) = civil_from_days(day);
    y * 12 + m as i32 - 1
}

pub fn first_day_of_month(month: Month) -> Day {
    days_from_civil(month.div_euclid(12), (month.rem_euclid(12) + 1) as u32, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn days_and_months_agree_with_the_time_crate() {
        for day in (-800_000..800_000).step_by(997) {
            let date = date_of_day(day);
            assert_eq!(day_of_date(date), day);
            let (y, m, d) = civil_from_days(day);
            assert_eq!(
                (y, m, d),
                (
                    date.year(),
                    u8::from(date.month()) as u32,
                    date.day() as u32
                )
            );
            assert_eq!(days_from_civil(y, m, d), day);
            assert_eq!(first_day_of_month(month_of_day(day)), day - d as i32 + 1);
        }
        assert_eq!(day_of_date(date!(1970 - 01 - 01)), 0);
        assert_eq!(
            month_of_day(day_of_date(date!(2026 - 03 - 14))),
            2026 * 12 + 2
        );
        assert_eq!(day_of(-1), -1);
    }
}
