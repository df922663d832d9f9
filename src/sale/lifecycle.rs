//! The sale life cycle as one transition table.
//!
//! Stored states are `scheduled → live ⇄ paused → ended`. `sold_out` is not
//! stored: it is what a live sale reports while every item's stock is gone,
//! because stock can come back (an expired hold, a restock) without any host
//! action. Every illegal pair is a typed error, never a panic.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleStatus {
    Scheduled,
    Live,
    Paused,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleAction {
    Start,
    Pause,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action:?} a sale that is {from:?}")]
pub struct IllegalSaleTransition {
    pub from: SaleStatus,
    pub action: SaleAction,
}

impl SaleStatus {
    pub fn next(self, action: SaleAction) -> Result<SaleStatus, IllegalSaleTransition> {
        use SaleAction::*;
        use SaleStatus::*;
        match (self, action) {
            (Scheduled, Start) => Ok(Live),
            (Scheduled, Pause) => Err(IllegalSaleTransition { from: self, action }),
            (Scheduled, End) => Ok(Ended),
            (Live, Start) => Err(IllegalSaleTransition { from: self, action }),
            (Live, Pause) => Ok(Paused),
            (Live, End) => Ok(Ended),
            (Paused, Start) => Ok(Live),
            (Paused, Pause) => Err(IllegalSaleTransition { from: self, action }),
            (Paused, End) => Ok(Ended),
            (Ended, Start | Pause | End) => Err(IllegalSaleTransition { from: self, action }),
        }
    }

    /// Stock can be added until the sale has ended.
    pub fn accepts_restock(self) -> bool {
        !matches!(self, SaleStatus::Ended)
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(value: u8) -> SaleStatus {
        match value {
            0 => SaleStatus::Scheduled,
            1 => SaleStatus::Live,
            2 => SaleStatus::Paused,
            _ => SaleStatus::Ended,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SaleStatus::Scheduled => "scheduled",
            SaleStatus::Live => "live",
            SaleStatus::Paused => "paused",
            SaleStatus::Ended => "ended",
        }
    }
}

impl SaleAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SaleAction::Start => "start",
            SaleAction::Pause => "pause",
            SaleAction::End => "end",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_of_the_table_is_decided() {
        use SaleAction::*;
        use SaleStatus::*;
        let legal = [
            (Scheduled, Start, Live),
            (Scheduled, End, Ended),
            (Live, Pause, Paused),
            (Live, End, Ended),
            (Paused, Start, Live),
            (Paused, End, Ended),
        ];
        for from in [Scheduled, Live, Paused, Ended] {
            assert_eq!(SaleStatus::from_u8(from.as_u8()), from);
            for action in [Start, Pause, End] {
                let expected = legal.iter().find(|(f, a, _)| *f == from && *a == action);
                match (from.next(action), expected) {
                    (Ok(to), Some((_, _, want))) => assert_eq!(to, *want),
                    (Err(error), None) => assert_eq!(error, IllegalSaleTransition { from, action }),
                    (got, want) => panic!("{from:?} {action:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }
}
