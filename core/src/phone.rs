//! Phone numbers as the API accepts them: E.164 (`+` and 8 to 15 digits) that the
//! `phonenumber` crate (libphonenumber's metadata) recognises as a valid number of its
//! country. Service codes with `*` or `#` can never pass. A parsed number knows its
//! country and its type, which the dialing policy (`dialing`) judges.

/// The kinds of number libphonenumber tells apart, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberType {
    FixedLine,
    Mobile,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    PersonalNumber,
    Voip,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

impl NumberType {
    pub const ALL: [NumberType; 12] = [
        NumberType::FixedLine,
        NumberType::Mobile,
        NumberType::FixedLineOrMobile,
        NumberType::TollFree,
        NumberType::PremiumRate,
        NumberType::SharedCost,
        NumberType::PersonalNumber,
        NumberType::Voip,
        NumberType::Pager,
        NumberType::Uan,
        NumberType::Voicemail,
        NumberType::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NumberType::FixedLine => "fixed_line",
            NumberType::Mobile => "mobile",
            NumberType::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberType::TollFree => "toll_free",
            NumberType::PremiumRate => "premium_rate",
            NumberType::SharedCost => "shared_cost",
            NumberType::PersonalNumber => "personal_number",
            NumberType::Voip => "voip",
            NumberType::Pager => "pager",
            NumberType::Uan => "uan",
            NumberType::Voicemail => "voicemail",
            NumberType::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        NumberType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    fn from_lib(t: phonenumber::Type) -> Self {
        use phonenumber::Type as T;
        match t {
            T::FixedLine => NumberType::FixedLine,
            T::Mobile => NumberType::Mobile,
            T::FixedLineOrMobile => NumberType::FixedLineOrMobile,
            T::TollFree => NumberType::TollFree,
            T::PremiumRate => NumberType::PremiumRate,
            T::SharedCost => NumberType::SharedCost,
            T::PersonalNumber => NumberType::PersonalNumber,
            T::Voip => NumberType::Voip,
            T::Pager => NumberType::Pager,
            T::Uan => NumberType::Uan,
            T::Voicemail => NumberType::Voicemail,
            _ => NumberType::Unknown,
        }
    }
}

/// A destination number in E.164 form; holding one means it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    /// ISO 3166 alpha-2 region, when libphonenumber can tell (`None` for non-geographic
    /// numbers such as +800).
    country: Option<String>,
    kind: NumberType,
}

fn invalid(field: &str, message: String, hint: &str) -> crate::Error {
    crate::metrics::METRICS
        .dialing_refusals
        .with_label_values(&["number_invalid"])
        .inc();
    crate::Error::Invalid {
        code: "number_invalid",
        message: format!("{field}: {message}"),
        errors: vec![crate::FieldError::new(field, hint)],
    }
}

impl PhoneNumber {
    /// Parses an E.164 number. Spaces, dashes, dots and parentheses that people paste are
    /// removed first; anything else that is not a digit is refused, and the number must be
    /// a valid number of its country.
    pub fn parse(field: &str, input: &str) -> crate::Result<Self> {
        let compact: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let Some(digits) = compact.strip_prefix('+') else {
            return Err(invalid(
                field,
                "a number in E.164 form is required, like +14155550123".into(),
                "must start with + and the country code",
            ));
        };
        let shaped = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !shaped {
            return Err(invalid(
                field,
                format!("`{input}` is not a valid E.164 number"),
                "must be + followed by 8 to 15 digits, without a leading 0",
            ));
        }
        let parsed = phonenumber::parse(None, &compact)
            .ok()
            .filter(|n| n.is_valid() && n.extension().is_none())
            .ok_or_else(|| {
                invalid(
                    field,
                    format!("`{input}` is not a number in use in its country"),
                    "not a valid number for its country code",
                )
            })?;
        let kind = NumberType::from_lib(parsed.number_type(&phonenumber::metadata::DATABASE));
        let country = parsed.country().id().map(|id| id.as_ref().to_owned());
        // The canonical form libphonenumber parsed, never the input as typed: a national
        // prefix written after the country code (`+1 1 415…`, `+44 0 20…`) would otherwise
        // slip past the blocklist's prefixes and the per-number limits.
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        Ok(PhoneNumber {
            e164,
            country,
            kind,
        })
    }

