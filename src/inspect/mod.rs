//! What a request and its answer say, read vendor-neutrally from a copy of the bytes: the
//! request's facts (model, prompt, message count), the personal data in the prompt, and the
//! tokens used. Which field holds what is each provider's knowledge (`providers`); the parsing
//! machinery is here.

pub mod facts;
pub mod inflate;
pub mod pii;
pub mod usage;
