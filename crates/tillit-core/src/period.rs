use crate::InvalidValue;
use time::OffsetDateTime;

/// A validity period: from `start` (inclusive) to `end` (exclusive), open-ended when `end` is
/// `None`. Role assignments, care relationships and grants all have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    start: OffsetDateTime,
    end: Option<OffsetDateTime>,
}

impl Period {
    pub fn new(start: OffsetDateTime, end: Option<OffsetDateTime>) -> Result<Self, InvalidValue> {
        if let Some(end) = end
            && end <= start
        {
            return Err(InvalidValue::new("period", "end must be after start"));
        }
        Ok(Self { start, end })
    }

    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    pub fn end(&self) -> Option<OffsetDateTime> {
        self.end
    }

    pub fn contains(&self, at: OffsetDateTime) -> bool {
        at >= self.start && self.end.is_none_or(|end| at < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn period_is_start_inclusive_end_exclusive() {
        let p = Period::new(
            datetime!(2026-01-01 0:00 UTC),
            Some(datetime!(2026-02-01 0:00 UTC)),
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(p.contains(datetime!(2026-01-01 0:00 UTC)));
        assert!(!p.contains(datetime!(2026-02-01 0:00 UTC)));
        assert!(!p.contains(datetime!(2025-12-31 23:59 UTC)));
        assert!(
            Period::new(
                datetime!(2026-01-01 0:00 UTC),
                Some(datetime!(2026-01-01 0:00 UTC))
            )
            .is_err()
        );
    }
}
