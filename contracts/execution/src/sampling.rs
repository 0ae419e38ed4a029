//! [`Sampling`]: how a chat model picks its words, set per agent and per request.

use serde::{Deserialize, Serialize};
use shared::ActionError;

/// The temperature a chat model answers with when neither the agent nor the request sets
/// one: low, as answers should stick to the passages.
pub const DEFAULT_TEMPERATURE: f32 = 0.2;

/// The longest answer per model call, in tokens, when neither the agent nor the request
/// sets one.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// The most tokens an agent or a request may ask a model to write in one call.
pub const MAX_MAX_TOKENS: u32 = 32_768;

/// Sampling settings for a chat model. An agent stores them; a run (or a chat message) may
/// set any of them again for itself ([`Sampling::over`]). Unset means the default: the
/// constants above, and the model's own `top_p`. The offline answerers ignore them.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
pub struct Sampling {
    /// 0 to 2; lower is more deterministic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// 1 to [`MAX_MAX_TOKENS`]: the longest answer per model call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Above 0, at most 1: the probability mass the model picks from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
}

impl Sampling {
    /// These settings where they are set, else `base`'s: a request's over its agent's.
    pub fn over(self, base: Sampling) -> Sampling {
        Sampling {
            temperature: self.temperature.or(base.temperature),
            max_tokens: self.max_tokens.or(base.max_tokens),
            top_p: self.top_p.or(base.top_p),
        }
    }

    /// The temperature to send.
    pub fn temperature(&self) -> f32 {
        self.temperature.unwrap_or(DEFAULT_TEMPERATURE)
    }

    /// The answer length cap to send.
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)
    }

    /// Refuses values no model accepts, naming the field.
    pub fn validate(&self) -> Result<(), ActionError> {
        if let Some(t) = self.temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return Err(ActionError::invalid(format!(
                "temperature is {t}; it must be 0 to 2"
            )));
        }
        if let Some(n) = self.max_tokens
            && !(1..=MAX_MAX_TOKENS).contains(&n)
        {
            return Err(ActionError::invalid(format!(
                "max_tokens is {n}; it must be 1 to {MAX_MAX_TOKENS}"
            )));
        }
        if let Some(p) = self.top_p
            && !(p.is_finite() && p > 0.0 && p <= 1.0)
        {
            return Err(ActionError::invalid(format!(
                "top_p is {p}; it must be above 0 and at most 1"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_sets_what_it_names_and_keeps_the_rest() {
        let agent = Sampling {
            temperature: Some(0.7),
            max_tokens: Some(200),
            top_p: None,
        };
        let request = Sampling {
            temperature: Some(0.0),
            ..Sampling::default()
        };
        let used = request.over(agent);
        assert_eq!(
            (used.temperature(), used.max_tokens(), used.top_p),
            (0.0, 200, None)
        );
        let nothing = Sampling::default();
        assert_eq!(
            (nothing.temperature(), nothing.max_tokens()),
            (DEFAULT_TEMPERATURE, DEFAULT_MAX_TOKENS)
        );
    }

    #[test]
    fn values_no_model_accepts_are_refused_by_name() {
        let bad = |sampling: Sampling| sampling.validate().expect_err("invalid").message;
        let with = |temperature, max_tokens, top_p| Sampling {
            temperature,
            max_tokens,
            top_p,
        };
        assert!(bad(with(Some(2.5), None, None)).contains("temperature"));
        assert!(bad(with(Some(f32::NAN), None, None)).contains("temperature"));
        assert!(bad(with(None, Some(0), None)).contains("max_tokens"));
        assert!(bad(with(None, Some(MAX_MAX_TOKENS + 1), None)).contains("max_tokens"));
        assert!(bad(with(None, None, Some(0.0))).contains("top_p"));
        assert!(bad(with(None, None, Some(1.5))).contains("top_p"));
        assert_eq!(with(Some(0.0), Some(1), Some(1.0)).validate(), Ok(()));
    }
}
