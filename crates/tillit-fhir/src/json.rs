//! Strict JSON parsing with limits (being written).
