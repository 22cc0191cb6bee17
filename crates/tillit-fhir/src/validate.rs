//! Validation of resources against the R4 structure definitions (being written).
