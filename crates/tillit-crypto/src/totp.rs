use crate::SecretString;
use totp_rs::{Algorithm, Secret, TOTP};

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("TOTP secret is not valid base32 of at least 128 bits")]
    BadSecret,
    #[error("could not render QR code")]
    Qr,
}

/// An RFC 6238 TOTP secret (SHA-1, 6 digits, 30 s: what every authenticator app supports).
pub struct TotpSecret {
    totp: TOTP,
    base32: SecretString,
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// Codes from one step before or after are accepted, for clock drift.
const SKEW_STEPS: i64 = 1;
const STEP: i64 = 30;

impl TotpSecret {
    /// A new random 160-bit secret.
    pub fn generate(issuer: &str, account: &str) -> Result<Self, TotpError> {
        use aws_lc_rs::rand::SecureRandom;
        let mut bytes = zeroize::Zeroizing::new(vec![0u8; 20]);
        if aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut bytes)
            .is_err()
        {
            std::process::abort();
        }
        let b32 = zeroize::Zeroizing::new(Secret::Raw(bytes.to_vec()).to_encoded().to_string());
        Self::from_base32(&b32, issuer, account)
    }

    pub fn from_base32(b32: &str, issuer: &str, account: &str) -> Result<Self, TotpError> {
        let bytes = Secret::Encoded(b32.to_string())
            .to_bytes()
            .map_err(|_| TotpError::BadSecret)?;
        if bytes.len() < 16 {
            return Err(TotpError::BadSecret);
        }
        let totp = TOTP::new_unchecked(
            Algorithm::SHA1,
            6,
            1,
            30,
            bytes,
            Some(issuer.to_string()),
            account.to_string(),
        );
        Ok(Self {
            totp,
            base32: SecretString::new(b32),
        })
    }

    pub fn base32(&self) -> &SecretString {
        &self.base32
    }

    /// The `otpauth://totp/...` URI an authenticator app scans.
    pub fn otpauth_uri(&self) -> String {
        self.totp.get_url()
    }

    /// The code for a moment (unix seconds).
    pub fn code_at(&self, unix: i64) -> String {
        self.totp.generate(u64::try_from(unix).unwrap_or(0))
    }

    /// Checks `code` at `unix` and returns the time step it matched. The caller stores the step
    /// and refuses any code whose step is not after the last one used: a code works once.
    pub fn verify(&self, code: &str, unix: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now_step = unix.div_euclid(STEP);
        (-SKEW_STEPS..=SKEW_STEPS)
            .map(|d| now_step + d)
            .find(|step| {
                let expected = self.code_at(step * STEP);
                crate::ct_eq(expected.as_bytes(), code.as_bytes())
            })
    }
}

/// The otpauth URI as an SVG QR code, for enrolment pages.
pub fn totp_qr_svg(uri: &str) -> Result<String, TotpError> {
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .map_err(|_| TotpError::Qr)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B, SHA-1 seed "12345678901234567890" (base32 below), last 6 digits.
    const RFC_SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn matches_rfc6238_test_vectors() {
        let t = TotpSecret::from_base32(RFC_SEED_B32, "Tillit", "test")
            .unwrap_or_else(|e| unreachable!("{e}"));
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(t.code_at(time), code, "at {time}");
        }
    }

    #[test]
    fn verify_allows_one_step_of_drift_and_reports_the_step() {
        let t = TotpSecret::generate("Tillit", "kari").unwrap_or_else(|e| unreachable!("{e}"));
        let now = 1_800_000_000;
        assert_eq!(t.verify(&t.code_at(now), now), Some(now / 30));
        assert_eq!(t.verify(&t.code_at(now - 30), now), Some(now / 30 - 1));
        assert_eq!(t.verify(&t.code_at(now - 90), now), None);
        assert_eq!(t.verify("abcdef", now), None);
        assert!(
            t.otpauth_uri()
                .starts_with("otpauth://totp/Tillit:kari?secret=")
        );
        let svg = totp_qr_svg(&t.otpauth_uri()).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(svg.contains("<svg"));
    }
}
