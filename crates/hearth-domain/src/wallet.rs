//! Balance arithmetic on whole coins.
//!
//! Balances and amounts are plain `i64` coin counts. A valid balance lies in
//! `0..=i64::MAX`; every function here either returns a balance in that range
//! or an error, and never wraps, saturates or panics.

/// Why a balance change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WalletError {
    /// The balance is smaller than the amount to take.
    #[error("insufficient balance: needed {needed}, available {available}")]
    InsufficientBalance {
        /// The amount that was to be debited.
        needed: i64,
        /// The balance at the time of the attempt.
        available: i64,
    },
    /// The result would fall outside the valid balance range `0..=i64::MAX`
    /// (the sum does not fit in an `i64`, or the starting balance was already
    /// negative).
    #[error("balance out of range")]
    Overflow,
    /// The amount is not allowed for this operation: zero or negative for a
    /// debit, negative for a credit.
    #[error("amount must be positive, got {amount}")]
    NonPositiveAmount {
        /// The rejected amount.
        amount: i64,
    },
}

/// Takes `amount` coins from `balance` and returns the new balance.
///
/// # Errors
///
/// - [`WalletError::NonPositiveAmount`] if `amount <= 0`.
/// - [`WalletError::InsufficientBalance`] if `balance < amount` (including any
///   negative `balance`).
pub fn debit(balance: i64, amount: i64) -> Result<i64, WalletError> {
    if amount <= 0 {
        return Err(WalletError::NonPositiveAmount { amount });
    }
    if balance < amount {
        return Err(WalletError::InsufficientBalance {
            needed: amount,
            available: balance,
        });
    }
    // `balance >= amount > 0`, so the difference is in `0..balance`; the
    // checked form documents that no wrap can happen.
    balance.checked_sub(amount).ok_or(WalletError::Overflow)
}

/// Adds `amount` coins to `balance` and returns the new balance.
///
/// A zero credit is allowed (a round that returns nothing can still be
/// recorded) and returns `balance` unchanged.
///
/// # Errors
///
/// - [`WalletError::NonPositiveAmount`] if `amount < 0`.
/// - [`WalletError::Overflow`] if `balance` is negative or the sum exceeds
///   `i64::MAX`.
pub fn credit(balance: i64, amount: i64) -> Result<i64, WalletError> {
    if amount < 0 {
        return Err(WalletError::NonPositiveAmount { amount });
    }
    if balance < 0 {
        return Err(WalletError::Overflow);
    }
    balance.checked_add(amount).ok_or(WalletError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debit_examples() {
        assert_eq!(debit(100, 30), Ok(70));
        assert_eq!(debit(100, 100), Ok(0));
        assert_eq!(
            debit(10, 11),
            Err(WalletError::InsufficientBalance {
                needed: 11,
                available: 10
            })
        );
        assert_eq!(
            debit(10, 0),
            Err(WalletError::NonPositiveAmount { amount: 0 })
        );
        assert_eq!(
            debit(10, -5),
            Err(WalletError::NonPositiveAmount { amount: -5 })
        );
        assert_eq!(debit(i64::MAX, i64::MAX), Ok(0));
        assert!(matches!(
            debit(-1, 1),
            Err(WalletError::InsufficientBalance { .. })
        ));
        assert!(debit(i64::MIN, i64::MAX).is_err());
    }

    #[test]
    fn credit_examples() {
        assert_eq!(credit(100, 30), Ok(130));
        assert_eq!(credit(100, 0), Ok(100));
        assert_eq!(credit(0, i64::MAX), Ok(i64::MAX));
        assert_eq!(credit(1, i64::MAX), Err(WalletError::Overflow));
        assert_eq!(credit(i64::MAX, 1), Err(WalletError::Overflow));
        assert_eq!(
            credit(5, -1),
            Err(WalletError::NonPositiveAmount { amount: -1 })
        );
        assert_eq!(credit(-1, 5), Err(WalletError::Overflow));
    }

    #[test]
    fn errors_display() {
        let e = WalletError::InsufficientBalance {
            needed: 5,
            available: 2,
        };
        assert_eq!(e.to_string(), "insufficient balance: needed 5, available 2");
    }

    proptest! {
        #[test]
        fn debit_is_in_range_or_errors(balance in any::<i64>(), amount in any::<i64>()) {
            match debit(balance, amount) {
                Ok(new) => {
                    prop_assert!(new >= 0);
                    prop_assert!(amount > 0);
                    prop_assert_eq!(i128::from(new), i128::from(balance) - i128::from(amount));
                }
                Err(WalletError::NonPositiveAmount { amount: a }) => {
                    prop_assert_eq!(a, amount);
                    prop_assert!(amount <= 0);
                }
                Err(WalletError::InsufficientBalance { needed, available }) => {
                    prop_assert_eq!((needed, available), (amount, balance));
                    prop_assert!(balance < amount);
                }
                Err(WalletError::Overflow) => prop_assert!(false, "debit cannot overflow"),
            }
        }

        #[test]
        fn credit_is_in_range_or_errors(balance in any::<i64>(), amount in any::<i64>()) {
            match credit(balance, amount) {
                Ok(new) => {
                    prop_assert!(new >= 0);
                    prop_assert!(new >= balance);
                    prop_assert_eq!(i128::from(new), i128::from(balance) + i128::from(amount));
                }
                Err(WalletError::NonPositiveAmount { amount: a }) => {
                    prop_assert_eq!(a, amount);
                    prop_assert!(amount < 0);
                }
                Err(WalletError::Overflow) => {
                    let sum = i128::from(balance) + i128::from(amount);
                    prop_assert!(balance < 0 || sum > i128::from(i64::MAX));
                }
                Err(WalletError::InsufficientBalance { .. }) => {
                    prop_assert!(false, "credit never reports insufficient balance");
                }
            }
        }

        #[test]
        fn valid_balances_round_trip(balance in 0..=i64::MAX, amount in 1..=i64::MAX) {
            if let Ok(up) = credit(balance, amount) {
                prop_assert_eq!(debit(up, amount), Ok(balance));
            }
            if let Ok(down) = debit(balance, amount) {
                prop_assert_eq!(credit(down, amount), Ok(balance));
            }
        }
    }
}
