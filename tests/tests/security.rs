//! Security end to end, over loopback against the real gateway and the real simulators: the attacks
//! the gateway refuses (`attacks.rs`, each asserting the refusal and that nothing was served or
//! changed) and the OpenAPI document under schemathesis (`schemathesis.rs`).

mod attacks;
mod schemathesis;