    /// Parses a number typed by a visitor: E.164, or national digits of `country`.
    pub fn parse_in(field: &str, input: &str, country: Option<&str>) -> crate::Result<Self> {
        let compact: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let Some(country) = country.filter(|_| !compact.starts_with('+')) else {
            return Self::parse(field, input);
        };
        let bad = || {
            invalid(
                field,
                format!("`{input}` is not a valid number of {country}"),
                "the national number, digits only",
            )
        };
        if !(4..=15).contains(&compact.len()) || !compact.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let id: phonenumber::country::Id = country.parse().map_err(|_| bad())?;
        let parsed = phonenumber::parse(Some(id), &compact)
            .ok()
            .filter(|n| n.is_valid())
            .ok_or_else(bad)?;
        Self::parse(
            field,
            &parsed.format().mode(phonenumber::Mode::E164).to_string(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.e164
    }

    pub fn into_string(self) -> String {
        self.e164
    }

    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }

    pub fn number_type(&self) -> NumberType {
        self.kind
    }
}

/// Whether `s` is an ISO 3166 alpha-2 region libphonenumber knows.
/// Loads the numbering metadata and compiles the patterns that checking a number uses, so
/// that the first request does not pay for it.
pub fn warm_up() {
    for sample in [
        "+14155550123",
        "+442071838750",
        "+33142685300",
        "+4930901820",
    ] {
        if let Ok(n) = PhoneNumber::parse("to", sample) {
            let _ = n.number_type();
        }
    }
}

pub fn is_country(s: &str) -> bool {
    s.len() == 2 && s.parse::<phonenumber::country::Id>().is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_e164_and_common_punctuation() {
        let n = PhoneNumber::parse("to", "+1 (415) 555-0123").unwrap();
        assert_eq!(n.as_str(), "+14155550123");
        assert_eq!(n.country(), Some("US"));
        let de = PhoneNumber::parse("to", "+49 151 23456789").unwrap();
        assert_eq!(de.country(), Some("DE"));
        assert_eq!(de.number_type(), NumberType::Mobile);
    }

    #[test]
    fn stores_the_canonical_number_not_the_input() {
        for (typed, canonical) in [
            ("+1 1 415 555 0123", "+14155550123"),
            ("+44 0 20 7946 0018", "+442079460018"),
            ("+1 (415) 555-0123", "+14155550123"),
        ] {
            match PhoneNumber::parse("to", typed) {
                Ok(n) => assert_eq!(n.as_str(), canonical, "{typed}"),
                Err(e) => assert_eq!(e.code(), "number_invalid", "{typed}"),
            }
        }
        let n = PhoneNumber::parse_in("phone", "020 7946 0018", Some("GB")).unwrap();
        assert_eq!(n.as_str(), "+442079460018");
    }

    #[test]
    fn knows_the_types_that_cost_money() {
        let kind = |n: &str| PhoneNumber::parse("to", n).unwrap().number_type();
        assert_eq!(kind("+19005550123"), NumberType::PremiumRate);
        assert_eq!(kind("+448431234567"), NumberType::PremiumRate);
        assert_eq!(kind("+33810123456"), NumberType::SharedCost);
        assert_eq!(kind("+443031234567"), NumberType::Uan);
        assert_eq!(kind("+447012345678"), NumberType::PersonalNumber);
        assert_eq!(kind("+18005550123"), NumberType::TollFree);
        assert_eq!(kind("+447400123456"), NumberType::Mobile);
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "4155550123",
            "+0123456789",
            "*#06#",
            "+1234",
            "+1415555012x",
            "+1234567890123456",
            "",
            "+",
            "+1 000 000 0000",
        ] {
            let e = PhoneNumber::parse("to", bad).unwrap_err();
            assert_eq!(e.code(), "number_invalid", "{bad}");
        }
        assert!(is_country("GB"));
        assert!(!is_country("XX"));
    }
}
