//! pat-tower
