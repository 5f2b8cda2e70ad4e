//! Phone numbers as the API accepts them: E.164 only (`+` and 8 to 15 digits, no leading
//! zero in the country code). Service codes with `*` or `#` can never pass.

/// A destination number in E.164 form; holding one means it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses an E.164 number. Spaces, dashes, dots and parentheses that people paste are
    /// removed first; anything else that is not a digit is refused.
    pub fn parse(field: &str, input: &str) -> crate::Result<Self> {
        let compact: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let Some(digits) = compact.strip_prefix('+') else {
            return Err(crate::Error::Invalid {
                code: "invalid_phone_number",
                message: format!("{field}: a number in E.164 form is required, like +14155550123"),
                errors: vec![crate::FieldError::new(
                    field,
                    "must start with + and the country code",
                )],
            });
        };
        let ok = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(PhoneNumber(compact))
        } else {
            Err(crate::Error::Invalid {
                code: "invalid_phone_number",
                message: format!("{field}: `{input}` is not a valid E.164 number"),
                errors: vec![crate::FieldError::new(
                    field,
                    "must be + followed by 8 to 15 digits, without a leading 0",
                )],
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_and_common_punctuation() {
        assert_eq!(
            PhoneNumber::parse("to", "+1 (415) 555-0123")
                .map(PhoneNumber::into_string)
                .ok(),
            Some("+14155550123".to_owned())
        );
        assert!(PhoneNumber::parse("to", "+4930123456").is_ok());
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
        ] {
            assert!(PhoneNumber::parse("to", bad).is_err(), "{bad}");
        }
    }
}
