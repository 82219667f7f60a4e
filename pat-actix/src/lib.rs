//! pat-actix
