use crate::error::{Error, Result};
use rust_decimal::Decimal;

/// A non-negative amount with at most two decimal places, held in cents so
/// that it is exact on every database backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Large enough for any book, small enough that sums of many never overflow.
const MAX_CENTS: i64 = 10_000_000_000;

impl Money {
    pub fn parse(amount: Decimal, field: &str) -> Result<Self> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(Error::bad_input(format!("{field} must not be negative")));
        }
        let normalized = amount.normalize();
        if normalized.scale() > 2 {
            return Err(Error::bad_input(format!(
                "{field} has more than two decimal places"
            )));
        }
        // Checked: near `Decimal::MAX` the product does not fit, and the
        // plain `*` would panic on a client's value.
        let cents = normalized
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|cents| i64::try_from(cents).ok())
            .filter(|cents| *cents <= MAX_CENTS)
            .ok_or_else(|| Error::bad_input(format!("{field} is too large")))?;
        Ok(Self(cents))
    }

    pub fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// Always with two decimal places: "12.50".
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn amounts_round_trip_through_cents() {
        assert_eq!(Money::parse(dec("12.5"), "price").unwrap().cents(), 1250);
        assert_eq!(Money::parse(dec("12.500"), "price").unwrap().cents(), 1250);
        assert_eq!(Money::parse(dec("0"), "price").unwrap().cents(), 0);
        assert_eq!(Money::from_cents(1250).to_decimal().to_string(), "12.50");
    }

    #[test]
    fn negative_fractional_cents_and_huge_amounts_are_rejected() {
        for bad in ["-0.01", "1.005", "100000000000"] {
            let err = Money::parse(dec(bad), "price").unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT", "{bad}");
        }
    }

    #[test]
    fn amounts_near_the_decimal_maximum_are_too_large_not_a_panic() {
        for huge in [
            "1e28",
            "79228162514264337593543950335",
            "792281625142643375935439503.35",
        ] {
            let amount = Decimal::from_scientific(huge)
                .or_else(|_| Decimal::from_str(huge))
                .unwrap();
            let err = Money::parse(amount, "price").unwrap_err();
            assert_eq!(err.code(), "BAD_USER_INPUT", "{huge}");
            assert!(err.to_string().contains("too large"), "{huge}: {err}");
        }
    }

    /// Any `Decimal` at all: every mantissa up to 96 bits, every scale.
    fn any_decimal() -> impl proptest::strategy::Strategy<Value = Decimal> {
        use proptest::prelude::*;
        let max = (1i128 << 96) - 1;
        let mantissa = prop_oneof![
            -max..=max,
            -1_000_000_000_000i128..=1_000_000_000_000,
            Just(max),
            Just(-max)
        ];
        (mantissa, 0u32..=28).prop_map(|(m, scale)| Decimal::from_i128_with_scale(m, scale))
    }

    proptest::proptest! {
        #[test]
        fn any_decimal_is_an_amount_or_a_clear_error(amount in any_decimal()) {
            match Money::parse(amount, "price") {
                Ok(money) => {
                    proptest::prop_assert!((0..=MAX_CENTS).contains(&money.cents()));
                    proptest::prop_assert_eq!(money.to_decimal(), amount);
                }
                Err(err) => {
                    proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT");
                    proptest::prop_assert!(err.to_string().starts_with("price "), "{}", err);
                }
            }
        }

        #[test]
        fn any_text_a_client_sends_as_a_decimal_is_an_amount_or_a_clear_error(
            text in proptest::prop_oneof![
                crate::domain::arbitrary::text(),
                "-?[0-9]{0,30}(\\.[0-9]{0,30})?(e-?[0-9]{1,3})?",
            ],
        ) {
            let parsed = Decimal::from_str(&text).or_else(|_| Decimal::from_scientific(&text));
            if let Ok(amount) = parsed {
                if let Err(err) = Money::parse(amount, "maxPrice") {
                    proptest::prop_assert_eq!(err.code(), "BAD_USER_INPUT");
                }
            }
        }

        #[test]
        fn every_amount_round_trips_through_its_decimal(cents in 0..=MAX_CENTS) {
            let money = Money::from_cents(cents);
            proptest::prop_assert_eq!(Money::parse(money.to_decimal(), "price").unwrap(), money);
            let text = money.to_decimal().to_string();
            proptest::prop_assert_eq!(Money::parse(dec(&text), "price").unwrap(), money);
        }
    }
}
